"""One self-contained HTML page (figures embedded as PNG) summarising one or many runs.

Sections: an overview table (one row per run: configuration, final clean / robust / OOD accuracy with
confidence intervals, expected robustness, trainable share, detections), per dataset and tracked attack / eps a
trade-off figure with each group's Pareto frontier and the frontier-area table (paper A), with the runs each
table leaves out and why, robust-accuracy curves (paper B), OOD vs clean accuracy
(paper A, RQ3), per-run trajectories and gradient-masking warnings. Every figure is also written as PNG and
PDF next to the page. The page is ``page.html`` (a Jinja2 template with autoescaping, shipped as package data):
this module builds plain values (text and formatted numbers, never HTML) and the template escapes every one.
"""

from __future__ import annotations

import base64
import importlib.resources
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.pyplot as plt
import pandas as pd

from robustft.analysis.findings import Finding, findings
from robustft.analysis.findings_base import get as dotted_get
from robustft.analysis.tradeoff import compare_runs, ood_correlation
from robustft.config.units import format_eps
from robustft.report import figures
from robustft.report.claims_figures import claims_sections
from robustft.report.findings_table import findings_glance, findings_table
from robustft.report.seed_tables import seed_sections
from robustft.runs import Run, records

MAX_TRAJECTORIES = 12  # per-run trajectory figures drawn; the page stays readable and its time bounded


_get = dotted_get  # the one dotted-key lookup (analysis.findings_base)


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


def _cell(value: float | None, low: float | None = None, high: float | None = None) -> dict[str, str | None]:
    """An accuracy cell for the template: value in % and its interval (None when missing)."""
    if value is None or pd.isna(value):
        return {"value": None, "ci": None}
    ci = None
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
        ci = f"[{100 * low:.1f}, {100 * high:.1f}]"
    return {"value": f"{100 * value:.1f}", "ci": ci}


def _figure(fig, name: str, out_dir: Path, caption: str) -> dict[str, str]:
    """Saves ``fig`` as PNG and PDF in ``out_dir``; returns the template's figure (PNG as a data URI, caption)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)  # rendered once: the file and the page share it (rendering dominates)
    (out_dir / f"{name}.png").write_bytes(buffer.getvalue())
    fig.savefig(out_dir / f"{name}.pdf")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"src": f"data:image/png;base64,{data}", "caption": caption}


def overview_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per run: configuration labels, final accuracies with CIs, E.adv, OOD, trainable share."""
    rows = []
    for run in runs:
        final = _final(run.metrics)
        test = final[final["split"] == "test"]
        clean = test[records.is_clean(test) & ~records.is_final(test)]
        robust = test[records.is_robust(test, include_final=True)].sort_values(["attack", "eps"])
        # The robust curve at the final attack's eps: a nested curve starts each eps from the previous eps' points,
        # so it can be lower than the single attack; shown beside it so the two numbers are never a puzzle.
        final_eps = set(robust.loc[records.is_final(robust), "eps"].astype(float))
        curve = test[(test["metric"] == "curve_accuracy") & test["eps"].astype(float).isin(final_eps)]
        robust = pd.concat([robust, curve.assign(attack="curve:" + curve["attack"].astype(str))])
        e_adv = test[test["metric"] == "expected_robustness"]
        ood = final[records.is_ood(final) & records.is_clean(final)]
        c = clean.iloc[0] if len(clean) else None
        share = _get(run.summary, "strategy.trainable_share", _get(run.summary, "strategy.share"))
        rows.append({
            "run": run.name, **(run.labels or describe(run.config)),
            "clean": _cell(c["value"], c.get("ci_low"), c.get("ci_high")) if c is not None else _cell(None),
            "robust": [(f"{r['attack']}@{format_eps(float(r['eps']))}", _cell(r["value"], r.get("ci_low"),
                                                                            r.get("ci_high")))
                       for _, r in robust.drop_duplicates(["attack", "eps"]).iterrows()],
            "e_adv": [(str(e["attack"]), _cell(e["value"])) for _, e in e_adv.iterrows()],
            "ood": [(str(o["split"]).removeprefix("ood:"), _cell(o["value"])) for _, o in ood.iterrows()],
            "trainable": f"{100 * share:.2f}%" if isinstance(share, (int, float)) else None,
        })
    return rows


OVERVIEW_COLUMNS = {
    "run": "run", "model": "model", "data": "data", "strategy": "strategy", "trainable": "trainable",
    "objective": "objective", "eps": "train eps", "clean": "clean (test)", "robust": "robust (test)",
    "e_adv": "E.adv", "ood": "OOD"}


def _checks_ran(run: Run) -> bool:
    """Whether the run's evaluations ran the gradient-masking checks (its config's ``eval.checks``)."""
    evaluation = run.config.get("eval") if isinstance(run.config, Mapping) else None
    return bool(evaluation.get("checks")) if isinstance(evaluation, Mapping) else False


def _warnings(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Fired gradient-masking checks (with their explanation) and the summaries' warnings, per run."""
    items = []
    for run in runs:
        checks = run.metrics[run.metrics["metric"].astype(str).str.startswith("check:")]
        for _, record in checks.iterrows():
            extra = record.get("extra")
            message = extra.get("message") if isinstance(extra, dict) else None
            if record["value"]:  # a check record's value is 1 when it fired
                items.append({"run": run.name, "step": int(record["step"]),
                              "text": str(record["metric"]).removeprefix("check:"),
                              "message": str(message) if message else None})
        for warning in run.summary.get("warnings", []) if isinstance(run.summary, dict) else []:
            items.append({"run": run.name, "step": None, "text": str(warning), "message": None})
    return items


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: importlib.resources.files(__package__).joinpath(name).read_text(
        encoding="utf-8")),
    autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
)


