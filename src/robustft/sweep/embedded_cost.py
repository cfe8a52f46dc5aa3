"""What an embedded study costs on this project's 2-core CPU machine (``reproduce ... --scale embedded --plan``).

The image passes of each run come from the cost model (``robustft.sweep.cost_model.run_cost``: training passes,
evaluation attack passes, evaluation forward passes); here they are priced in CPU-seconds of one thread with
figures measured on this machine (:data:`EMBEDDED_SPEEDS`), plus a fixed start-up per run (Python, torch, data,
weights). A study runs two runs at a time, one thread each (``sweep.jobs.default_jobs``), longest first; the
wall-time estimate packs the runs that way onto ``jobs`` slots (:func:`packed_wall`).

Measured 2026-12-06, one run at a time, ``OMP_NUM_THREADS=1``, with `robustft train` on the embedded configs (the
machine is shared: load average 1.5 to 3.5 for the first three, 3.5 to 9.5 for the fourth; CPU seconds are
the figure load distorts least):

- ViT-S/14 at 56 px, LoRA, emoji, 30 steps of 32 + 3 evaluations of 64 images x PGD-5: 34 s in the run (6.1 s
  evaluation), 23 CPU-s; ~29 ms wall per training image pass, ~5 ms per nominal evaluation pass;
- MobileNetV2 at 32 px, LoRA, emoji, 60 steps of 32 + 3 x 128 images x PGD-15: 10.6 s (5.2 s evaluation);
- MobileNetV2, RFT-fix 4/255, emoji, 24 steps of 50 x APGD-CE-7: 27.8 s wall, 13.2 CPU-s;
- ViT-S/14, RFT-fix 4/255, emoji, 24 steps of 50 x APGD-CE-7 (9,600 passes): 617 s wall at load 9.5, 204 CPU-s,
  i.e. ~19 CPU-ms per training pass.

Evaluation attack passes are priced per nominal pass although robustft attacks only the images still correct
(an upper bound where accuracy is low); the figures below round the measurements up. Checked against two runs of
the grid's own arms (load average 7-10, CPU seconds in the run): ``a-vit-s-dinov2-emoji-compacter`` at 50 steps,
41 CPU-s measured vs 68 s priced; ``b-vit-s-dinov2-fashion-mnist-4_255-fix`` for 1 epoch (6 steps), 73 vs 92 s; and
the fourth run above, 204 vs 324 s. So the plan over-estimates the ViT, which dominates both studies, by 1.2-1.6x.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from robustft.errors import ConfigError
from robustft.sweep.cost_model import Throughput, run_cost
from robustft.sweep.study import Study
from robustft.sweep.study_progress import relative_cost


@dataclass(frozen=True)
class EmbeddedSpeed:
    """CPU-seconds of one thread per image pass of one embedded backbone at its size, and per run.

    Attributes:
        train: a training forward+backward pass (an update or a training attack step), seconds (> 0).
        attack: an evaluation attack step (forward+backward to the input, no optimiser), seconds (> 0).
        forward: a forward-only pass (clean and OOD evaluation), seconds (> 0).
        start: fixed seconds per run (interpreter and torch start, data, weights, checkpoints).
    """

    train: float
    attack: float
    forward: float
    start: float


# ``model.name@model.image_size`` -> speed (see the module docstring for the measurements).
EMBEDDED_SPEEDS: dict[str, EmbeddedSpeed] = {
    "mobilenet_v2@32": EmbeddedSpeed(train=2.5e-3, attack=0.5e-3, forward=0.3e-3, start=8.0),
    "vit_small_dinov2@56": EmbeddedSpeed(train=22e-3, attack=5.5e-3, forward=2.0e-3, start=10.0),
}


def speed_key(config: dict[str, Any]) -> str:
    """``mobilenet_v2@32``: the backbone and input size a resolved config runs."""
    model = config.get("model") or {}
    size = model.get("image_size") or (config.get("data") or {}).get("image_size")
    return f"{model.get('name')}@{size}"


def run_seconds(config: dict[str, Any]) -> float:
    """Estimated CPU-seconds (one thread) of the run a resolved embedded config describes.

    Raises:
        ConfigError: a backbone / size without a measured speed, or a dataset of unknown size.
    """
    key = speed_key(config)
    speed = EMBEDDED_SPEEDS.get(key)
    if speed is None:
        raise ConfigError(f"no measured embedded speed for {key}; measured: {', '.join(EMBEDDED_SPEEDS)}. Time a "
                          "short run of it with OMP_NUM_THREADS=1 and add it to robustft.sweep.embedded_cost.")
    cost = run_cost(config, Throughput(1.0, 1.0))
    return (speed.start + cost.train_passes * speed.train + cost.eval_passes * speed.attack
            + cost.eval_forward * speed.forward)


def packed_wall(seconds: Sequence[float], jobs: int) -> float:
    """Wall seconds of running these runs ``jobs`` at a time in the given order, each on the first slot to free."""
    slots = [0.0] * max(1, jobs)
    for cost in seconds:
        heapq.heapreplace(slots, slots[0] + cost)  # the slot that frees first takes the next run
    return max(slots)


def embedded_plan(study: Study, configs: Sequence[dict[str, Any]], jobs: int = 2) -> str:
    """The embedded plan as printed: one row per run (axes, steps, passes, estimated CPU-minutes), the totals per
    backbone and the estimated wall time on ``jobs`` idle cores."""
    rows = []
    for arm, config in zip(study.arms, configs, strict=True):
        axes = dict(arm.axes)
        cost = run_cost(config, Throughput(1.0, 1.0))
        rows.append({"run": arm.name, "model": axes.get("models", ""), "dataset": axes.get("datasets", ""),
                     "eps": axes.get("eps", ""), "strategy": axes.get("strategies", ""),
                     "schedule": axes.get("schedules", ""), "steps": cost.steps,
                     "train kimg": cost.train_passes / 1e3,
                     "eval kimg": (cost.eval_passes + cost.eval_forward) / 1e3,
                     "CPU-min": run_seconds(config) / 60.0})
    table = pd.DataFrame(rows)
    # in run_study's order: by its relative cost (adversarial first), ties in the study's order
    order = sorted(range(len(configs)), key=lambda i: -relative_cost(configs[i]))
    wall = packed_wall([float(table["CPU-min"].iloc[i]) * 60.0 for i in order], jobs)
    lines = [f"plan of robustft reproduce {study.name}: {len(table)} runs (nothing is trained)", ""]
    lines.append(table.to_string(index=False, formatters={k: "{:.1f}".format for k in
                                                          ("train kimg", "eval kimg", "CPU-min")}))
    lines.append("")
    for model, part in table.groupby("model", sort=False):
        lines.append(f"  {model}: {len(part)} runs, {part['CPU-min'].sum():.1f} CPU-minutes")
    lines.append(f"total: {len(table)} runs, {table['CPU-min'].sum():.1f} CPU-minutes; estimated wall time "
                 f"{wall / 60:.1f} min on {jobs} idle cores ({jobs} runs at a time, one thread each, in the study's "
                 "order)")
    lines.append("calibration: CPU-seconds per image pass measured on this project's 2-core machine, one thread "
                 "(robustft.sweep.embedded_cost); evaluation attacks priced on every image (an upper bound).")
    return "\n".join(lines)
