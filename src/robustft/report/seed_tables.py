"""Report sections over seeds and schedules: mean +- std per configuration, attainment bands of the Pareto
frontiers across seeds, paper B's table per eps schedule with paired t-tests, and the schedule figure.

``build_report`` calls ``seed_sections`` once; the numbers come from ``robustft.analysis.seed_stats`` (which says how
each is defined). Sections appear only when they have something to say: spreads when a configuration has two
or more seeds, paper B's table when runs train adversarially, t-tests when two schedules can be paired.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from robustft.analysis.seed_stats import (  # noqa: E402
    SCHEDULE_METRICS,
    SUMMARY_NUMBERS,
    RunLike,
    attainment_band,
    run_summaries,
    schedule_table,
    schedule_tests,
    seed_table,
)
from robustft.analysis.tradeoff import tradeoff_points  # noqa: E402
from robustft.config.units import format_eps  # noqa: E402
from robustft.report.figures import staircase  # noqa: E402
from robustft.report.schedule_figure import MAX_PANELS, schedule_figure  # noqa: E402

FigureHtml = Callable[[Figure, str, Path, str], str]
MAX_BANDS = 8  # frontier bands drawn in one figure (the table lists every group)
TITLES = {"final_clean": "clean", "final_robust": "robust", "final_ood": "OOD", "e_adv": "E.adv",
          "pareto_area": "Pareto area", "percent_above_average": "vs average", "onset_epoch": "onset epoch",
          "peak_step": "peak step"}
ACCURACIES = {"final_clean", "final_robust", "final_ood", "e_adv"}


def _spread(mean: float, std: float, n: int, number: str) -> str:
    """``mean +- std`` (accuracies in %, areas to 4 places, % signed, epochs / steps to 1 place)."""
    if n == 0 or pd.isna(mean):
        return "&ndash;"
    scale, digits, sign = (100.0, 1, "") if number in ACCURACIES else (1.0, 4, "") if number == "pareto_area" \
        else (1.0, 1, "+") if number == "percent_above_average" else (1.0, 1, "")
    text = f"{scale * mean:{sign}.{digits}f}"
    if n > 1 and not pd.isna(std):
        text += f" &plusmn; {scale * std:.{digits}f}"
    return text


def _table(rows: Sequence[dict[str, str]], columns: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title in columns.values())
    body = "".join("<tr>" + "".join(f"<td>{row.get(key, '')}</td>" for key in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def spread_rows(table: pd.DataFrame, keys: Sequence[str], numbers: Sequence[str]) -> list[dict[str, str]]:
    """HTML cells of a ``seed_table``: the key columns escaped, then ``mean +- std`` per number."""
    rows = []
    for record in table.to_dict("records"):
        row = {key: html.escape(format_eps(record[key]) if key == "eps_g" and not pd.isna(record[key])
                                else str(record[key])) for key in keys}
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


def seed_sections(runs: Sequence[RunLike], metrics: pd.DataFrame, out: Path, figure_html: FigureHtml) -> list[str]:
    """HTML parts: spreads over seeds with attainment bands, and paper B's schedule table, t-tests and figure.

    Args:
        runs: the report's runs.
        metrics: their records with a ``run`` column (what ``build_report`` concatenated).
        out: the report directory (figures are saved there by ``figure_html``).
        figure_html: ``(figure, file stem, out, caption) -> <figure> HTML`` (the report's own).
    """
    points = tradeoff_points(metrics) if len(metrics) else pd.DataFrame(columns=["run", "step", "clean", "robust"])
    summaries = run_summaries(runs, points)
    parts: list[str] = []
    if summaries.groupby("group").size().max() >= 2:
        parts += _spread_section(summaries, points, out, figure_html)
    if _adversarial(summaries).any():
        parts += _schedule_section(runs, summaries, out, figure_html)
    return parts


def _spread_section(summaries: pd.DataFrame, points: pd.DataFrame, out: Path, figure_html: FigureHtml) -> list[str]:
    parts = ["<h2>Seeds and spreads</h2>",
             '<p class="muted">Per configuration (every run setting but the seed): mean &plusmn; sample standard '
             "deviation over its seeds; accuracies in %. Final numbers are on the test split; robust accuracy at "
             "eps_g from the final strong evaluation when there is one; &ldquo;vs average&rdquo; compares runs of "
             "one seed and task (robustft.analysis.seed_stats).</p>"]
    table = seed_table(summaries)
    parts.append(_table(spread_rows(table, ["group"], SUMMARY_NUMBERS),
                        {"group": "configuration", "runs": "seeds", **{n: TITLES[n] for n in SUMMARY_NUMBERS}}))
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
        parts.append(figure_html(band_figure(shown), "pareto_bands", out, caption))
        parts.append(_table([{"group": html.escape(label), "n": str(band.n_seeds),
                              **{w: f"{band.area(w):.4f}" for w in ("worst", "median", "best")}}
                             for label, band in bands],
                            {"group": "configuration", "n": "seeds", "worst": "area reached by every seed",
                             "median": "by half (median)", "best": "by one seed"}))
    return parts


def _schedule_section(runs: Sequence[RunLike], summaries: pd.DataFrame, out: Path,
                      figure_html: FigureHtml) -> list[str]:
    parts = ["<h2>Eps schedules (paper B)</h2>",
             '<p class="muted">Per schedule: clean accuracy, adversarial accuracy at eps_g and expected robustness '
             "E.adv, mean &plusmn; std over every run of the schedule, then per configuration over seeds.</p>"]
    names = {n: TITLES[n] for n in SCHEDULE_METRICS} | {"final_robust": "adversarial @ eps_g"}
    parts.append(_table(spread_rows(schedule_table(summaries), ["schedule"], SCHEDULE_METRICS),
                        {"schedule": "schedule", "runs": "runs", **names}))
    keys = ["dataset", "backbone", "strategy", "eps_g", "schedule"]
    parts.append(_table(spread_rows(schedule_table(summaries, per_configuration=True), keys, SCHEDULE_METRICS),
                        {**{k: k for k in keys}, "runs": "seeds", **names}))
    tests = schedule_tests(summaries)
    if len(tests):
        parts.append('<p class="muted">Paired t-tests (scipy.stats.ttest_rel) of each schedule against the '
                     "reference over runs matched on dataset, backbone, strategy, objective, eps_g and seed; "
                     "difference = schedule &minus; reference, in points.</p>")
        parts.append(_table([{
            "pair": html.escape(f"{r['b']} vs {r['a']}"), "metric": html.escape(names.get(r["metric"], r["metric"])),
            "n": str(int(r["n_pairs"])), "diff": "&ndash;" if pd.isna(r["mean_difference"])
            else f"{100 * r['mean_difference']:+.1f}", "t": "&ndash;" if pd.isna(r["t"]) else f"{r['t']:.2f}",
            "p": "&ndash;" if pd.isna(r["p"]) else f"{r['p']:.3g}"} for r in tests.to_dict("records")],
            {"pair": "schedules", "metric": "metric", "n": "pairs", "diff": "mean difference", "t": "t",
             "p": "p (two-sided)"}))
    by_name = {run.name: run for run in runs}
    adversarial = summaries[_adversarial(summaries)]
    panels = []
    for group, part in adversarial.groupby("group", sort=True):
        panels.append((str(group), [(by_name[r["run"]].metrics, float(r["eps_g"]),
                                     None if pd.isna(r["onset_epoch"]) else float(r["onset_epoch"]))
                                    for r in part.to_dict("records") if not math.isnan(float(r["eps_g"]))]))
    panels = [p for p in panels if p[1]]
    if panels:
        caption = "eps schedule alpha(t) (dashed) and validation clean accuracy (solid) per run; dotted: onset"
        if len(panels) > MAX_PANELS:
            caption += f" ({MAX_PANELS} of {len(panels)} configurations)"
        parts.append(figure_html(schedule_figure(panels), "eps_schedules", out, caption))
    return parts