def build_report(runs: Sequence[Run], out_dir: str | Path, title: str = "robustft report",
                 group_by: str = "run", found: Sequence[Finding] | None = None) -> Path:
    """Writes ``out_dir/index.html`` plus each figure as PNG and PDF; returns the page's path.

    Args:
        runs: the runs to report (at least one).
        out_dir: created if missing.
        title: page title.
        group_by: how trade-off points are grouped into frontiers: ``run`` or a label such as ``strategy``; the
            dataset and the tracked attack and eps always separate tables (``analysis.compare_runs``).
        found: the runs' findings when already computed (default: ``analysis.findings(runs)``).
    """
    if not runs:
        raise ValueError("no runs to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True)
    labels = {r.name: (r.labels or describe(r.config)) for r in runs}
    found = list(findings(runs) if found is None else found)
    page = _TEMPLATES.get_template("page.html").render(
        title=title, n_runs=len(runs), findings=findings_table(runs, found), glance=findings_glance(found),
        group_by=group_by,
        overview_columns=OVERVIEW_COLUMNS, overview=overview_rows(runs),
        tradeoff=_tradeoff_section(runs, metrics, labels, group_by, out),
        curves=_curves_section(metrics, out), ood=_ood_section(metrics, out),
        seeds=seed_sections(runs, metrics, out, _figure),  # spreads over seeds, paper B: seed_sections.html
        claims=claims_sections(runs, out, _figure),  # per task / eps_g / backbone: claims_sections.html
        trajectories=_trajectories(runs, out), max_trajectories=MAX_TRAJECTORIES, warnings=_warnings(runs),
        checked=sum(_checks_ran(r) for r in runs), unchecked=sum(not _checks_ran(r) for r in runs),
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _curves_section(metrics: pd.DataFrame, out: Path) -> dict[str, str] | None:
    final_curves = _final_curves(metrics)
    if final_curves.empty:
        return None
    return _figure(figures.robust_curve_figure(final_curves), "robust_curve", out,
                   "final model: accuracy vs eps; shaded area = expected robustness (paper B)")


def _ood_section(metrics: pd.DataFrame, out: Path) -> dict[str, Any] | None:
    if not metrics["split"].astype(str).str.startswith("ood:").any():
        return None
    corr = ood_correlation(metrics)
    return {"figure": _figure(figures.ood_figure(metrics), "ood", out, "OOD vs clean accuracy over training"),
            "rows": [{"split": str(r["ood_split"]), "r": None if pd.isna(r["pearson_r"]) else f"{r['pearson_r']:.3f}",
                      "n": str(int(r["n_points"]))} for _, r in corr.iterrows()]}


def _trajectories(runs: Sequence[Run], out: Path) -> list[dict[str, Any]]:
    """Per run its summary.json, and for the first MAX_TRAJECTORIES runs the figure through training (a figure per
    run made a 1,000-run report take an hour and weigh 100 MB)."""
    return [{"name": run.name,
             "figure": _figure(figures.trajectory_figure(run.metrics, run.name), f"trajectory_{i}", out,
                               f"{run.name}: accuracy, training eps and loss through training")
             if i < MAX_TRAJECTORIES else None,
             "summary": json.dumps(run.summary, indent=2, default=str) if run.summary else None}
            for i, run in enumerate(runs)]


def seed_sections_html(seeds: dict[str, Any]) -> str:
    """The seed and schedule sections alone (``seed_tables.seed_sections``' values), as the page includes them."""
    return _TEMPLATES.get_template("seed_sections.html").render(seeds=seeds)


def _tradeoff_section(runs: Sequence[Run], metrics: pd.DataFrame, labels: dict[str, dict[str, str]],
                      group_by: str, out: Path) -> dict[str, Any] | None:
    """One figure and frontier table per (dataset, threat model), and which runs each leaves out and why."""
    comparisons, unplaced = compare_runs(metrics, labels, group_by, configs={r.name: r.config for r in runs})
    if not comparisons and not unplaced:
        return None
    # here, not at the top: robustft.data brings torch, which a report without trade-off sections never needs
    from robustft.data.complexity import complexity_note

    sections = []
    for index, comparison in enumerate(comparisons, start=1):
        heading = f"{comparison.dataset}: {comparison.threat.label()}"
        name = "tradeoff" if len(comparisons) == 1 else f"tradeoff_{index}"
        figure = _figure(figures.tradeoff_figure(comparison.points, "group", title=heading), name, out,
                         f"{heading}: clean vs robust accuracy at every evaluation, with the Pareto frontier of "
                         "each group's pooled points")
        rows = [{"group": str(r["group"]), "runs": str(int(r["n_runs"])), "area": f"{r['area']:.4f}",
                 "area_std": None if pd.isna(r["area_std"]) else f"{r['area_std']:.4f}",
                 "above": None if pd.isna(r["percent_above_average"]) else f"{r['percent_above_average']:+.1f}%",
                 "n": str(int(r["n_points"])), "clean": _cell(r["best_clean"]), "robust": _cell(r["best_robust"])}
                for _, r in comparison.table.iterrows()]
        sections.append({"heading": heading, "dataset": comparison.dataset, "figure": figure, "rows": rows,
                         "left_out": comparison.left_out, "complexity": complexity_note(str(comparison.dataset))})
    return {"comparisons": sections, "unplaced": unplaced}


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
