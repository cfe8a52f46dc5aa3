"""``robustft reproduce ... --plan``: the runs of a study, what each costs, and the total, without training.

Every arm's config is resolved as for a real run (the same overrides), then priced by ``robustft.sweep.cost_model``
with a calibration (``robustft.sweep.cost_probe``: the shipped reference table or a measured probe). With
``--tune`` each run also carries the ASHA search that picks its lr / weight decay first (paper B's protocol),
priced as :func:`robustft.sweep.cost_model.asha_runs` full runs of it with ``robustft tune``'s defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from robustft.sweep.cost_model import asha_runs, run_cost
from robustft.sweep.cost_probe import Calibration
from robustft.sweep.cost_tables import architecture
from robustft.sweep.paper_grid import AXES
from robustft.sweep.study import Study

# Paper grids' axis -> the config key its value sets (the legend of the table).
AXIS_KEYS = {"models": "model.name", "datasets": "data.name"}
COLUMNS = {"models": "model", "datasets": "dataset", "eps": "eps", "strategies": "strategy", "schedules": "schedule"}


@dataclass(frozen=True)
class TuneBudget:
    """An ASHA search per run: trials, grace period (None: tune's default) and reduction factor."""

    trials: int
    grace: int | None
    reduction_factor: int


def tune_budget(trials: int | None = None) -> TuneBudget:
    """``robustft tune``'s defaults (read from ``run_tune``'s signature, so the plan follows them), ``trials``
    replacing the default number of trials when given."""
    from robustft.sweep.tune import run_tune

    defaults = {name: p.default for name, p in inspect.signature(run_tune).parameters.items()}
    return TuneBudget(int(trials or defaults["trials"]), defaults.get("grace_period"),
                      int(defaults.get("reduction_factor") or 3))


def _tune_runs(config: dict[str, Any], steps: int, tune: TuneBudget) -> float:
    """Full runs' worth of one ASHA search over this run (budget in epochs, or in steps for step-based runs)."""
    epochs = (config.get("train") or {}).get("epochs")
    by_epochs = not (config.get("train") or {}).get("steps")
    budget = int(epochs) if by_epochs and epochs else steps
    grace = tune.grace if tune.grace is not None else (1 if by_epochs else max(1, budget // 8))
    return asha_runs(tune.trials, budget, min(grace, budget), tune.reduction_factor)


def plan_table(study: Study, configs: Sequence[dict[str, Any]], calibration: Calibration,
               tune: TuneBudget | None = None) -> pd.DataFrame:
    """One row per run: its grid keys, length, image passes (millions) and GPU-hours (and its search's, with tune).

    Raises:
        ConfigError: a model or dataset the cost model cannot price, or one the calibration did not measure.
    """
    rows = []
    for arm, config in zip(study.arms, configs, strict=True):
        speed = calibration.speeds[architecture(str(config["model"]["name"]))]
        cost = run_cost(config, speed)
        axes = dict(arm.axes)
        row: dict[str, Any] = {"run": arm.name, **{COLUMNS[a]: axes.get(a, "") for a in AXES}}
        row.update({"epochs": (config.get("train") or {}).get("epochs") or "-", "steps": cost.steps,
                    "train Mimg": cost.train_passes / 1e6, "eval Mimg": (cost.eval_passes + cost.eval_forward) / 1e6,
                    "GPU-h": cost.gpu_hours})
        if tune is not None:
            row["tune GPU-h"] = cost.gpu_hours * _tune_runs(config, cost.steps, tune)
        rows.append(row)
    return pd.DataFrame(rows)


def _runs(count: int) -> str:
    return f"{count} run" + ("" if count == 1 else "s")


def _axis_lines(study: Study, configs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per axis: its values in the plan, with the config value of the model and dataset keys."""
    lines = []
    for axis in AXES:
        seen: dict[str, str] = {}
        for arm, config in zip(study.arms, configs, strict=True):
            short = dict(arm.axes).get(axis)
            if short is not None and short not in seen:
                section, _, key = AXIS_KEYS.get(axis, "").partition(".")
                seen[short] = f" = {AXIS_KEYS[axis]} {config[section][key]}" if key else ""
        if seen:
            lines.append(f"  {axis} ({len(seen)}): " + ", ".join(k + v for k, v in seen.items()))
    return lines


def format_plan(study: Study, configs: Sequence[dict[str, Any]], table: pd.DataFrame, calibration: Calibration,
                tune: TuneBudget | None = None) -> str:
    """The plan as printed: the axes, the table, per-model subtotals, the total and which calibration priced it."""
    lines = [f"plan of robustft reproduce {study.name}: {_runs(len(table))} (nothing is trained or downloaded)",
             *_axis_lines(study, configs), ""]
    formats = {"train Mimg": "{:.2f}".format, "eval Mimg": "{:.2f}".format, "GPU-h": "{:.2f}".format,
               "tune GPU-h": "{:.2f}".format}
    lines.append(table.to_string(index=False, formatters={k: v for k, v in formats.items() if k in table}))
    lines.append("")
    for model, part in table.groupby("model", sort=False):
        extra = f" + {part['tune GPU-h'].sum():.1f} tuning" if "tune GPU-h" in part else ""
        lines.append(f"  {model}: {_runs(len(part))}, {part['GPU-h'].sum():.1f} GPU-hours{extra}")
    total = table["GPU-h"].sum()
    text = f"total: {_runs(len(table))}, {total:.1f} GPU-hours"
    if tune is not None:
        tuning = table["tune GPU-h"].sum()
        grace = "grace period 1 epoch" if tune.grace is None else f"grace period {tune.grace}"
        text += (f" + {tuning:.1f} GPU-hours of ASHA searches (one per run: {tune.trials} trials, {grace}, "
                 f"reduction factor {tune.reduction_factor}) = {total + tuning:.1f} GPU-hours")
    lines += [text, calibration.description]
    return "\n".join(lines)
