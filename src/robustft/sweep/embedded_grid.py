"""The papers' claims at embedded scale: ``robustft reproduce paper-a|paper-b --scale embedded`` as a grid.

Every claim of both papers compares runs along an axis (``robustft.analysis.findings``): paper A's frontiers
between tasks of different measured complexity and on a backbone whose strategies act on attention; paper B's
onset over several eps_g, suboptimal transfer per backbone and task, E.adv of Epsilon-Scheduling against RFT-fix.
So the embedded study is a grid too, on the same five axes as the full one (``robustft.sweep.paper_grid``):

- models: the embedded ImageNet MobileNetV2 at 32 px (no attention: its "attention" strategies are convolution
  adapters) and the embedded ViT-S/14 ``vit_small_dinov2`` at 56 px (4 x 4 patches + CLS), whose LoRA, (IA)3,
  adapters and Compacter act on attention blocks;
- datasets: Fashion-MNIST and ``emoji`` (43 fine-grained colour classes), the pair of most different measured
  complexity (``data/complexity.json``: linear probe of the frozen backbone 76% vs 43% on MobileNetV2, 82% vs 42%
  on the ViT); ``elpv`` is selectable (``--datasets elpv``, extra);
- paper A: the seven strategies at PGD-15 1/255 (eps ``1/255``), each task with two corruptions as OOD splits;
- paper B: eps_g in {1, 2, 4}/255 (paper B's own range; 8/255 extra) x RFT-fix and Epsilon-Scheduling, each with
  its standard fine-tuning reference (RFT-fix's config without the perturbation, evaluated at the same eps_g, as
  the findings pair them; ``detect.reference_run`` is not used, since it needs the reference finished before the
  run starts and the runs go in parallel); linear warm-up, uniform and auto run at the cheapest configuration only
  (MobileNetV2, Fashion-MNIST, the largest eps_g) unless ``--schedules`` names them.

What each run is (backbone, task, eps_g, strategy, schedule) is in its resolved config (``model.name``,
``data.name``, ``eps.value``, ``strategy.name``, ``eps.schedule``); findings read it from there. The per-backbone
settings (size, learning rates, length) and what was cut to fit 45 minutes on 2 CPU cores are in
:data:`MODEL_OVERRIDES` and the folders' ``_base.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from robustft.config.units import parse_eps
from robustft.errors import ConfigError
from robustft.sweep.paper_grid import AXES, REFERENCE_OVERRIDES, SCHEDULE_LABELS, AxisValue, GridPoint, parse_selection

_MODELS = (AxisValue("mobilenet-v2", "mobilenet_v2"), AxisValue("vit-s-dinov2", "vit_small_dinov2"))
_DATASETS = (AxisValue("fashion-mnist", "fashion-mnist"), AxisValue("emoji", "emoji"),
             AxisValue("elpv", "elpv", in_paper=False))
_STRATEGIES = tuple(AxisValue(s, s) for s in ("full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter"))
# Paper B's schedules: the three every configuration runs, then the three run at the cheapest one only.
MAIN_SCHEDULES = ("standard", "fix", "scheduled")
SECONDARY_SCHEDULES = ("linear", "uniform", "auto")

EMBEDDED_GRIDS: dict[str, dict[str, tuple[AxisValue, ...]]] = {
    "paper-a": {"models": _MODELS, "datasets": _DATASETS, "eps": (AxisValue("1/255", "1/255"),),
                "strategies": _STRATEGIES, "schedules": (AxisValue("standard", "zero"),)},
    "paper-b": {"models": _MODELS, "datasets": _DATASETS,
                "eps": (*(AxisValue(f"{k}/255", f"{k}/255") for k in (1, 2, 4)), AxisValue("8/255", "8/255", False)),
                "strategies": (AxisValue("full", "full"),),
                "schedules": tuple(AxisValue(s, s) for s in (*MAIN_SCHEDULES, *SECONDARY_SCHEDULES))},
}

# Per backbone and paper: what differs from the folder's _base.yaml (written for MobileNetV2 at 32 px).
# ViT, paper A (measured, configs/vit_embedded/paper_a.yaml): lr 5e-4 for the parameter-efficient strategies, 5e-5
# for full fine-tuning (5e-4 wrecked its features: 34% clean); 200 steps instead of 300 (a ViT step costs ~12
# MobileNetV2 steps on one core). ViT, paper B: full fine-tuning at 5e-5, 300 training images (600 for MobileNetV2)
# and 5 epochs (an adversarial ViT step with APGD-CE-7 costs 8 forward+backward passes, ~0.15 s per image),
# evaluated every 3 steps: auto reads validation accuracy at every epoch's end (6 steps of 50 images).
MODEL_OVERRIDES: dict[str, dict[str, tuple[str, ...]]] = {
    "paper-a": {"mobilenet-v2": (),
                "vit-s-dinov2": ("model.image_size=56", "data.image_size=56", "optim.lr=5.0e-4", "train.steps=200")},
    "paper-b": {"mobilenet-v2": (),
                "vit-s-dinov2": ("model.image_size=56", "data.image_size=56", "optim.lr=5.0e-5",
                                 "data.limit_train=300", "train.epochs=5", "eval.schedule=every:3")},
}
# (paper, model, strategy) -> overrides after the model's: the ViT's full fine-tuning keeps its 10x smaller lr.
STRATEGY_OVERRIDES: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("paper-a", "vit-s-dinov2", "full"): ("optim.lr=5.0e-5",),
}


# The claims ``robustft demo`` leaves to this grid: its runs have one backbone (MobileNetV2, no attention), one task
# and one eps_g (32/255, four times paper B's largest), so it cannot compare tasks, backbones or eps_g, and tests
# paper B's E.adv claim outside paper B's range.
DEMO_LEAVES = ("A.attention_on_complex", "A.steeper_with_complexity", "B.delay_grows_with_eps",
               "B.severity_by_model_and_data", "B.eadv_when_adv_equal")


def demo_leaves_line(findings_file: Path | None = None) -> str:
    """The demo's one line naming the claims it leaves to ``reproduce``: :data:`DEMO_LEAVES`, then every other claim
    ``findings_file`` (the study's findings.json) records as skipped for want of runs."""
    keys = list(DEMO_LEAVES)
    try:
        found = json.loads(findings_file.read_text(encoding="utf-8")).get("findings", []) if findings_file else []
    except (OSError, ValueError, AttributeError):
        found = []
    keys += [f["key"] for f in found if isinstance(f, dict) and f.get("verdict") == "skipped"
             and f.get("key") and f["key"] not in keys]
    return ("claims left to `robustft reproduce paper-a|paper-b --scale embedded` (two backbones, two tasks, eps_g "
            f"1-4/255): {', '.join(dict.fromkeys(keys))}")


def pick_embedded(paper: str, axis: str, requested: Sequence[str] | None) -> list[AxisValue]:
    """The values of an embedded grid's ``axis`` a selection names, in grid order (None: the main grid).

    Raises:
        ConfigError: a value that is not on the axis, listing the valid ones.
    """
    values = EMBEDDED_GRIDS[paper][axis]
    if not requested:
        return [v for v in values if v.in_paper]
    chosen = []
    for text in requested:
        found = [v for v in values if text.strip() in (v.key, v.value) or _same_eps(axis, v, text)]
        if not found:
            valid = ", ".join(v.key + ("" if v.in_paper else " (extra)") for v in values)
            raise ConfigError(f"{paper} --scale embedded has no {axis} value {text.strip()!r}. Valid --{axis}: "
                              f"{valid}; give a comma list of them, e.g. --{axis} {values[0].key}.")
        chosen.append(found[0])
    return [v for v in values if v in chosen]


def _same_eps(axis: str, value: AxisValue, text: str) -> bool:
    if axis != "eps":
        return False
    try:
        return abs(parse_eps(text.strip()) - parse_eps(value.value)) < 1e-9
    except ConfigError:
        return False


def _task_overrides(data: AxisValue) -> tuple[str, ...]:
    return (f"data.name={data.value}",)


def embedded_runs(paper: str, root: Path,
                  selection: Mapping[str, str | Sequence[str] | None] | None = None) -> list[GridPoint]:
    """The runs of a paper's embedded grid (or of the selected part), configs from ``root`` (configs/paper_x_embedded).

    Each run's label names its arm within its configuration (``lora · vit-s-dinov2 · emoji``), so that summaries
    and report frontiers keep the models and tasks apart (runs sharing a label are read as seeds of one arm).

    Raises:
        ConfigError: an unknown paper or axis value, or a selection that leaves no run.
    """
    if paper not in EMBEDDED_GRIDS:
        raise ConfigError(f"unknown paper {paper!r}; use paper-a or paper-b.")
    parsed = parse_selection(selection or {})
    chosen = {axis: pick_embedded(paper, axis, parsed.get(axis)) for axis in AXES}
    runs = _paper_a(root, chosen) if paper == "paper-a" else _paper_b(root, chosen, bool(parsed.get("schedules")))
    if not runs:
        raise ConfigError(f"the selection leaves no run of {paper}'s embedded grid; widen the axis flags.")
    return runs


def _paper_a(root: Path, chosen: dict[str, list[AxisValue]]) -> list[GridPoint]:
    runs = []
    for model in chosen["models"]:
        for data in chosen["datasets"]:
            for strategy in chosen["strategies"]:
                overrides = (f"model.name={model.value}", *MODEL_OVERRIDES["paper-a"][model.key],
                             *STRATEGY_OVERRIDES.get(("paper-a", model.key, strategy.key), ()), *_task_overrides(data),
                             f"data.ood=[{data.value}@gaussian_noise:3,{data.value}@contrast:3]")
                runs.append(GridPoint(f"a-{model.key}-{data.key}-{strategy.key}",
                                    f"{strategy.key} · {model.key} · {data.key}", root / f"{strategy.key}.yaml",
                                    overrides, (("models", model.key), ("datasets", data.key), ("eps", "1/255"),
                                                ("strategies", strategy.key), ("schedules", "standard"))))
    return runs


def _paper_b(root: Path, chosen: dict[str, list[AxisValue]], named_schedules: bool) -> list[GridPoint]:
    runs = []
    eps_list = chosen["eps"]
    top = max(eps_list, key=lambda e: parse_eps(e.value))
    first = (_MODELS[0].key, _DATASETS[0].key)
    for model in chosen["models"]:
        for data in chosen["datasets"]:
            common = (f"model.name={model.value}", *MODEL_OVERRIDES["paper-b"][model.key], *_task_overrides(data))
            prefix = f"b-{model.key}-{data.key}"
            axes = (("models", model.key), ("datasets", data.key))
            where = f"{model.key} · {data.key}"
            for schedule in chosen["schedules"]:
                label = SCHEDULE_LABELS.get(schedule.key, schedule.key)
                for eps in eps_list:
                    secondary = schedule.key in SECONDARY_SCHEDULES
                    if secondary and not named_schedules and ((model.key, data.key) != first or eps != top):
                        continue  # linear / uniform / auto: at the cheapest configuration only, unless named
                    # The reference: RFT-fix's config without the perturbation, evaluated as the runs at this eps_g
                    # (findings pair a reference with the runs whose config equals it but for objective and eps).
                    extra = REFERENCE_OVERRIDES if schedule.key == "standard" else ()
                    config = root / ("fix.yaml" if schedule.key == "standard" else f"{schedule.key}.yaml")
                    runs.append(GridPoint(f"{prefix}-{eps.key.replace('/', '_')}-{schedule.key}",
                                        f"{label} {eps.key} · {where}", config,
                                        (*extra, *common, f"eps.value={eps.value}", f"eval.curve={eps.value}"),
                                        (*axes, ("eps", eps.key), ("strategies", "full"),
                                         ("schedules", schedule.key))))
    return runs
