"""The terminal summary of a study: one row per strategy (paper A) and per schedule (paper B), then the findings.

Rows are computed from the runs' records with the library's own analysis (``analysis.frontier_table``,
``diagnostics.robust_peak`` / ``onset_of_adaptation``), so the terminal, the report and ``robustft query`` agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustft.analysis.diagnostics import onset_of_adaptation, onset_threshold, robust_peak
from robustft.analysis.findings import Finding
from robustft.analysis.pareto import pareto_area
from robustft.analysis.seed_stats import run_summaries
from robustft.analysis.tradeoff import frontier_table, tradeoff_points
from robustft.config.units import format_eps
from robustft.runs import records

_SPLITS = ("test", "val", "train")


def _final_value(metrics: pd.DataFrame, mask: pd.Series) -> float | None:
    rows = metrics[mask]
    for split in _SPLITS:
        part = rows[rows["split"] == split]
        if len(part):
            return float(part.assign(_o=range(len(part))).sort_values(["step", "_o"])["value"].iloc[-1])
    return None


def _eps_mask(metrics: pd.DataFrame, eps: float | None) -> pd.Series:
    values = pd.to_numeric(metrics["eps"], errors="coerce")
    if eps is None:
        eps = values[records.is_robust(metrics)].min()
    return pd.Series(np.isclose(values.fillna(-1.0), float(eps)) if pd.notna(eps) else False, index=metrics.index)


def strategy_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Paper A: per run, clean and robust accuracy at the end, its own Pareto area, % above the strategies' average
    area, robust peak step; with ``area_mean``, ``area_std`` and ``seeds`` of its strategy (``frontier_table``: the
    mean of the per-run areas, never the area of the seeds' pooled points, which grows with every seed).

    The average a run is compared with is that of the strategies on its own backbone and task (a study over two
    backbones and two tasks holds four such comparisons, as paper A computes "% above average" per dataset).

    Args:
        runs: objects with ``name``, ``config``, ``metrics`` and ``labels`` (``label``: the strategy).
    """
    settings: dict[tuple[str, str], list[Any]] = {}
    for run in runs:
        settings.setdefault(_setting(run), []).append(run)
    by_name = {row["run"]: row for group in settings.values() for row in _setting_rows(group)}
    return [by_name[run.name] for run in runs]


def _setting(run: Any) -> tuple[str, str]:
    config = run.config or {}
    return (str((config.get("model") or {}).get("name", "")), str((config.get("data") or {}).get("name", "")))


def _setting_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """``strategy_rows`` for runs of one backbone and task."""
    if not runs:
        return []
    metrics = pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True)
    points = tradeoff_points(metrics)
    label = {r.name: r.labels.get("label", r.name) for r in runs}
    table = (frontier_table(points.assign(label=points["run"].map(label)), group_by="label").set_index("group")
             if len(points) else None)
    # Each strategy counts once in the average, however many seeds it has.
    average = float(table["area"].mean()) if table is not None and len(table) >= 2 else None
    rows = []
    for run in runs:
        m = run.metrics
        clean = _final_value(m, records.is_clean(m) & ~records.is_final(m) & ~records.is_ood(m))
        robust = _final_value(m, records.is_robust(m) & _eps_mask(m, None))
        peak = robust_peak(m)
        own = points[points["run"] == run.name]
        area = pareto_area(own["clean"], own["robust"]) if len(own) else None
        group = table.loc[label[run.name]] if table is not None and label[run.name] in table.index else None
        rows.append({"strategy": label[run.name], "run": run.name, "clean": clean, "robust": robust, "area": area,
                     "above_average": 100.0 * (area - average) / average if area is not None and average else None,
                     "area_mean": None if group is None else float(group["area"]),
                     "area_std": None if group is None or pd.isna(group["area_std"]) else float(group["area_std"]),
                     "seeds": None if group is None else int(group["n_runs"]),
                     "peak_step": peak["step"] if peak else None, "peak": peak["value"] if peak else None})
    return rows


def _seed_spreads(rows: Sequence[dict[str, Any]]) -> str | None:
    """``full 0.210 ± 0.020 (3 seeds), ...`` for the strategies with several runs, else None."""
    spreads = {row["strategy"]: row for row in rows if (row.get("seeds") or 0) > 1}
    if not spreads:
        return None
    return ", ".join(f"{name} {row['area_mean']:.3f} ± {row['area_std']:.3f} ({row['seeds']} seeds)"
                     for name, row in spreads.items())


