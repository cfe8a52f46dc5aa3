"""Statistics over seeds: per-run summary numbers, their mean / std / n per configuration, and paper B's table per
eps schedule. Attainment bands of Pareto frontiers across seeds (``attainment.py``) and paired t-tests between
two schedules (``paired_tests.py``) are their own modules; this module re-exports their names.

A *configuration* (a group) is a run's resolved config minus what does not change the experiment: the seed,
the name, the output directory, the device, logging and checkpoint-keeping options (``NON_DEFINING``). Runs of a
``robustft sweep ... --seeds N`` grid point therefore form one group of N runs.

Summary numbers per run (``SUMMARY_NUMBERS``), each in [0, 1] unless stated:

- ``final_clean``: clean accuracy on the test split (val when no test records) at its last tracked evaluation;
- ``final_robust``: robust accuracy of the final model (the last step with an attack) on the same split at ``eps_g``
  (the config's ``eps.value``) when it was evaluated, else at the smallest eps evaluated (``robust_eps`` says which):
  the per-image worst case over every attack run there on the same images (the final strong evaluation
  ``final:<attack>``, the tracked attack and the robust curve's point at that eps): an image counts as robust only
  if every one of them left it correct (``outcomes.bin``). ``robust_worst_case`` says whether it was formed; where
  a run has no outcomes for them all, or they cover different images, the lowest of their accuracies (an upper
  bound on the worst case, which can only be lower or equal);
- ``final_ood``: mean clean accuracy over the OOD splits at their last evaluation;
- ``e_adv``: expected robustness (paper B) of the last evaluation that has one (worst attack);
- ``pareto_area``: the area dominated by the Pareto frontier of the run's own (clean, robust) cloud (paper A;
  equal to ``analysis.pareto_area`` of the run's points, computed here as the one-seed attainment area);
- ``percent_above_average``: the run's area against the mean area of the runs it is compared with: those of the
  same seed, dataset and backbone (paper A compares strategies on one task; matching the seed compares runs
  that saw the same data order). NaN when it has no company;
- ``onset_epoch`` (epochs) and ``peak_step`` (optimiser steps): paper B's onset of task adaptation (computed from
  the records, ``diagnostics.onset_of_adaptation``) and paper A's robust-accuracy peak (read from summary.json when
  the trainer wrote it) (``robustft.analysis.diagnostics``).

Standard deviations are sample standard deviations (ddof = 1; NaN for a single run).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustft.analysis.attainment import AttainmentBand, attainment_band
from robustft.analysis.diagnostics import onset_of_adaptation, onset_threshold, robust_peak
from robustft.analysis.paired_tests import (
    DEFAULT_MATCH,
    SCHEDULE_METRICS,
    PairedTest,
    paired_ttest,
    schedule_tests,
)
from robustft.config.units import parse_eps
from robustft.errors import ConfigError

# Only layers below robustft.analysis are imported: analysis re-exports this module's names, so importing it
# from here would be a cycle. The (clean, robust) pairing is therefore an argument of ``run_summaries``.
from robustft.runs import Run, records

# AttainmentBand, attainment_band, DEFAULT_MATCH, SCHEDULE_METRICS, PairedTest, paired_ttest and schedule_tests are
# re-exported: they were defined here before attainment.py and paired_tests.py, and are imported from here.
__all__ = [
    "DEFAULT_MATCH",
    "NON_DEFINING",
    "SCHEDULE_METRICS",
    "SUMMARY_NUMBERS",
    "AttainmentBand",
    "PairedTest",
    "attainment_band",
    "flatten_config",
    "group_runs",
    "paired_ttest",
    "run_summaries",
    "schedule_table",
    "schedule_tests",
    "seed_table",
]

SUMMARY_NUMBERS = ("final_clean", "final_robust", "final_ood", "e_adv", "pareto_area", "percent_above_average",
                   "onset_epoch", "peak_step")
# Config keys (dotted prefixes) that do not define an experiment: runs differing only there are seeds of one group.
NON_DEFINING = ("seed", "name", "output_dir", "device", "logging", "checkpoint", "data.root", "data.download")
_LABELS = {"data.name": "dataset", "model.name": "backbone", "strategy.name": "strategy",
           "objective.name": "objective", "eps.schedule": "schedule"}


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1e-3}}`` -> ``{"optim.lr": 1e-3}``; lists become JSON text (hashable, comparable)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, dotted + "."))
        elif isinstance(value, (list, tuple, Mapping)):
            flat[dotted] = json.dumps(value, sort_keys=True, default=str)
        else:
            flat[dotted] = value
    return flat


def _defining(key: str) -> bool:
    return not any(key == k or key.startswith(k + ".") for k in NON_DEFINING)


def _eps_value(value: Any) -> float:
    try:
        return parse_eps(value) if value is not None else math.nan
    except ConfigError:
        return math.nan


def group_runs(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: run, group (a readable label), seed, dataset, backbone, strategy, objective, schedule,
    eps_g.

    The group label lists the defining config keys whose values differ between groups (``strategy=full,
    schedule=scheduled``); with one group it is the run name without its ``-seed-N`` part.
    """
    flats = [flatten_config(run.config or {}) for run in runs]
    keys = [{k: v for k, v in flat.items() if _defining(k)} for flat in flats]
    identities = [json.dumps(k, sort_keys=True, default=str) for k in keys]
    values: dict[str, set[str]] = {}
    for key in keys:  # one pass: a key varies when its values differ across runs (absent counts as a value)
        for k in key:
            values.setdefault(k, set())
    for key in keys:
        for k, seen in values.items():
            seen.add(json.dumps(key.get(k), default=str))
    varying = sorted(k for k, seen in values.items() if len(seen) > 1)
    rows = []
    for run, flat, key, identity in zip(runs, flats, keys, identities, strict=True):
        if len(set(identities)) > 1:
            label = ", ".join(f"{_LABELS.get(k, k.removesuffix('.name'))}={key.get(k)}" for k in varying)
        else:
            label = re.sub(r"-seed-\d+$", "", run.name)
        seed = flat.get("seed")
        rows.append({"run": run.name, "group": label, "identity": identity,
                     "seed": int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else seed,
                     **{short: flat.get(dotted) for dotted, short in _LABELS.items()},
                     "eps_g": _eps_value(flat.get("eps.value"))})
    columns = ["run", "group", "identity", "seed", *_LABELS.values(), "eps_g"]
    return pd.DataFrame(rows, columns=columns)


