"""Report sections over seeds and schedules: mean +- std per configuration, attainment bands of the Pareto
frontiers across seeds, paper B's table per eps schedule with paired t-tests, and the schedule figure.

``build_report`` calls ``seed_sections`` once; the numbers come from ``robustft.analysis.seed_stats`` (which says how
each is defined). Sections appear only when they have something to say: spreads when a configuration has two
or more seeds, paper B's table when runs train adversarially, t-tests when two schedules can be paired.

This module builds plain values (text, formatted numbers, figure dicts), never HTML: the partial template
``seed_sections.html`` (included by ``page.html``, autoescaped) lays them out and escapes every one. A table is
``{"columns": {key: title}, "rows": [{key: cell}]}`` where a cell is text, None (shown as a dash), or a spread
``{"mean": text, "std": text or None}`` (shown as ``mean +- std``).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from robustft.analysis.findings import paper_b_run_names  # noqa: E402
from robustft.analysis.seed_stats import (  # noqa: E402
    SCHEDULE_METRICS,
    SUMMARY_NUMBERS,
    attainment_band,
    group_runs,
    run_summaries,
    schedule_table,
    schedule_tests,
    seed_table,
)
from robustft.analysis.tradeoff import tradeoff_points  # noqa: E402
from robustft.config.units import format_eps  # noqa: E402
from robustft.report.figures import staircase  # noqa: E402
from robustft.report.schedule_figure import MAX_PANELS, schedule_figure  # noqa: E402
from robustft.runs import Run  # noqa: E402

# (figure, file stem, report directory, caption) -> the template's figure ({"src": data URI, "caption": text})
FigureFn = Callable[[Figure, str, Path, str], dict[str, str]]
Spread = dict[str, str | None]
MAX_BANDS = 8  # frontier bands drawn in one figure (the table lists every group)
TITLES = {"final_clean": "clean", "final_robust": "robust", "final_ood": "OOD", "e_adv": "E.adv",
          "pareto_area": "Pareto area", "percent_above_average": "vs average", "onset_epoch": "onset epoch",
          "peak_step": "peak step"}
ACCURACIES = {"final_clean", "final_robust", "final_ood", "e_adv"}


def _spread(mean: float, std: float, n: int, number: str) -> Spread | None:
    """``{"mean", "std"}`` as text (accuracies in %, areas to 4 places, % signed, epochs / steps to 1 place); std
    None for one run, the whole cell None (a dash) when no run has the number."""
    if n == 0 or pd.isna(mean):
        return None
    scale, digits, sign = (100.0, 1, "") if number in ACCURACIES else (1.0, 4, "") if number == "pareto_area" \
        else (1.0, 1, "+") if number == "percent_above_average" else (1.0, 1, "")
    return {"mean": f"{scale * mean:{sign}.{digits}f}",
            "std": f"{scale * std:.{digits}f}" if n > 1 and not pd.isna(std) else None}


def _table(rows: Sequence[dict[str, Any]], columns: dict[str, str]) -> dict[str, Any]:
    """A table for the template: ``columns`` maps each row key to its title, in order."""
    return {"columns": dict(columns), "rows": list(rows)}


def spread_rows(table: pd.DataFrame, keys: Sequence[str], numbers: Sequence[str]) -> list[dict[str, Any]]:
    """Cells of a ``seed_table``: the key columns as text, ``runs``, then a spread (or None) per number."""
    rows = []
    for record in table.to_dict("records"):
        row: dict[str, Any] = {key: format_eps(record[key]) if key == "eps_g" and not pd.isna(record[key])
                               else str(record[key]) for key in keys}
        row["runs"] = str(int(record["runs"]))
        for number in numbers:
            row[number] = _spread(record[f"{number}_mean"], record[f"{number}_std"], int(record[f"{number}_n"]),
                                  number)
        rows.append(row)
    return rows


def band_figure(bands: Sequence[tuple[str, object]]) -> Figure:
    """Per configuration, the region reached by at least one seed / by every seed (shaded between the two
    attainment surfaces) and the median surface (line); see ``seed_stats.AttainmentBand``."""
    fig, ax = plt.subplots(figsize=(5.8, 4.6))
    top = 0.05
    for index, (label, band) in enumerate(bands):
        colour = f"C{index % 10}"
        if not len(band.clean):
            continue
        # step="pre": a value holds on the interval ending at its breakpoint, (clean[j-1], clean[j]]
        ax.fill_between([0.0, *band.clean], [band.worst[0], *band.worst], [band.best[0], *band.best], step="pre",
                        color=colour, alpha=0.18, lw=0)
        median = band.surface("median")
        xs, ys = staircase(median["clean"].to_numpy(), median["robust"].to_numpy())
        ax.plot(xs, ys, color=colour, lw=1.8, label=f"{label} (n={band.n_seeds})")
        top = max(top, float(band.best.max()))
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("robust accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, top * 1.15)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Pareto frontiers across seeds: reached by one / every seed (band), median (line)", fontsize=9)
    fig.tight_layout()
    return fig


def _adversarial(summaries: pd.DataFrame) -> pd.Series:
    """Runs trained with a perturbation (an objective other than standard fine-tuning)."""
    return summaries["objective"].notna() & (summaries["objective"].astype(str) != "standard")


# Paper B's names for the schedules, for the figure's panels (the tables keep the config's names).
PAPER_B_NAMES = {"constant": "RFT-fix", "scheduled": "Epsilon-Scheduling", "zero": "standard fine-tuning",
                 "linear": "linear warm-up"}
NEVER_PERTURBED = " (never perturbed)"
TITLE_WIDTH = 44  # characters per line of a panel title: wider ones ran into the next panel's


def _paper_b_summaries(runs: Sequence[Run], summaries: pd.DataFrame) -> pd.DataFrame:
    """The rows of paper B's runs (``findings.paper_b_run_names``: perturbing runs and their standard references).

    A perturbing run that never perturbed (summary.json ``perturbed_steps == 0``) is standard fine-tuning under its
    schedule's name: its schedule reads ``<schedule> (never perturbed)``, so it is not averaged, tested or drawn as
    that schedule. ``final_robust`` at another eps than eps_g (a reference evaluated at 1/255) is left out (NaN): the
    column is adversarial accuracy at eps_g.
    """
    table = summaries[summaries["run"].isin(paper_b_run_names(runs))].copy()
    idle = {run.name for run in runs if isinstance(run.summary, dict) and run.summary.get("perturbed_steps") == 0}
    idle_rows = table["run"].isin(idle) & _adversarial(table)
    table.loc[idle_rows, "schedule"] = table.loc[idle_rows, "schedule"].astype(str) + NEVER_PERTURBED
    at_eps_g = np.isclose(table["robust_eps"].astype(float), table["eps_g"].astype(float), rtol=0, atol=1e-6)
    table.loc[~at_eps_g, "final_robust"] = np.nan
    return table


TITLE_LINES = 4  # at most, the name included; the rest of a longer label is cut with "..."


def panel_title(schedule: str, group: str) -> str:
    """A schedule-figure panel's title: paper B's name of the schedule (``RFT-fix``), then the settings that tell
    the panel's configuration apart from the others' (``group``), wrapped to ``TITLE_WIDTH`` characters."""
    base = schedule.removesuffix(NEVER_PERTURBED)
    name = PAPER_B_NAMES.get(base, base) + (f" ({base})" if base in PAPER_B_NAMES else "")
    name += NEVER_PERTURBED if schedule.endswith(NEVER_PERTURBED) else ""
    rest = ", ".join(part for part in str(group).split(", ") if not part.startswith("schedule="))
    return "\n".join([name, *textwrap.wrap(rest, TITLE_WIDTH, max_lines=TITLE_LINES - 1, placeholder=" ...")])


def seed_sections(runs: Sequence[Run], metrics: pd.DataFrame, out: Path, figure: FigureFn) -> dict[str, Any]:
    """The values of the seed and schedule sections (``seed_sections.html`` lays them out).

    Args:
        runs: the report's runs.
        metrics: their records with a ``run`` column (what ``build_report`` concatenated).
        out: the report directory (figures are saved there by ``figure``).
        figure: ``(figure, file stem, out, caption) -> {"src", "caption"}`` (the report's own).

    Returns:
        ``{"spread": ..., "schedules": ...}``, each None when the section has nothing to say. ``spread``:
        ``table`` (mean +- std per configuration) and ``bands`` (None, or ``figure`` and ``table`` of the
        attainment areas). ``schedules``: the ``pooled`` and ``per_configuration`` tables, ``tests`` (a table or
        None) and ``figure`` (or None).
    """
    points = tradeoff_points(metrics) if len(metrics) else pd.DataFrame(columns=["run", "step", "clean", "robust"])
    summaries = run_summaries(runs, points)
    return {
        "spread": _spread_section(summaries, points, out, figure)
        if summaries.groupby("group").size().max() >= 2 else None,
        "schedules": _schedule_section(runs, _paper_b_summaries(runs, summaries), out, figure)
        if _adversarial(summaries).any() else None,
    }


def _spread_section(summaries: pd.DataFrame, points: pd.DataFrame, out: Path, figure: FigureFn) -> dict[str, Any]:
    table = seed_table(summaries)
    section: dict[str, Any] = {
        "table": _table(spread_rows(table, ["group"], SUMMARY_NUMBERS),
                        {"group": "configuration", "runs": "seeds", **{n: TITLES[n] for n in SUMMARY_NUMBERS}}),
        "bands": None}
    bands = []
    for group, part in summaries.groupby("group", sort=True):
        clouds = [(cloud["clean"].to_numpy(), cloud["robust"].to_numpy())
                  for _, cloud in points[points["run"].isin(part["run"])].groupby("run")]
        if len(clouds) >= 2:
            bands.append((str(group), attainment_band(clouds)))
    if bands:
        bands.sort(key=lambda item: -item[1].area("median"))
        shown = bands[:MAX_BANDS]
        caption = "Pareto frontiers across seeds: shaded from the region every seed reaches to the region one seed "\
                  "reaches; line: reached by at least half of the seeds"
        if len(bands) > len(shown):
            caption += f" ({len(shown)} of {len(bands)} configurations, largest median area first)"
        section["bands"] = {
            "figure": figure(band_figure(shown), "pareto_bands", out, caption),
            "table": _table([{"group": label, "n": str(band.n_seeds),
                              **{w: f"{band.area(w):.4f}" for w in ("worst", "median", "best")}}
                             for label, band in bands],
                            {"group": "configuration", "n": "seeds", "worst": "area reached by every seed",
                             "median": "by half (median)", "best": "by one seed"})}
    return section


def _schedule_section(runs: Sequence[Run], summaries: pd.DataFrame, out: Path,
                      figure: FigureFn) -> dict[str, Any]:
    names = {n: TITLES[n] for n in SCHEDULE_METRICS} | {
        "final_robust": "adversarial @ eps_g (per-image worst case of final attack and robust curve)"}
    keys = ["dataset", "backbone", "strategy", "eps_g", "schedule"]
    section: dict[str, Any] = {
        "pooled": _table(spread_rows(schedule_table(summaries), ["schedule"], SCHEDULE_METRICS),
                         {"schedule": "schedule", "runs": "runs", **names}),
        "per_configuration": _table(spread_rows(schedule_table(summaries, per_configuration=True), keys,
                                                SCHEDULE_METRICS), {**{k: k for k in keys}, "runs": "seeds", **names}),
        "tests": None, "figure": None}
    tests = schedule_tests(summaries)
    tests = tests[tests["n_pairs"] > 0]  # schedules with no run to pair (another objective) have nothing to test
    if len(tests):
        section["tests"] = _table([{
            "pair": f"{r['b']} vs {r['a']}", "metric": names.get(r["metric"], r["metric"]),
            "n": str(int(r["n_pairs"])), "diff": None if pd.isna(r["mean_difference"])
            else f"{100 * r['mean_difference']:+.1f}", "t": None if pd.isna(r["t"]) else f"{r['t']:.2f}",
            "p": None if pd.isna(r["p"]) else f"{r['p']:.3g}"} for r in tests.to_dict("records")],
            {"pair": "schedules", "metric": "metric", "n": "pairs", "diff": "mean difference", "t": "t",
             "p": "p (two-sided)"})
    by_name = {run.name: run for run in runs}
    adversarial = summaries[_adversarial(summaries)]
    # Labelled by what varies among these runs only: every setting the report's other runs vary in made titles of
    # a dozen lines.
    labels = group_runs([by_name[name] for name in adversarial["run"]]).set_index("run")["group"]
    adversarial = adversarial.assign(group=adversarial["run"].map(labels))
    panels = []
    for (group, schedule), part in adversarial.groupby(["group", "schedule"], sort=True):
        panels.append((panel_title(str(schedule), str(group)), [(by_name[r["run"]].metrics, float(r["eps_g"]),
                                     None if pd.isna(r["onset_epoch"]) else float(r["onset_epoch"]))
                                    for r in part.to_dict("records") if not math.isnan(float(r["eps_g"]))]))
    panels = [p for p in panels if p[1]]
    if panels:
        caption = "eps schedule alpha(t) (dashed) and validation clean accuracy (solid) per run; dotted: onset"
        if len(panels) > MAX_PANELS:
            caption += f" ({MAX_PANELS} of {len(panels)} configurations)"
        section["figure"] = figure(schedule_figure(panels), "eps_schedules", out, caption)
    return section