def schedule_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Paper B: per run, clean accuracy, adversarial accuracy at eps_g, E.adv, and the onset epoch of task adaptation
    (``diagnostics.onset_of_adaptation``: the first evaluation after step 0 above the threshold).

    The adversarial accuracy is ``seed_stats.run_summaries``' ``final_robust``, the report's: the per-image worst case
    of the attacks run on the final model at eps_g (the final strong evaluation, the robust curve's point there, a
    tracked attack), or the lowest of their accuracies for a run without outcomes.
    A run without any attack at eps_g has none (its smaller eps is not eps_g's number).
    """
    if not runs:
        return []
    summaries = run_summaries(runs).set_index("run")
    rows = []
    for run in runs:
        m = run.metrics
        numbers = summaries.loc[run.name]
        at_eps_g = pd.notna(numbers["final_robust"]) and pd.notna(numbers["eps_g"]) and bool(
            np.isclose(numbers["robust_eps"], numbers["eps_g"], rtol=0, atol=1e-6))
        onset = onset_of_adaptation(m, None, onset_threshold(run.config, run.summary))
        rows.append({"schedule": run.labels.get("label", run.name), "run": run.name, "ramp": eps_ramp(run.summary),
                     "clean": _final_value(m, records.is_clean(m) & ~records.is_final(m) & ~records.is_ood(m)),
                     "adversarial": float(numbers["final_robust"]) if at_eps_g else None,
                     "eps": float(numbers["eps_g"]) if pd.notna(numbers["eps_g"]) else None,
                     "e_adv": _final_value(m, m["metric"] == "expected_robustness"),
                     "onset_epoch": None if onset is None else onset["epoch"]})
    return rows


def eps_ramp(summary: dict[str, Any] | None) -> str:
    """How the run's training eps moved, from its summary's resolved schedule: ``"T1-T2"`` in the schedule's unit
    (epochs or steps; eps 0 before T1, eps_g from T2), ``"eps_g throughout"`` for RFT-fix (T1 = T2 = 0),
    ``"0 throughout"`` for standard fine-tuning and for an
    ``auto`` schedule whose plateau never came (then the run *is* standard fine-tuning, which the table must say:
    its numbers equal the reference's), ``"random"`` for ``uniform`` (eps drawn per batch), ``"-"`` if unknown.

    An adversarial or TRADES run whose objective crafted no perturbation at all (summary.json's ``perturbed_steps``
    is 0: a plateau too late, a ramp beyond the run's end) reads ``"never perturbed"``, with the ramp it was given
    in brackets: whatever its schedule's name, it trained as standard fine-tuning did.
    """
    summary = summary or {}
    schedule, resolved = summary.get("eps_schedule"), summary.get("eps_resolved") or {}
    t1, t2, per = resolved.get("t1"), resolved.get("t2"), resolved.get("per", "epoch")
    if schedule == "zero" or summary.get("objective") == "standard":
        return "0 throughout"
    if schedule == "uniform":
        ramp = "random"
    elif schedule == "auto" and t1 is None:
        ramp = "no plateau"
    elif t1 is None or t2 is None:
        ramp = "-"
    elif t1 == 0 and t2 == 0:  # RFT-fix: no ramp ("epoch 0-0" read as a ramp of nothing)
        ramp = "eps_g throughout"
    else:
        ramp = f"{per} {t1:g}-{t2:g}"
    if summary.get("perturbed_steps") == 0:
        return f"never perturbed ({ramp})"
    return "0 throughout (no plateau)" if ramp == "no plateau" else ramp


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, Any]]) -> str:
    """A fixed-width text table: columns are (key, title, formatter)."""
    cells = [[title for _, title, _ in columns]]
    cells += [[fmt(row.get(key)) for key, _, fmt in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths,
                     strict=True))) for line in cells)


def format_summary(strategies: Sequence[dict[str, Any]], schedules: Sequence[dict[str, Any]],
                   found: Sequence[Finding]) -> str:
    """The text the demo prints: the two tables, then each finding's verdict and sentence."""
    parts = []
    if strategies:
        parts.append("Paper A: fine-tuning strategies (test accuracy in %, robust = PGD at the tracked eps)")
        parts.append(format_table(strategies, [
            ("strategy", "strategy", str), ("clean", "clean", _pct), ("robust", "robust", _pct),
            ("area", "Pareto area", lambda v: "-" if v is None else f"{v:.3f}"),
            ("above_average", "vs average", lambda v: "-" if v is None else f"{v:+.0f}%"),
            ("peak_step", "robust peak at step", lambda v: "-" if v is None else str(v))]))
        spreads = _seed_spreads(strategies)
        if spreads:
            parts.append(f"Pareto area, mean ± std over seeds: {spreads}")
    if schedules:
        eps = next((r["eps"] for r in schedules if r.get("eps")), None)
        eps_text = format_eps(eps) if eps else "eps_g"
        parts.append(f"\nPaper B: perturbation schedules (test accuracy in %; adversarial = the per-image worst "
                     f"case of the final attack and the robust curve at {eps_text}, on the same images)")
        parts.append(format_table(schedules, [
            ("schedule", "schedule", str), ("ramp", "eps ramp T1-T2", str), ("clean", "clean", _pct),
            ("adversarial", f"adv @ {eps_text}", _pct),
            ("e_adv", "E.adv", _pct),
            ("onset_epoch", "onset epoch", lambda v: "never" if v is None else f"{v:.2f}")]))
    if found:
        parts.append("\nFindings")
        # A study over several backbones / tasks tests a claim once per setting: name it, or the lines look repeated
        # (skip lines name the runs they lack, not a setting tested)
        settings: dict[str, set[str]] = {}
        for finding in found:
            if finding.verdict != "skipped" and finding.setting:
                settings.setdefault(finding.paper, set()).add(finding.setting)
        for finding in found:
            several = len(settings.get(finding.paper, ())) > 1
            where = f" ({finding.setting})" if several and finding.verdict != "skipped" else ""
            parts.append(f"  [{finding.verdict.upper()}] paper {finding.paper}{where}: {finding.claim}\n"
                         f"      {finding.why}")
    return "\n".join(parts)
