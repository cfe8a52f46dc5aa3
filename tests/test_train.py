"""The trainer end to end on a tiny CNN and tiny in-memory data: records, checkpoints, determinism, guards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from robustft.config import Config, from_dict
from robustft.errors import RobustftError, TrainingDivergedError
from robustft.models.tiny import tiny_cnn
from robustft.runs.checkpoints import load_checkpoint
from robustft.training.optim import parameter_groups
from robustft.training.trainer import train


class TinyData:
    """n seeded 3 x 16 x 16 images, 4 classes, each class darkening one colour channel (learnable)."""

    def __init__(self, n: int, seed: int, nan: bool = False) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 16, 16, generator=generator)
        self.labels = torch.randint(0, 4, (n,), generator=generator)
        for c in range(4):
            self.images[self.labels == c, c % 3] *= 0.3
        if nan:
            self.images[:] = float("nan")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def tiny_splits(nan: bool = False) -> dict:
    return {"train": TinyData(64, 0, nan), "val": TinyData(16, 1), "test": TinyData(16, 2),
            "ood": {"shifted": TinyData(16, 3)}}


def tiny_config(tmp_path: Path, **sections) -> Config:
    config = {"name": "tiny", "output_dir": str(tmp_path), "device": "cpu", "seed": 0,
              "objective": {"name": "adversarial", "steps": 2},
              "eps": {"schedule": "linear", "value": "8/255"},
              "optim": {"batch_size": 16, "lr": 1.0e-2, "warmup": 1},
              "train": {"epochs": 2},
              "eval": {"schedule": "every:2", "subset": 16, "batch_size": 16,
                       "attack": {"name": "pgd", "steps": 2, "step_size": "2/255"}, "eps": ["2/255"],
                       "curve": "2/255", "final": {"name": "fgsm", "steps": 1}},
              "checkpoint": {"every_eval": True},
              "logging": {"progress": False}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(config)  # the trainer takes the typed Config (or a YAML path), not a plain tree


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_records_checkpoints_and_summary(tmp_path):
    result = train(tiny_config(tmp_path), model=tiny_cnn(4), datasets=tiny_splits())
    records = read_records(result.path)
    steps = sorted({r["step"] for r in records})
    assert steps == [0, 2, 4, 6, 8]  # 64 / 16 = 4 steps per epoch, 2 epochs, every 2 steps
    clean = [r for r in records if r["split"] == "test" and r["attack"] == "clean" and r["metric"] == "accuracy"]
    assert len(clean) == 5 and all(r["n"] == 16 and r["ci_low"] <= r["value"] <= r["ci_high"] for r in clean)
    assert {r["split"] for r in records} >= {"train", "val", "test", "ood:shifted", "optim"}
    assert any(r["metric"] == "expected_robustness" for r in records)
    assert any(r["attack"] == "final:fgsm" and r["step"] == 8 for r in records)
    assert not any(r["attack"] == "final:fgsm" and r["step"] < 8 for r in records)
    eps = [r["value"] for r in records if r["split"] == "optim" and r["metric"] == "eps"]
    assert eps[-1] == pytest.approx(8 / 255) and eps[0] == 0.0  # linear warm-up over epochs reaches eps_g
    names = sorted(p.name for p in (result.path / "checkpoints").glob("*.pt"))
    assert "last.pt" in names and "best.pt" in names and "step_00000008.pt" in names
    last = load_checkpoint(result.path)
    assert last["step"] == 8 and "optimizer" in last and "rng" in last
    assert result.summary["final"]["test/clean/accuracy"] == clean[-1]["value"]
    assert json.loads((result.path / "summary.json").read_text())["steps"] == 8
    # the run's own CPU time (a study sums it; Ray workers are not the study's children): positive, and no more
    # than every core busy for the whole run
    cpu = result.summary["cpu_seconds"]
    assert 0 < cpu <= result.summary["wall_seconds"] * (os.cpu_count() or 1) + 0.5
    assert last["cpu_seconds"] <= cpu  # the resume point carries it on


def test_same_seed_gives_identical_metrics(tmp_path):
    first = train(tiny_config(tmp_path / "a", objective={"name": "trades", "steps": 2}),
                  model=tiny_cnn(4), datasets=tiny_splits())
    second = train(tiny_config(tmp_path / "b", objective={"name": "trades", "steps": 2}),
                   model=tiny_cnn(4), datasets=tiny_splits())
    assert read_records(first.path) == read_records(second.path)


def test_training_learns_the_tiny_task(tmp_path):
    config = tiny_config(tmp_path, objective={"name": "standard"}, eps={"schedule": "zero"}, train={"epochs": 6},
                         eval={"schedule": "epoch", "curve": None, "final": None})
    result = train(config, model=tiny_cnn(4), datasets=tiny_splits())
    train_acc = [r["value"] for r in read_records(result.path)
                 if r["split"] == "train" and r["attack"] == "clean"]
    assert train_acc[-1] > train_acc[0] and train_acc[-1] > 0.5


def test_nan_loss_stops_with_a_record_and_keeps_the_run(tmp_path):
    with pytest.raises(TrainingDivergedError, match="optim.lr"):
        train(tiny_config(tmp_path), model=tiny_cnn(4), datasets=tiny_splits(nan=True))
    records = read_records(tmp_path / "tiny")
    assert records[-1]["metric"] == "diverged" and records[-1]["extra"]["value"] == "nan"
    assert any(r["step"] == 0 and r["split"] == "test" for r in records)  # what was written stays
    assert (tmp_path / "tiny" / "checkpoints" / "last.pt").is_file()


def test_unwritable_output_dir_is_a_clear_error(tmp_path, monkeypatch):
    # Permission bits do not stop root (CI runs as root), so the refusal is injected where the OS would raise it.
    import errno

    locked = tmp_path / "locked"
    real_mkdir = Path.mkdir

    def refusing_mkdir(self, *args, **kwargs):
        if str(self).startswith(str(locked)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refusing_mkdir)
    with pytest.raises(RobustftError, match="locked") as info:
        train(tiny_config(locked), model=tiny_cnn(4), datasets=tiny_splits())
    assert "Traceback" not in str(info.value)
    assert not locked.exists()


def test_existing_run_is_not_overwritten(tmp_path):
    train(tiny_config(tmp_path, train={"epochs": 1}), model=tiny_cnn(4), datasets=tiny_splits())
    with pytest.raises(RobustftError, match="--resume"):
        train(tiny_config(tmp_path, train={"epochs": 1}), model=tiny_cnn(4), datasets=tiny_splits())


def test_no_weight_decay_on_biases_and_norms_and_a_separate_head_lr():
    model = tiny_cnn(4)
    groups = {g["name"]: g for g in parameter_groups(model, 1e-3, 0.05, head_lr=1e-2, head=model.info.head)}
    head_bias = model.backbone.classifier.bias
    bn_weight = model.backbone.features[1].weight
    conv_weight = model.backbone.features[0].weight
    assert any(p is head_bias for p in groups["head/no_decay"]["params"])
    assert groups["head/no_decay"]["lr"] == 1e-2 and groups["head/decay"]["lr"] == 1e-2
    assert any(p is bn_weight for p in groups["body/no_decay"]["params"])
    assert groups["body/no_decay"]["weight_decay"] == 0.0
    assert any(p is conv_weight for p in groups["body/decay"]["params"])
    assert groups["body/decay"]["weight_decay"] == 0.05 and groups["body/decay"]["lr"] == 1e-3
    count = sum(p.numel() for g in groups.values() for p in g["params"])
    assert count == sum(p.numel() for p in model.parameters())


def test_gradient_accumulation_steps_count_updates(tmp_path):
    config = tiny_config(tmp_path, optim={"accumulate": 2}, eval={"schedule": "epoch", "curve": None,
                                                                  "final": None})
    result = train(config, model=tiny_cnn(4), datasets=tiny_splits())
    assert sorted({r["step"] for r in read_records(result.path)}) == [0, 2, 4]  # 4 batches / 2 = 2 steps per epoch


def test_output_dir_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(RobustftError, match="not-a-dir"):
        train(tiny_config(blocker), model=tiny_cnn(4), datasets=tiny_splits())
    assert blocker.read_text() == "x"


def test_write_error_mid_run_is_a_clear_error_and_keeps_written_records(tmp_path, monkeypatch):
    from robustft import runs

    calls = {"n": 0}
    original = runs.MetricsWriter.write

    def failing_write(self, records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return original(self, records)

    monkeypatch.setattr(runs.metrics_file.MetricsWriter, "write", failing_write)
    # One RunWriteError: `except robustft.runs.RunWriteError` catches the trainer's too.
    with pytest.raises(runs.RunWriteError, match="No space left"):
        train(tiny_config(tmp_path), model=tiny_cnn(4), datasets=tiny_splits())
    assert {r["step"] for r in read_records(tmp_path / "tiny")} == {0}


def test_missing_reference_run_fails_before_training(tmp_path):
    config = tiny_config(tmp_path, detect={"reference_run": str(tmp_path / "nope")})
    with pytest.raises(RobustftError, match="reference_run"):
        train(config, model=tiny_cnn(4), datasets=tiny_splits())
    assert not (tmp_path / "tiny").exists()


def test_reference_run_feeds_the_transfer_diagnosis(tmp_path):
    base = {"objective": {"name": "standard"}, "eps": {"schedule": "zero"}, "train": {"epochs": 1},
            "eval": {"schedule": "epoch", "curve": None, "final": None}}
    reference = train(tiny_config(tmp_path / "ref", **base), model=tiny_cnn(4), datasets=tiny_splits())
    result = train(tiny_config(tmp_path / "run", detect={"reference_run": str(reference.path)}, **base),
                   model=tiny_cnn(4), datasets=tiny_splits())
    transfer = result.summary["detection"]["transfer"]
    assert transfer["reference_clean"] == reference.summary["final"]["test/clean/accuracy"]


@pytest.mark.parametrize("schedule", ["zero", "constant", "scheduled", "uniform", "auto"])
def test_each_eps_schedule_drives_the_training_eps(schedule, tmp_path):
    config = tiny_config(tmp_path, eps={"schedule": schedule, "value": "8/255", "t1": 1, "t2": 2, "patience": 1},
                         train={"epochs": 3}, eval={"schedule": "epoch", "curve": None, "final": None, "eps": []})
    result = train(config, model=tiny_cnn(4), datasets=tiny_splits())
    eps = [r["value"] for r in read_records(result.path) if r["split"] == "optim" and r["metric"] == "eps"]
    assert len(eps) == 4 and all(0 <= e <= 8 / 255 + 1e-12 for e in eps)
    if schedule == "zero":
        assert eps == [0.0] * 4
    if schedule == "constant":
        assert eps == [pytest.approx(8 / 255)] * 4
    if schedule == "scheduled":  # per epoch: alpha(0) = alpha(1) = 0 (t <= T1 = 1), alpha(2) = 1 (t >= T2 = 2)
        assert eps == [0.0, 0.0, 0.0, pytest.approx(8 / 255)]  # records: step 0, then the last step of each epoch


def test_scheduled_on_one_epoch_trains_a_per_step_ramp(tmp_path):
    # 4 steps in one epoch: T1 = 0.25 -> step 1, T2 = 0.75 -> step 3 (whole epochs would give a constant eps).
    config = tiny_config(tmp_path, eps={"schedule": "scheduled", "value": "8/255", "t1": 0.25, "t2": 0.75},
                         train={"epochs": 1}, eval={"schedule": "every:1", "curve": None, "final": None, "eps": []})
    result = train(config, model=tiny_cnn(4), datasets=tiny_splits())
    eps = [r["value"] for r in read_records(result.path) if r["split"] == "optim" and r["metric"] == "eps"]
    # records: step 0 (eps of step 0), then the eps each step trained at: steps 0, 1, 2, 3
    assert eps == [0.0, 0.0, 0.0, pytest.approx(4 / 255), pytest.approx(8 / 255)]
    assert result.summary["eps_resolved"] == {"per": "step", "t1": 1, "t2": 3}


def test_auto_summary_records_the_ramp_it_trained_with(tmp_path):
    # tolerance 0.99: no epoch counts as progress, so with patience 1 the plateau is seen at the end of epoch 1
    # (T1 = 1) and eps ramps to eps_g at the last epoch (2). The summary must say so, not "no ramp".
    config = tiny_config(tmp_path, eps={"schedule": "auto", "value": "8/255", "patience": 1, "tolerance": 0.99},
                         train={"epochs": 3}, eval={"schedule": "every:4", "curve": None, "final": None, "eps": []})
    result = train(config, model=tiny_cnn(4), datasets=tiny_splits())
    eps = [r["value"] for r in read_records(result.path) if r["split"] == "optim" and r["metric"] == "eps"]
    assert eps == [0.0, 0.0, 0.0, pytest.approx(8 / 255)]  # step 0, then the last step of each epoch
    assert result.summary["eps_resolved"] == {"per": "epoch", "t1": 1, "t2": 2}


@pytest.mark.parametrize("schedule", ["every:3", "steps:[4]"])
def test_auto_refuses_an_evaluation_schedule_that_misses_an_epoch_end(schedule, tmp_path):
    # 64 samples / batch 16 = 4 steps per epoch: every:3 and steps:[4] miss the end of epoch 1 (step 8), after
    # which the validation history would stop and eps stay 0 for the rest of the run.
    config = tiny_config(tmp_path, eps={"schedule": "auto", "patience": 1}, train={"epochs": 3},
                         eval={"schedule": schedule})
    with pytest.raises(RobustftError, match="eps would stay 0") as info:
        train(config, model=tiny_cnn(4), datasets=tiny_splits())
    assert "every:N with N dividing 4" in str(info.value)
    assert not (tmp_path / "tiny").exists()


def test_the_end_of_training_off_the_schedule_is_marked(tmp_path):
    config = tiny_config(tmp_path, eval={"schedule": "every:3", "curve": None, "final": None})  # 8 steps
    records = read_records(train(config, model=tiny_cnn(4), datasets=tiny_splits()).path)
    assert sorted({r["step"] for r in records}) == [0, 3, 6, 8]
    assert all((r["extra"] or {}).get("off_schedule") is (True if r["step"] == 8 else None) for r in records)


def test_a_config_that_cannot_build_leaves_no_run_directory(tmp_path):
    with pytest.raises(RobustftError, match="accumulate"):
        train(tiny_config(tmp_path, optim={"accumulate": 50}), model=tiny_cnn(4), datasets=tiny_splits())
    assert not (tmp_path / "tiny").exists()


@pytest.mark.parametrize("fused", [False, True])
def test_trades_uses_the_reference_two_passes_unless_fused_is_asked_for(fused, tmp_path):
    from robustft.training.crafting import CraftingCopy
    from robustft.training.trainer import build_trainer

    config = tiny_config(tmp_path, objective={"name": "trades", "trades_fused": fused})
    trainer = build_trainer(config, model=tiny_cnn(4), datasets=tiny_splits())
    assert trainer.context.trades_fused is fused
    # the run's one crafting copy, a typed field of the context (training.crafting), not an untyped extra
    assert isinstance(trainer.context.crafting, CraftingCopy) and "crafting" not in trainer.context.extra
