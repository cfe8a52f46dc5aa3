"""What a finished ``robustft tune`` search writes: trials.csv, best.json and best.yaml (``TuneResult``)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from robustft.config.files import load_config
from robustft.config.schema import to_dict
from robustft.errors import RobustftError
from robustft.runs.metrics_file import atomic_write_text

SCORE = "score"  # the key trials report the metric under (record keys hold "/", Ray Tune's nesting separator)


@dataclass
class TuneResult:
    """What a search found.

    Attributes:
        best_values: the best trial's searched values (``{dotted key: value}``).
        best_metric: its metric at its last evaluation.
        best_trial: its Ray Tune trial id; its run directory is ``output_dir/trials/<id>``.
        best_yaml: the base config with the best values (``robustft train best.yaml``).
        trials: one row per trial: trial, the searched keys, last_time (in ``time_attr``), metric, completed.
        steps_run: optimiser steps run over every trial; steps_full: trials x the steps of a trial that ran to
            the end (0 when none did): what ASHA's early stops saved is ``steps_full - steps_run``.
        metric, mode: the record key tuned and ``max`` or ``min``.
    """

    best_values: dict[str, Any]
    best_metric: float
    best_trial: str
    best_yaml: Path
    output_dir: Path
    trials: pd.DataFrame
    steps_run: int
    steps_full: int
    metric: str = ""
    mode: str = "max"


def write_trials(out: Path, grid: Any, keys: list[str], time_attr: str, max_t: int) -> pd.DataFrame:
    """trials.csv: one row per trial Ray Tune knows of (trial, searched values, last step / time, metric)."""
    rows = []
    for result in grid:
        last = result.metrics or {}  # empty for a trial that has not reported yet (an interrupted search)
        rows.append({"trial": last.get("trial_id") or _trial_id(Path(str(result.path)).name),
                     **{k: (result.config or {}).get(k) for k in keys}, "last_step": last.get("step"),
                     "last_time": last.get(time_attr), "metric": last.get(SCORE),
                     "completed": last.get(time_attr) is not None and float(last[time_attr]) >= max_t,
                     "error": str(result.error) if result.error else ""})
    columns = ["trial", *keys, "last_step", "last_time", "metric", "completed", "error"]
    trials = pd.DataFrame(rows, columns=columns).sort_values("trial", ignore_index=True)
    atomic_write_text(out / "trials.csv", trials.to_csv(index=False))
    return trials


def _trial_id(dirname: str) -> str:
    """The trial id in Ray Tune's trial directory name ``_trial_936e6_00005_5_optim_lr=0.0673_<date>``: the
    searcher's 5-hex prefix and counter (``BasicVariantGenerator``); the name itself if it has none."""
    found = re.search(r"(?:^|_)([0-9a-f]{5}_\d{5})(?:_|$)", dirname)
    return found.group(1) if found else dirname


def write_results(out: Path, grid: Any, keys: list[str], config: str | Path, fixed: Sequence[str], name: str,
                   time_attr: str, max_t: int, mode: str, metric: str) -> TuneResult:
    trials = write_trials(out, grid, keys, time_attr, max_t)
    steps_run = int(pd.to_numeric(trials["last_step"]).fillna(0).sum())
    # the per-trial budget in steps: what a trial that ran to the end reached
    full = pd.to_numeric(trials.loc[trials["completed"], "last_step"]).max() if trials["completed"].any() else 0
    scored = trials.dropna(subset=["metric"])
    if scored.empty:
        raise RobustftError(f"no trial reported {metric}; see the trials' run directories in {out / 'trials'} and "
                            f"Ray Tune's logs in {out / 'ray'}.")
    pool = scored[scored["completed"]] if scored["completed"].any() else scored
    best = pool.sort_values("metric", ascending=(mode == "min")).iloc[0]
    values = {k: _plain(best[k]) for k in keys}
    cfg = load_config(config, [*fixed, *(f"{k}={v}" for k, v in values.items()), f"name={name}-tuned"])
    best_yaml = out / "best.yaml"
    atomic_write_text(best_yaml, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    payload = {"metric": metric, "mode": mode, "value": float(best["metric"]), "values": values,
               "trial": str(best["trial"]), "run_dir": str(out / "trials" / str(best["trial"])),
               "completed": bool(best["completed"]), "trials": len(trials), "config": str(best_yaml)}
    atomic_write_text(out / "best.json", json.dumps(payload, indent=2) + "\n")
    return TuneResult(values, float(best["metric"]), str(best["trial"]), best_yaml, out, trials, steps_run,
                      int(full) * len(trials), metric, mode)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers (YAML and JSON writable)."""
    return value.item() if hasattr(value, "item") else value
