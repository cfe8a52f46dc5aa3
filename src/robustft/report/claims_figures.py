"""The report panels the cross-study claims need (issue 18): what a reader checks a verdict against.

- **Frontiers per task** (paper A: attention strategies on complex tasks, steeper frontiers with complexity): per
  backbone, one plot per task side by side, each strategy's Pareto frontier of (clean, robust) test accuracy over
  its evaluations, and a table of each frontier's steepness: robust points lost per clean point gained from its most
  robust evaluation to its most accurate one (0 for a frontier of one point), as ``A.steeper_with_complexity``
  reads it. Needs standard-objective runs with robust accuracy on two tasks or more of one backbone.
- **Onset against eps_g** (paper B, Figure 3): RFT-fix runs (constant eps schedule) per backbone and task, the
  onset of task adaptation (``analysis.diagnostics.onset_of_adaptation``: first evaluation whose validation clean
  accuracy exceeds ``max(5%, 2 x chance)``) against eps_g. Needs RFT-fix runs at two eps_g or more of one
  (backbone, task).
- **Suboptimal transfer per backbone and task** (paper B, Figure 1): final clean test accuracy of the standard
  fine-tuning reference, RFT-fix and Epsilon-Scheduling per (backbone, task, eps_g), and the gap reference minus
  RFT-fix in points. The reference of a run is a standard-objective run of the same backbone and task whose
  ``eps.value`` is the run's eps_g (of several, the one whose config differs least from RFT-fix's outside objective
  and eps: a paper A study's runs share backbone, task and eps.value too), else the only standard run of that
  backbone and task. Needs an RFT-fix run and its reference.

What a run is (backbone, task, eps_g, strategy, schedule) is read from its resolved config only. A panel the runs
cannot support is absent; the section then says in one line which runs it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from robustft.analysis.diagnostics import onset_of_adaptation
from robustft.analysis.findings_base import get
from robustft.analysis.pareto import pareto_area, pareto_front
from robustft.analysis.tradeoff import tradeoff_points
from robustft.config.units import format_eps, parse_eps
from robustft.runs import records

SaveFigure = Callable[[Any, str, Path, str], dict[str, str]]

NEEDS = {
    "frontiers": "Frontiers per task: needs paper A runs (standard objective, robust accuracy tracked) of one backbone "
                 "on two tasks or more, e.g. `robustft reproduce paper-a --scale embedded`.",
    "onset": "Onset against eps_g: needs RFT-fix runs (eps.schedule constant) of one backbone and task at two eps_g "
             "or more, e.g. `robustft reproduce paper-b --scale embedded`.",
    "transfer": "Suboptimal transfer per backbone and task: needs RFT-fix runs and their standard fine-tuning "
                "references (same backbone and task, objective standard).",
}


def _key(run: Any) -> tuple[str, str]:
    return str(get(run.config, "model.name", "?")), str(get(run.config, "data.name", "?"))


def _objective(run: Any) -> str:
    return str(get(run.config, "objective.name", "standard"))


def _eps_g(run: Any) -> float | None:
    try:
        return float(parse_eps(get(run.config, "eps.value")))
    except Exception:  # noqa: BLE001 - a run without a readable eps has no eps_g
        return None


def steepness(clean: Sequence[float], robust: Sequence[float]) -> float | None:
    """Robust accuracy lost per clean accuracy gained along a frontier, from its most robust point to its most
    accurate one (inputs in [0, 1], shape (N,)); 0 when one point is both; None without points."""
    c, r = np.asarray(clean, float), np.asarray(robust, float)
    if c.size == 0:
        return None
    peak = max(range(c.size), key=lambda i: (r[i], c[i]))
    end = max(range(c.size), key=lambda i: (c[i], r[i]))
    gained = c[end] - c[peak]
    return float((r[peak] - r[end]) / gained) if gained > 0 else 0.0


def _robust_eps(metrics: pd.DataFrame) -> float | None:
    """The eps ``tradeoff_points`` pairs clean accuracy with: the smallest tracked on the test split."""
    test = metrics[metrics["split"] == "test"]
    robust = test[records.is_robust(test)]
    return float(pd.to_numeric(robust["eps"]).min()) if len(robust) else None


def frontier_rows(runs: Sequence[Any]) -> pd.DataFrame:
    """One row per paper A run: model, task, strategy, run, its frontier's steepness, Pareto area, points and eps.

    Returns:
        columns model, task, strategy, run, steepness, area, points (the run's (clean, robust) pairs, test split,
        in [0, 1]), eps (the robust accuracy's eps).
    """
    rows = []
    for run in runs:
        if _objective(run) != "standard" or run.metrics is None or run.metrics.empty:
            continue
        points = tradeoff_points(run.metrics.assign(run=run.name))
        if points.empty:
            continue
        model, task = _key(run)
        rows.append({"model": model, "task": task, "strategy": str(get(run.config, "strategy.name", "?")),
                     "run": run.name, "steepness": steepness(points["clean"], points["robust"]),
                     "area": pareto_area(points["clean"], points["robust"]), "points": points,
                     "eps": _robust_eps(run.metrics)})
    return pd.DataFrame(rows, columns=["model", "task", "strategy", "run", "steepness", "area", "points", "eps"])


def _frontiers(runs: Sequence[Any], out: Path, save: SaveFigure) -> list[dict[str, Any]]:
    table = frontier_rows(runs)
    panels = []
    for model, part in table.groupby("model", sort=True):
        tasks = sorted(part["task"].unique())
        if len(tasks) < 2:
            continue
        # one colour per strategy in every task's plot, so a strategy is followed across tasks by its colour
        colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(sorted(part["strategy"].unique()))}
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.4), sharey=True, squeeze=False)
        rows = []
        for ax, task in zip(axes[0], tasks, strict=True):
            here = part[part["task"] == task].sort_values("strategy")
            for row in here.itertuples():
                pts, colour = row.points, colours[row.strategy]
                front = pareto_front(pts["clean"], pts["robust"])
                ax.scatter(100 * pts["clean"], 100 * pts["robust"], s=8, alpha=0.35, color=colour)
                ax.plot(100 * pts["clean"].to_numpy()[front], 100 * pts["robust"].to_numpy()[front], marker="o",
                        ms=3, color=colour, label=f"{row.strategy} ({row.steepness:.2f})")
                rows.append({"task": task, "strategy": row.strategy, "run": row.run,
                             "steepness": f"{row.steepness:.2f}", "area": f"{row.area:.3f}"})
            mean = float(here["steepness"].mean())
            ax.set_title(f"{task}: mean steepness {mean:.2f}", fontsize=9)
            ax.set_xlabel("clean accuracy (%)")
            ax.grid(alpha=0.3)
            # below the plot: seven strategies' entries inside it covered the frontiers they name
            ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False,
                      title="strategy (steepness)", title_fontsize=7)
            rows.append({"task": task, "strategy": "mean", "run": f"{len(here)} runs", "steepness": f"{mean:.2f}",
                         "area": f"{float(here['area'].mean()):.3f}"})
        eps = part["eps"].dropna().unique()
        at = f" at {format_eps(float(eps[0]))}" if len(eps) == 1 else ""
        axes[0][0].set_ylabel(f"robust accuracy{at} (%)")
        fig.tight_layout()
        caption = (f"{model}: Pareto frontiers per task, side by side. Faint dots: every evaluation of a run; line: "
                   "its Pareto frontier; in brackets each frontier's steepness (robust points lost per clean point "
                   "from its most robust to its most accurate evaluation).")
        panels.append({"model": model, "figure": save(fig, f"claims-frontiers-{_slug(model)}", out, caption),
                       "rows": rows})
        plt.close(fig)
    return panels


def onset_rows(runs: Sequence[Any]) -> pd.DataFrame:
    """One row per RFT-fix run: model, task, eps_g, run, onset step and epoch (None: never above the threshold),
    the threshold."""
    rows = []
    for run in runs:
        if _objective(run) == "standard" or str(get(run.config, "eps.schedule", "")) != "constant":
            continue
        eps = _eps_g(run)
        if eps is None or run.metrics is None or run.metrics.empty:
            continue
        classes = ((run.summary or {}).get("detection") or {}).get("num_classes")
        onset = onset_of_adaptation(run.metrics, int(classes) if classes else None)
        model, task = _key(run)
        rows.append({"model": model, "task": task, "eps": eps, "run": run.name,
                     "step": None if onset is None else onset["step"],
                     "epoch": None if onset is None else onset["epoch"]})
    return pd.DataFrame(rows, columns=["model", "task", "eps", "run", "step", "epoch"])


def _onset(runs: Sequence[Any], out: Path, save: SaveFigure) -> dict[str, Any] | None:
    table = onset_rows(runs)
    groups = [(key, part.sort_values("eps")) for key, part in table.groupby(["model", "task"], sort=True)
              if part["eps"].nunique() >= 2]
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    rows = []
    ticks = sorted({float(e) for _, part in groups for e in part["eps"]})
    for (model, task), part in groups:
        ax.plot(part["eps"] * 255, part["epoch"].astype(float), marker="o", label=f"{model} · {task}")
        for row in part.itertuples():
            rows.append({"model": model, "task": task, "eps": format_eps(row.eps), "run": row.run,
                         # epochs are fractional where evaluations fall within one: 0.33, not 0.333333
                         "epoch": "never" if row.epoch is None or pd.isna(row.epoch) else
                         f"{round(float(row.epoch), 2):g}",
                         "step": "never" if row.step is None or pd.isna(row.step) else str(int(row.step))})
    ax.set_xticks([255 * e for e in ticks], [format_eps(e) for e in ticks])
    ax.set_xlabel("eps_g (training and evaluation)")
    ax.set_ylabel("onset of adaptation (epoch)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="backbone · task", title_fontsize=7)
    fig.tight_layout()
    figure = save(fig, "claims-onset", out, "Onset of task adaptation of RFT-fix against eps_g, per backbone and "
                  "task (a run that never crossed the threshold is absent from the plot, 'never' in the table).")
    plt.close(fig)
    return {"figure": figure, "rows": rows}


def _final_clean(run: Any) -> float | None:
    m = run.metrics
    if m is None or m.empty:
        return None
    rows = m[(m["split"] == "test") & records.is_clean(m) & ~records.is_final(m) & ~records.is_ood(m)]
    rows = rows[rows["metric"] == "accuracy"] if "metric" in rows else rows
    return float(rows.sort_values("step")["value"].iloc[-1]) if len(rows) else None


def transfer_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Per (model, task, eps_g) with an RFT-fix run and a reference: final clean test accuracy of the reference,
    RFT-fix and Epsilon-Scheduling (None when absent), and the gap reference minus RFT-fix, all in [0, 1]."""
    standard: dict[tuple[str, str], list[Any]] = {}
    adversarial: dict[tuple[str, str, float], dict[str, Any]] = {}
    for run in runs:
        if _objective(run) == "standard":
            standard.setdefault(_key(run), []).append(run)
            continue
        eps = _eps_g(run)
        if eps is not None:
            adversarial.setdefault((*_key(run), eps), {})[str(get(run.config, "eps.schedule", ""))] = run
    rows = []
    for (model, task, eps), arms in sorted(adversarial.items()):
        fix, candidates = arms.get("constant"), standard.get((model, task), [])
        same = [r for r in candidates if _eps_g(r) is not None and np.isclose(_eps_g(r), eps)]
        # of several (a paper A study's runs share backbone, task and eps.value), the one set up like RFT-fix
        reference = (min(same, key=lambda r: _differences(r, fix)) if same
                     else candidates[0] if len(candidates) == 1 else None)
        if fix is None or reference is None:
            continue
        ref_clean, fix_clean = _final_clean(reference), _final_clean(fix)
        scheduled = arms.get("scheduled")
        rows.append({"model": model, "task": task, "eps": eps, "reference": reference.name, "fix_run": fix.name,
                     "reference_clean": ref_clean, "fix_clean": fix_clean,
                     "scheduled_clean": _final_clean(scheduled) if scheduled is not None else None,
                     "gap": None if ref_clean is None or fix_clean is None else ref_clean - fix_clean})
    return rows


def _flat(tree: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        return {prefix: repr(tree)}
    return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}


def _differences(run: Any, other: Any) -> int:
    """How many config values two runs differ in, outside naming, seed, objective and eps (the reference's own)."""
    ignored = ("name.", "output_dir.", "seed.", "objective.", "eps.", "detect.", "logging.", "checkpoint.")
    a, b = _flat(run.config), _flat(other.config)
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b) if not k.startswith(ignored))


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def claims_sections(runs: Sequence[Any], out: Path, save: SaveFigure) -> dict[str, Any] | None:
    """The panels for the report page (``claims_sections.html``): ``frontiers`` (list), ``onset``, ``transfer``
    (None or values) and ``absent`` (one line per panel the runs cannot support); None when no panel renders."""
    frontiers = _frontiers(runs, out, save)
    onset = _onset(runs, out, save)
    transfer = [{**row, "eps": format_eps(row["eps"]), "reference_clean": _percent(row["reference_clean"]),
                 "fix_clean": _percent(row["fix_clean"]), "scheduled_clean": _percent(row["scheduled_clean"]),
                 "gap": "–" if row["gap"] is None else f"{100 * row['gap']:+.1f}"} for row in transfer_rows(runs)]
    present = {"frontiers": bool(frontiers), "onset": onset is not None, "transfer": bool(transfer)}
    if not any(present.values()):
        return None
    return {"frontiers": frontiers, "onset": onset, "transfer": transfer or None,
            "absent": [NEEDS[name] for name, shown in present.items() if not shown]}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")
