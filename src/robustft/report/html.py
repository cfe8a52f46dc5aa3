"""One self-contained HTML page (figures embedded as PNG) summarising one or many runs.

Sections: an overview table (one row per run: configuration, final clean / robust / OOD accuracy with
confidence intervals, expected robustness, trainable share, detections), per dataset and tracked attack / eps a
trade-off figure with each group's Pareto frontier and the frontier-area table (paper A), with the runs each
table leaves out and why, robust-accuracy curves (paper B), OOD vs clean accuracy
(paper A, RQ3), per-run trajectories and gradient-masking warnings. Every figure is also written as PNG and
PDF next to the page. All text from runs is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from robustft.analysis.tradeoff import compare_runs, ood_correlation
from robustft.config.units import format_eps
from robustft.report import figures
from robustft.report.findings_html import findings_section
from robustft.report.seed_tables import seed_sections
from robustft.runs import records

MAX_TRAJECTORIES = 12  # per-run trajectory figures drawn; the page stays readable and its time bounded


@dataclass
class RunRecord:
    """What the report needs of one run: its name, resolved config, summary and long-form metrics."""

    name: str
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: pd.DataFrame
    path: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)


def _get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def describe(config: dict[str, Any]) -> dict[str, str]:
    """Short labels of a run's configuration (model, data, strategy, objective, eps schedule)."""
    eps_value = _get(config, "eps.value")
    schedule = _get(config, "eps.schedule", "")
    objective = str(_get(config, "objective.name", "standard"))
    eps_label = "" if objective == "standard" else f"{schedule} {eps_value}"
    return {
        "model": str(_get(config, "model.name", "?")),
        "data": str(_get(config, "data.name", "?")),
        "strategy": str(_get(config, "strategy.name", "?")),
        "objective": objective,
        "eps": eps_label.strip(),
    }


def _final(metrics: pd.DataFrame) -> pd.DataFrame:
    """Records of each (split, metric, attack, eps) at its last step."""
    if metrics.empty:
        return metrics
    keyed = metrics.assign(attack_key=metrics["attack"].fillna(""))
    last = keyed.sort_values("step").groupby(["split", "metric", "attack_key", "eps"], dropna=False).tail(1)
    return last.drop(columns="attack_key")