def _preferred_split(frame: pd.DataFrame, preference: tuple[str, ...] = ("test", "val")) -> pd.DataFrame:
    """Per run, only the rows of the first split in ``preference`` the run has."""
    frame = frame[frame["split"].isin(preference)]
    if frame.empty:
        return frame
    rank = frame["split"].map({s: i for i, s in enumerate(preference)})
    return frame[rank == rank.groupby(frame["run"]).transform("min")]


def _last_step(frame: pd.DataFrame, by: Sequence[str] = ("run",)) -> pd.DataFrame:
    """Per ``by`` group, the rows at its largest step."""
    if frame.empty:
        return frame
    return frame[frame["step"] == frame.groupby(list(by))["step"].transform("max")]


def _final_numbers(metrics: pd.DataFrame, eps_g: Mapping[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """final_clean, final_robust (the lowest accuracy), robust_eps, final_ood, e_adv per run (index: run),
    vectorised over runs; and the records final_robust was taken over (one row per attack, columns as metrics)."""
    metrics = metrics.assign(eps=pd.to_numeric(metrics["eps"], errors="coerce"),
                             value=pd.to_numeric(metrics["value"], errors="coerce"))
    out = pd.DataFrame(index=pd.Index(pd.unique(metrics["run"]), name="run"))
    clean_mask = records.is_clean(metrics) & ~records.is_final(metrics)

    clean = _last_step(_preferred_split(metrics[clean_mask]))
    out["final_clean"] = clean.groupby("run")["value"].last()

    # Every attack run on the final model: tracked, final strong evaluation and the robust curve's points (eps > 0).
    # They attack the same evaluated images, so each is an upper bound on the robust accuracy and the lowest is the
    # tightest accuracy; run_summaries then forms the per-image worst case over them where outcomes.bin allows.
    attacked = records.is_robust(metrics, include_final=True) | (
        (metrics["metric"] == "curve_accuracy") & (metrics["eps"] > 0))
    robust = _last_step(_preferred_split(metrics[attacked]))
    if not robust.empty:
        target = robust["run"].map(eps_g).astype(float)
        at_target = pd.Series(np.isclose(robust["eps"], target, rtol=0, atol=1e-6), index=robust.index)
        has_target = at_target.groupby(robust["run"]).transform("any")
        smallest = robust["eps"] == robust.groupby("run")["eps"].transform("min")
        robust = _last_step(robust[np.where(has_target, at_target, smallest)])
        grouped = robust.groupby("run")
        out["final_robust"] = grouped["value"].min()
        out["robust_eps"] = grouped["eps"].first()
    else:
        out["final_robust"] = out["robust_eps"] = np.nan

    ood = _last_step(metrics[clean_mask & records.is_ood(metrics)], by=("run", "split"))
    out["final_ood"] = ood.groupby("run")["value"].mean()

    e_adv = _last_step(_preferred_split(metrics[metrics["metric"] == "expected_robustness"]))
    out["e_adv"] = e_adv.groupby("run")["value"].min()
    return out, robust


def worst_case_accuracy(outcomes: pd.DataFrame, records: pd.DataFrame) -> float | None:
    """The accuracy where an image counts as correct only if every attack of ``records`` left it correct.

    Args:
        outcomes: one run's ``Run.outcomes`` (step, split, metric, attack, eps, image_ids, correct).
        records: that run's metrics records to combine (step, split, metric, attack, eps), on the same images.

    Returns:
        The per-image worst case in [0, 1], or None when some record has no outcome row or the rows hold
        different images (then only the lowest accuracy is known).
    """
    if outcomes is None or outcomes.empty or records.empty:
        return None
    ids: np.ndarray | None = None
    correct: np.ndarray | None = None
    for record in records.itertuples(index=False):
        match = outcomes[(outcomes["step"] == record.step) & (outcomes["split"] == record.split)
                         & (outcomes["metric"] == record.metric) & (outcomes["attack"] == record.attack)
                         & np.isclose(outcomes["eps"].astype(float), float(record.eps), rtol=0, atol=1e-9)]
        if len(match) != 1:
            return None
        row_ids, row_correct = match["image_ids"].iloc[0], match["correct"].iloc[0]
        order = np.argsort(row_ids, kind="stable")
        row_ids, row_correct = row_ids[order], row_correct[order]
        if ids is None:
            ids, correct = row_ids, row_correct.copy()
        elif not np.array_equal(ids, row_ids):
            return None
        else:
            correct &= row_correct
    return float(correct.mean()) if correct is not None and correct.size else None


def _detection_numbers(run: Run) -> tuple[float, float]:
    """(onset epoch, robust-peak step): the onset computed from the records by ``diagnostics.onset_of_adaptation``
    (summaries written before its step-0 rule hold another onset), the peak from summary.json's detections,
    computed when the summary lacks them."""
    summary = run.summary if isinstance(run.summary, dict) else {}
    detection = summary.get("detection")
    if not isinstance(detection, dict) or "robust_peak" not in detection:
        detection = {"robust_peak": robust_peak(run.metrics)}
    onset = onset_of_adaptation(run.metrics, None, onset_threshold(run.config, summary)) or {}
    peak = detection.get("robust_peak") or {}
    number = [onset.get("epoch"), peak.get("step")]
    return tuple(float(x) if isinstance(x, (int, float)) else math.nan for x in number)  # type: ignore[return-value]


def run_summaries(runs: Sequence[Run], points: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every summary number of every run (see the module docstring), with its group and labels.

    Args:
        runs: the runs.
        points: their (clean, robust) evaluation pairs, ``analysis.tradeoff_points`` output (columns run, clean,
            robust): the caller chooses the split, attack and eps the Pareto areas use. None: no areas (NaN).

    Returns:
        One row per run: the ``group_runs`` columns, ``SUMMARY_NUMBERS`` and ``robust_eps`` (the eps of
        ``final_robust``). Missing numbers are NaN.
    """
    table = group_runs(runs).set_index("run")
    frames = [run.metrics.assign(run=run.name) for run in runs if len(run.metrics)]
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["run", "step", "split", "metric", "attack", "eps", "value"])
    finals, attacked = _final_numbers(metrics, table["eps_g"].to_dict())
    table = table.join(finals)
    table["robust_worst_case"] = False
    for run in runs:  # the per-image worst case where several attacks ran at the final eps (paper B: final + curve)
        records = attacked[attacked["run"] == run.name]
        if len(records) < 2:
            continue
        worst = worst_case_accuracy(run.outcomes, records)
        if worst is not None:
            table.loc[run.name, ["final_robust", "robust_worst_case"]] = [min(worst, table.loc[run.name,
                                                                                               "final_robust"]), True]
    points = pd.DataFrame(columns=["run", "clean", "robust"]) if points is None else points
    areas = {run: attainment_band([(part["clean"], part["robust"])]).area("best")
             for run, part in points.groupby("run")}
    table["pareto_area"] = pd.Series(areas, dtype=float)
    cell = ["seed", "dataset", "backbone"]
    keyed = table[cell].astype(str)
    mean = table.groupby([keyed[c] for c in cell])["pareto_area"].transform("mean")
    count = table.groupby([keyed[c] for c in cell])["pareto_area"].transform("count")
    table["percent_above_average"] = np.where((count >= 2) & (mean > 0),
                                              100.0 * (table["pareto_area"] - mean) / mean, np.nan)
    detections = [_detection_numbers(run) for run in runs]
    table["onset_epoch"] = pd.Series([d[0] for d in detections], index=[r.name for r in runs])
    table["peak_step"] = pd.Series([d[1] for d in detections], index=[r.name for r in runs])
    for column in (*SUMMARY_NUMBERS, "robust_eps"):
        if column not in table:
            table[column] = np.nan
    return table.reset_index()


def seed_table(summaries: pd.DataFrame, numbers: Sequence[str] = SUMMARY_NUMBERS,
               by: str | Sequence[str] = "group") -> pd.DataFrame:
    """Mean, sample standard deviation and count of each number per group (over its seeds).

    Args:
        summaries: ``run_summaries`` output.
        numbers: which columns to aggregate.
        by: the grouping column(s).

    Returns:
        One row per group: the ``by`` columns, ``runs`` and ``<number>_mean``, ``<number>_std`` (NaN for n < 2),
        ``<number>_n`` (runs where the number exists) for every number.
    """
    by = [by] if isinstance(by, str) else list(by)
    grouped = summaries.groupby(by, sort=True, dropna=False)
    out = grouped.size().rename("runs").to_frame()
    for number in numbers:
        values = pd.to_numeric(summaries[number], errors="coerce").groupby([summaries[b] for b in by], dropna=False)
        out[f"{number}_mean"] = values.mean()
        out[f"{number}_std"] = values.std(ddof=1)
        out[f"{number}_n"] = values.count()
    return out.reset_index()


def schedule_table(summaries: pd.DataFrame, per_configuration: bool = False) -> pd.DataFrame:
    """Paper B's table: per eps schedule, clean / adversarial at eps_g / E.adv as mean and std.

    Args:
        summaries: ``run_summaries`` output.
        per_configuration: also split by dataset, backbone, strategy and eps_g (mean and std over seeds);
            False pools every run of a schedule (mean and std over configurations and seeds, as paper B's
            averages over its 30 configurations).

    Returns:
        ``seed_table`` columns over ``SCHEDULE_METRICS``, grouped by schedule (and the configuration).
    """
    by = ["dataset", "backbone", "strategy", "eps_g", "schedule"] if per_configuration else ["schedule"]
    return seed_table(summaries.assign(**{b: summaries[b].astype(str) for b in by if b != "eps_g"}),
                      SCHEDULE_METRICS, by)
