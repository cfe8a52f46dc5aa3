"""Every shipped config under configs/ loads, validates, and states the papers' protocols."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustft.config import PRESETS, from_dict, load_config, to_dict
from robustft.training.evaluation_points import evaluation_steps
from robustft.training.schedules import eps_schedule, resolve_duration

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
PAPER_A_STRATEGIES = {"full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter"}
PAPER_B_SCHEDULES = {"fix": "constant", "scheduled": "scheduled", "linear": "linear", "uniform": "uniform",
                     "auto": "auto"}


def runnable(folder: str) -> list[Path]:
    return sorted(p for p in (CONFIGS / folder).glob("*.yaml") if not p.name.startswith("_"))


def test_the_shipped_tree_is_complete() -> None:
    assert (CONFIGS / "demo.yaml").is_file()
    for folder in ("paper_a", "paper_a_embedded"):
        assert {p.stem for p in runnable(folder)} == PAPER_A_STRATEGIES
    for folder in ("paper_b", "paper_b_embedded"):
        assert {p.stem for p in runnable(folder)} == set(PAPER_B_SCHEDULES)


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_loads_validates_and_round_trips(path: Path) -> None:
    cfg = load_config(path)
    assert from_dict(to_dict(cfg)) == cfg
    steps_per_epoch = 10
    total = cfg.train.steps or cfg.train.epochs * steps_per_epoch
    steps = evaluation_steps(cfg.eval.schedule, total, steps_per_epoch)
    assert steps[0] == 0 and steps[-1] == total


def test_run_names_are_unique() -> None:
    names = [load_config(p).name for folder in ("paper_a", "paper_a_embedded", "paper_b", "paper_b_embedded")
             for p in runnable(folder)]
    assert len(names) == len(set(names))


def test_strategy_names_and_options_are_registered() -> None:
    from robustft.strategies import STRATEGIES

    for folder in ("paper_a", "paper_a_embedded"):
        for path in runnable(folder):
            cfg = load_config(path)
            assert cfg.strategy.name == path.stem and cfg.strategy.name in STRATEGIES


def test_demo_is_small_standard_and_tracks_pgd_and_ood() -> None:
    cfg = load_config(CONFIGS / "demo.yaml")
    assert (cfg.model.name, cfg.data.name, cfg.model.image_size) == ("mobilenet_v2", "fashion-mnist", 32)
    assert 4000 <= cfg.data.limit_train <= 10000 and cfg.train.epochs in (1, 2)  # minutes on a CPU, not hours
    assert cfg.objective.name == "standard" and cfg.eps.schedule == "zero"
    assert cfg.eval.attack.name == "pgd" and cfg.eval.eps == [1 / 255] and cfg.eval.subset <= 512
    assert len(cfg.data.ood) >= 2 and cfg.eval.ood
    assert cfg.eval.curve == 4 / 255 and cfg.eval.final.name == "apgd-ce"  # robust curve, strong final attack


@pytest.mark.parametrize("folder", ["paper_a", "paper_a_embedded"])
def test_paper_a_protocol(folder: str) -> None:
    expected_attack = from_dict({"eval": {"attack": "paper-a"}}).eval.attack
    for path in runnable(folder):
        cfg = load_config(path)
        assert cfg.objective.name == "standard" and cfg.eps.schedule == "zero"
        assert cfg.eval.schedule == "paper-a" and cfg.eval.attack == expected_attack
        assert cfg.eval.eps == [1 / 255] and cfg.data.val_fraction == 0.1 and cfg.data.augment is None
        # paper A tracks train accuracy too; the embedded grid drops it (it doubled the attacks; findings read test)
        assert "test" in cfg.eval.splits and ("train" in cfg.eval.splits) == (folder == "paper_a")
        # full FT linear decay, the parameter-efficient methods cosine with warm-up (paper A)
        assert cfg.optim.lr_schedule == ("linear" if path.stem == "full" else "cosine")
        if folder == "paper_a":
            assert cfg.model.name == "hf:google/vit-base-patch16-224-in21k" and cfg.model.image_size == 224
            assert cfg.data.name == "tv:CIFAR10" and cfg.optim.batch_size == 128
    lora = load_config(CONFIGS / folder / "lora.yaml").strategy.options
    assert (lora["r"], lora["alpha"], lora["dropout"]) == (8, 8, 0.0)
    compacter = load_config(CONFIGS / folder / "compacter.yaml").strategy.options
    assert (compacter["reduction"], compacter["phm_dim"], compacter["rank"]) == (32, 4, 1)
    assert load_config(CONFIGS / folder / "adapter.yaml").strategy.options == {"reduction": 8}


@pytest.mark.parametrize("folder", ["paper_b", "paper_b_embedded"])
def test_paper_b_protocol(folder: str) -> None:
    for stem, schedule in PAPER_B_SCHEDULES.items():
        cfg = load_config(CONFIGS / folder / f"{stem}.yaml")
        # the embedded auto ramps per step: 6 epochs leave whole epochs no room after a plateau (see auto.yaml)
        per = "step" if (folder, schedule) == ("paper_b_embedded", "auto") else "epoch"
        assert cfg.eps.schedule == schedule and cfg.eps.value == 4 / 255 and cfg.eps.per == per
        assert (cfg.objective.name, cfg.objective.attack, cfg.objective.steps) == ("adversarial", "apgd-ce", 7)
        assert cfg.strategy.name == "full"
        assert cfg.eval.attack.name == "apgd-ce" and cfg.eval.attack.steps == 10
        # embedded: clean accuracy during training (the onset), the attacks at eps_g and the curve on the final model
        assert cfg.eval.eps == ([4 / 255] if folder == "paper_b" else [])
        assert cfg.eval.curve == 4 / 255 and cfg.eval.curve_at == ("every" if folder == "paper_b" else "final")
        assert cfg.eval.final is not None and (cfg.eval.final.name, cfg.eval.final.steps) == ("apgd-ce", 10)
        assert cfg.data.augment == ["flip", "color_jitter:0.25", "rotation:10"]
        epochs = cfg.train.epochs
        sched = eps_schedule(cfg.eps, epochs, epochs * 10, 10, cfg.seed)
        last = sched(epochs - 1, epochs * 10 - 1, [0.5] * epochs)  # a flat history: auto ramps too
        if schedule == "uniform":
            assert 0.0 <= last <= 4 / 255
        else:
            assert last == pytest.approx(4 / 255)
    scheduled = load_config(CONFIGS / folder / "scheduled.yaml")
    t1 = resolve_duration(scheduled.eps.t1, scheduled.train.epochs)
    t2 = resolve_duration(scheduled.eps.t2, scheduled.train.epochs)
    if folder == "paper_b":
        assert scheduled.model.name == "timm:vit_base_patch16_224.augreg_in1k" and scheduled.model.image_size == 224
        assert (scheduled.train.epochs, t1, t2) == (50, 12, 37)
        assert (scheduled.eps.patience, scheduled.eps.tolerance) == (5, 0.02)
    else:
        assert 0 < t1 < t2 < scheduled.train.epochs
    assert set(PRESETS["eval.attack"]) >= {"paper-a", "paper-b"}


@pytest.mark.slow
@pytest.mark.needs_assets
@pytest.mark.parametrize("path", runnable("paper_a_embedded"), ids=lambda p: p.stem)
def test_embedded_paper_a_strategies_apply_to_the_embedded_backbone(path: Path) -> None:
    from robustft.models import build
    from robustft.strategies import apply

    cfg = load_config(path)
    model = build(cfg.model.name, 10, pretrained=cfg.model.pretrained, image_size=cfg.model.image_size,
                  seed=cfg.seed, **cfg.model.options)
    applied = apply(model, cfg.strategy.name, **cfg.strategy.options)
    assert 0 < applied.trainable_count <= applied.total_count


def test_embedded_auto_has_room_to_ramp_after_its_plateau() -> None:
    """``reproduce paper-b --scale embedded``'s auto run perturbs: on the validation history it measured (and on one
    whose plateau shows an epoch later) its eps ramps over more than one epoch's steps, or at least over the last
    epoch's, instead of staying 0 (the run then equals the standard reference) or jumping to eps_g at the end."""
    cfg = load_config(CONFIGS / "paper_b_embedded" / "auto.yaml")
    epochs, steps_per_epoch = cfg.train.epochs, 12  # 600 training images, batch 50
    sched = eps_schedule(cfg.eps, epochs, epochs * steps_per_epoch, steps_per_epoch, cfg.seed)
    measured = [0.22, 0.46, 0.74, 0.78, 0.77, 0.78]  # validation accuracy at the ends of epochs 0..5 (auto.yaml)
    later = [0.22, 0.46, 0.74, 0.78, 0.82, 0.81]  # still climbing at epoch 4: the plateau shows at its end

    def eps_per_step(history: list[float]) -> list[float]:
        # as the trainer calls it: epoch t's eps sees the history of the epochs before t
        return [sched(step // steps_per_epoch, step, history[: step // steps_per_epoch])
                for step in range(epochs * steps_per_epoch)]

    measured_eps, later_eps = eps_per_step(measured), eps_per_step(later)
    assert sum(e > 0 for e in measured_eps) > steps_per_epoch
    assert sum(e > 0 for e in later_eps) >= steps_per_epoch - 1
    for eps in (measured_eps, later_eps):
        ramp = [e for e in eps if e > 0]
        assert ramp == sorted(ramp) and ramp[-1] == pytest.approx(4 / 255)
        assert len(set(ramp)) == len(ramp)  # a ramp, not a jump to eps_g