def _cell(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or pd.isna(value):
        return "&ndash;"
    text = f"{100 * value:.1f}"
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
        text += f' <span class="ci">[{100 * low:.1f}, {100 * high:.1f}]</span>'
    return text


def _figure_html(fig, name: str, out_dir: Path, caption: str) -> str:
    """Saves ``fig`` as PNG and PDF in ``out_dir`` and returns an <figure> with the PNG embedded."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)  # rendered once: the file and the page share it (rendering dominates)
    (out_dir / f"{name}.png").write_bytes(buffer.getvalue())
    fig.savefig(out_dir / f"{name}.pdf")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def overview_rows(runs: Sequence[RunRecord]) -> list[dict[str, str]]:
    """One row of HTML cells per run: configuration, final accuracies with CIs, E.adv, detections."""
    rows = []
    for run in runs:
        final = _final(run.metrics)
        labels = run.labels or describe(run.config)

        test = final[final["split"] == "test"]
        clean = test[records.is_clean(test) & ~records.is_final(test)]
        robust = test[records.is_robust(test, include_final=True)].sort_values(["attack", "eps"])
        e_adv = test[test["metric"] == "expected_robustness"]
        ood = final[records.is_ood(final) & records.is_clean(final)]
        row = {"run": html.escape(run.name), **{k: html.escape(v) for k, v in labels.items()}}
        c = clean.iloc[0] if len(clean) else None
        row["clean"] = _cell(c["value"], c.get("ci_low"), c.get("ci_high")) if c is not None else _cell(None)
        robust_cells = []
        for _, r in robust.drop_duplicates(["attack", "eps"]).iterrows():
            robust_cells.append(f"{html.escape(str(r['attack']))}@{format_eps(float(r['eps']))}: "
                                f"{_cell(r['value'], r.get('ci_low'), r.get('ci_high'))}")
        row["robust"] = "<br>".join(robust_cells) or _cell(None)
        row["e_adv"] = "<br>".join(f"{html.escape(str(e['attack']))}: {_cell(e['value'])}"
                                   for _, e in e_adv.iterrows()) or _cell(None)
        row["ood"] = "<br>".join(f"{html.escape(str(o['split']).removeprefix('ood:'))}: {_cell(o['value'])}"
                                 for _, o in ood.iterrows()) or _cell(None)
        share = _get(run.summary, "strategy.trainable_share", _get(run.summary, "strategy.share"))
        row["trainable"] = f"{100 * share:.2f}%" if isinstance(share, (int, float)) else "&ndash;"
        rows.append(row)
    return rows


def _table(rows: Sequence[dict[str, str]], columns: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title in columns.values())
    body = "".join("<tr>" + "".join(f"<td>{row.get(key, '')}</td>" for key in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _warnings(runs: Sequence[RunRecord]) -> list[str]:
    items = []
    for run in runs:
        checks = run.metrics[run.metrics["metric"].astype(str).str.startswith("check:")]
        for _, record in checks.iterrows():
            extra = record.get("extra")
            message = extra.get("message") if isinstance(extra, dict) else None
            if record["value"]:  # a check record's value is 1 when it fired
                items.append(f"<li><b>{html.escape(run.name)}</b> step {int(record['step'])}: "
                             f"{html.escape(str(record['metric']).removeprefix('check:'))}"
                             f"{' &mdash; ' + html.escape(str(message)) if message else ''}</li>")
        for warning in run.summary.get("warnings", []) if isinstance(run.summary, dict) else []:
            items.append(f"<li><b>{html.escape(run.name)}</b>: {html.escape(str(warning))}</li>")
    return items


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.3rem .5rem;
vertical-align:top;text-align:left}th{background:#f4f4f4}.ci{color:#777;font-size:.75rem}
figure{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}img{max-width:100%}
figcaption{font-size:.8rem;color:#555}.muted{color:#666;font-size:.85rem}pre{background:#f7f7f7;padding:.5rem;
font-size:.75rem;overflow-x:auto}
"""


def build_report(runs: Sequence[RunRecord], out_dir: str | Path, title: str = "robustft report",
                 group_by: str = "run") -> Path:
    """Writes ``out_dir/index.html`` plus each figure as PNG and PDF; returns the page's path.

    Args:
        runs: the runs to report (at least one).
        out_dir: created if missing.
        title: page title.
        group_by: how trade-off points are grouped into frontiers: ``run`` or a label such as ``strategy``; the
            dataset and the tracked attack and eps always separate tables (``analysis.compare_runs``).
    """
    if not runs:
        raise ValueError("no runs to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True)
    labels = {r.name: (r.labels or describe(r.config)) for r in runs}
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="muted">{len(runs)} run(s). Accuracies in %, with 95% Wilson intervals in brackets.</p>',
             findings_section(runs)]  # first: what the runs say about the papers' claims

    parts.append("<h2>Overview</h2>")
    parts.append(_table(overview_rows(runs), {
        "run": "run", "model": "model", "data": "data", "strategy": "strategy", "trainable": "trainable",
        "objective": "objective", "eps": "train eps", "clean": "clean (test)", "robust": "robust (test)",
        "e_adv": "E.adv", "ood": "OOD"}))

    parts.extend(_tradeoff_section(runs, metrics, labels, group_by, out))

    final_curves = _final_curves(metrics)
    if not final_curves.empty:
        parts.append("<h2>Robust accuracy curves</h2>")
        parts.append(_figure_html(figures.robust_curve_figure(final_curves), "robust_curve", out,
                                  "final model: accuracy vs eps; shaded area = expected robustness (paper B)"))

    if metrics["split"].astype(str).str.startswith("ood:").any():
        parts.append("<h2>Out-of-distribution accuracy</h2>")
        parts.append(_figure_html(figures.ood_figure(metrics), "ood", out, "OOD vs clean accuracy over training"))
        corr = ood_correlation(metrics)
        parts.append(_table([{"split": html.escape(str(r["ood_split"])),
                              "r": "&ndash;" if pd.isna(r["pearson_r"]) else f"{r['pearson_r']:.3f}",
                              "n": str(int(r["n_points"]))} for _, r in corr.iterrows()],
                            {"split": "OOD split", "r": "Pearson r with clean", "n": "points"}))

    parts.extend(seed_sections(runs, metrics, out, _figure_html))  # spreads over seeds, paper B's tables

    parts.append("<h2>Runs through training</h2>")
    if len(runs) > MAX_TRAJECTORIES:  # a figure per run made a 1,000-run report take an hour and weigh 100 MB
        parts.append(f'<p class="muted">The first {MAX_TRAJECTORIES} of {len(runs)} runs; '
                     "<code>robustft report RUN_DIR</code> draws any other.</p>")
    for i, run in enumerate(runs):
        if i < MAX_TRAJECTORIES:
            parts.append(_figure_html(figures.trajectory_figure(run.metrics, run.name), f"trajectory_{i}", out,
                                      f"{run.name}: accuracy, training eps and loss through training"))
        if run.summary:
            parts.append(f"<details><summary>{html.escape(run.name)}: summary.json</summary><pre>"
                         f"{html.escape(json.dumps(run.summary, indent=2, default=str))}</pre></details>")

    warnings = _warnings(runs)
    parts.append("<h2>Checks</h2>")
    parts.append(f"<ul>{''.join(warnings)}</ul>" if warnings else
                 '<p class="muted">No gradient-masking check fired (or none was run).</p>')

    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _tradeoff_section(runs: Sequence[RunRecord], metrics: pd.DataFrame, labels: dict[str, dict[str, str]],
                      group_by: str, out: Path) -> list[str]:
    """One figure and frontier table per (dataset, threat model), and which runs each leaves out and why."""
    comparisons, unplaced = compare_runs(metrics, labels, group_by, configs={r.name: r.config for r in runs})
    if not comparisons and not unplaced:
        return []
    parts = ["<h2>Accuracy / robustness trade-off</h2>",
             '<p class="muted">Each point is one evaluation during training; lines bound the region each '
             "group's Pareto frontier dominates, whose area is the table's (paper A). One table per dataset and "
             "tracked attack: paper A compares strategies within a dataset, and robust accuracies under different "
             "attacks or eps are not comparable. &ldquo;vs average&rdquo; is relative to the mean area of the "
             "table's groups.</p>"]
    for index, comparison in enumerate(comparisons, start=1):
        heading = f"{comparison.dataset}: {comparison.threat.label()}"
        name = "tradeoff" if len(comparisons) == 1 else f"tradeoff_{index}"
        parts.append(f"<h3>{html.escape(heading)}</h3>")
        parts.append(_figure_html(figures.tradeoff_figure(comparison.points, "group", title=heading), name, out,
                                  f"{heading}: clean vs robust accuracy at every evaluation, with Pareto frontiers"))
        parts.append(_table([{
            "group": html.escape(str(r["group"])), "area": f"{r['area']:.4f}",
            "above": "&ndash;" if pd.isna(r["percent_above_average"]) else f"{r['percent_above_average']:+.1f}%",
            "n": str(int(r["n_points"])), "clean": _cell(r["best_clean"]), "robust": _cell(r["best_robust"]),
        } for _, r in comparison.table.iterrows()], {"group": group_by, "area": "Pareto area", "above": "vs average",
                                                     "n": "points", "clean": "best clean", "robust": "best robust"}))
        if comparison.left_out:
            parts.append(_left_out_html(f"Runs on {comparison.dataset} left out of this table", comparison.left_out))
    if unplaced:
        parts.append(_left_out_html("Runs left out of every trade-off table", unplaced))
    return parts


def _left_out_html(title: str, reasons: dict[str, str]) -> str:
    items = "".join(f"<li><b>{html.escape(run)}</b>: {html.escape(reason)}</li>" for run, reason in reasons.items())
    return f'<p class="muted left-out">{html.escape(title)}:</p><ul class="left-out">{items}</ul>'


def _final_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run, the test accuracy-vs-eps curve of its last evaluation that has one: the robust curve records
    (``curve_accuracy``) if any, else the final evaluation's attack at 2+ eps, else a tracked attack at 2+ eps.

    One attack per curve: mixing attacks at the same eps would draw a curve no single evaluation produced.
    Clean accuracy is the eps = 0 point.
    """
    rows = []
    for run, part in metrics[metrics["split"] == "test"].groupby("run"):
        part = part.assign(eps=pd.to_numeric(part["eps"], errors="coerce"))
        curve_records = part[(part["metric"] == "curve_accuracy") & (part["eps"] > 0)]
        robust = curve_records if not curve_records.empty else part[records.is_robust(part, include_final=True)]
        counts = robust.groupby(["step", "attack"])["eps"].nunique()
        counts = counts[counts >= 2]
        if counts.empty:
            continue
        last = counts.index.get_level_values("step").max()
        attack = counts.loc[last].idxmax()
        at = part[part["step"] == last]
        curve = robust[(robust["step"] == last) & (robust["attack"] == attack)].groupby(
            "eps", as_index=False)["value"].min()
        clean = at[records.is_clean(at) | ((at["metric"] == "curve_accuracy") & (at["eps"] == 0))]
        if len(clean):
            curve = pd.concat([pd.DataFrame({"eps": [0.0], "value": [float(clean["value"].iloc[-1])]}), curve])
        e_adv = at[(at["metric"] == "expected_robustness") & (at["attack"] == attack)]["value"]
        curve = curve.assign(run=f"{run} ({attack})", e_adv=float(e_adv.iloc[0]) if len(e_adv) else float("nan"))
        rows.append(curve)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["run", "eps", "value", "e_adv"])
