"""Paper-ready figures from long-form metrics (matplotlib, Agg backend: no display needed).

Every function returns a ``matplotlib.figure.Figure``; the report embeds them as PNG and also saves PNG and
PDF files for papers. Inputs are a run's long-form ``metrics.jsonl`` records (``robustft.runs.records``'s
``METRIC_FIELDS``) with a ``run`` column.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from robustft.analysis.pareto import pareto_front
from robustft.analysis.tradeoff import ood_pairs  # noqa: E402
from robustft.config.units import format_eps  # noqa: E402
from robustft.runs import records  # noqa: E402

SPLIT_COLOURS = {"train": "#1f77b4", "val": "#2ca02c", "test": "#d62728"}


MAX_LEGEND = 24  # entries; beyond this a legend is unreadable and placing it (loc="best") grows with entries x data


def _legend(ax) -> None:
    """A legend when it can be read; with hundreds of runs, a note instead (the report's tables name them)."""
    handles, _ = ax.get_legend_handles_labels()
    if len(handles) <= MAX_LEGEND:
        if handles:
            ax.legend(fontsize=7)
    else:
        ax.text(0.99, 0.99, f"{len(handles)} lines: legend left out", transform=ax.transAxes, ha="right",
                va="top", fontsize=7, color="#666666")


def _step_axis(ax, steps: pd.Series) -> None:
    # Paper A evaluates on a log-like schedule starting at step 0: on long runs symlog shows both the start and
    # the tail; short runs read better on a linear axis.
    if len(steps) and steps.max() > 500:
        ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("training step")
    ax.grid(True, alpha=0.3)


def staircase(clean: np.ndarray, robust: np.ndarray) -> tuple[list[float], list[float]]:
    """The boundary of the region a frontier dominates, as a polyline: (0, r1) -> (c1, r1) -> (c1, r2) -> ...
    -> (cn, rn) -> (cn, 0), for frontier points sorted by clean ascending (robust descending).

    Drawn this way because that region's area is exactly what ``analysis.pareto_area`` measures.
    """
    if len(clean) == 0:
        return [], []
    xs, ys = [0.0], [float(robust[0])]
    for i, (c, r) in enumerate(zip(clean, robust, strict=True)):
        xs.append(float(c))
        ys.append(float(r))
        next_r = float(robust[i + 1]) if i + 1 < len(robust) else 0.0
        xs.append(float(c))
        ys.append(next_r)
    return xs, ys


def trajectory_figure(metrics: pd.DataFrame, title: str = "") -> Figure:
    """Clean, robust and OOD accuracy through training (left) and the training eps / loss (right).

    Args:
        metrics: one run's records (step, split, metric, attack, eps, value).
        title: figure title (the run name).
    """
    fig, (ax, ax_eps) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    tracked = metrics[~records.is_final(metrics)]
    clean = tracked[records.is_clean(tracked)]
    for split, colour in SPLIT_COLOURS.items():
        part = clean[clean["split"] == split].sort_values("step")
        if not part.empty:
            ax.plot(part["step"], part["value"], "-o", ms=3, color=colour, label=f"{split} clean")
    robust = tracked[records.is_robust(tracked)]
    for (split, attack, eps), part in robust.groupby(["split", "attack", "eps"]):
        part = part.sort_values("step")
        ax.plot(part["step"], part["value"], "--s", ms=3, color=SPLIT_COLOURS.get(split, "grey"),
                label=f"{split} {attack} @ {format_eps(float(eps))}")
    for split, part in clean[records.is_ood(clean)].groupby("split"):
        part = part.sort_values("step")
        ax.plot(part["step"], part["value"], ":", lw=1.5, label=str(split))
    _step_axis(ax, metrics["step"])
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    if ax.get_legend_handles_labels()[0]:
        # Below the axes: inside, it covered the clean-accuracy lines that climb to the top-left corner.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    ax.set_title(title or "accuracy through training", fontsize=10)

    optim = metrics[metrics["split"] == "optim"]
    eps_train = metrics[records.is_train_eps(metrics)].sort_values("step")
    loss = optim[optim["metric"] == "loss"].sort_values("step")
    if not eps_train.empty:
        ax_eps.plot(eps_train["step"], eps_train["value"] * 255, color="#9467bd", label="train eps (x255)")
        ax_eps.set_ylabel("train eps x 255")
        # eps is never negative; a run at eps 0 (standard fine-tuning) would otherwise get a +-0.05 axis.
        ax_eps.set_ylim(0, max(1.0, float(eps_train["value"].max()) * 255 * 1.1))
    if not loss.empty:
        ax_loss = ax_eps.twinx()
        ax_loss.plot(loss["step"], loss["value"], color="#8c564b", alpha=0.7, label="loss")
        ax_loss.set_ylabel("training loss")
    _step_axis(ax_eps, metrics["step"])
    ax_eps.set_title("perturbation schedule and loss", fontsize=10)
    fig.tight_layout()
    return fig


def tradeoff_figure(points: pd.DataFrame, group_by: str = "run", title: str = "") -> Figure:
    """Every evaluation as a (clean, robust) point, coloured by group, with each group's Pareto frontier.

    Args:
        points: columns clean, robust and ``group_by`` (``analysis.tradeoff_points`` output).
    """
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for group, part in points.groupby(group_by):
        scatter = ax.scatter(part["clean"], part["robust"], s=14, alpha=0.45)
        front = part.iloc[pareto_front(part["clean"].to_numpy(), part["robust"].to_numpy())]
        xs, ys = staircase(front["clean"].to_numpy(), front["robust"].to_numpy())
        ax.plot(xs, ys, color=scatter.get_facecolor()[0][:3], lw=1.8, label=str(group))
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("robust accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(0.05, float(points["robust"].max()) * 1.15) if len(points) else 1)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    # Wrapped: a title naming the dataset and the attack with its settings is wider than the axes.
    ax.set_title(textwrap.fill(title or "accuracy / robustness trade-off (Pareto frontiers)", 60), fontsize=10)
    fig.tight_layout()
    return fig


def robust_curve_figure(curves: pd.DataFrame) -> Figure:
    """Accuracy against eps for each run's final evaluation; the legend gives expected robustness.

    Args:
        curves: columns run, eps, value (eps = 0 is clean accuracy), and optionally e_adv per run.
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for run, part in curves.groupby("run"):
        part = part.sort_values("eps")
        e_adv = part["e_adv"].iloc[0] if "e_adv" in part and pd.notna(part["e_adv"].iloc[0]) else None
        label = f"{run} (E.adv {e_adv:.3f})" if e_adv is not None else str(run)
        ax.plot(part["eps"] * 255, part["value"], "-o", ms=3, label=label)
        ax.fill_between(part["eps"] * 255, 0, part["value"], alpha=0.08)
    ax.set_xlabel("eps x 255 (L-inf)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    ax.set_title("robust accuracy curve (final model)", fontsize=10)
    fig.tight_layout()
    return fig


def ood_figure(metrics: pd.DataFrame, reference_split: str = "test") -> Figure:
    """OOD accuracy against clean accuracy over every evaluation point (paper A, RQ3)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for split, paired in ood_pairs(metrics, reference_split).groupby("split"):
        ax.scatter(paired["value_clean"], paired["value_ood"], s=14, alpha=0.6, label=str(split).removeprefix("ood:"))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"{reference_split} clean accuracy")
    ax.set_ylabel("OOD accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    ax.set_title("OOD accuracy tracks clean accuracy?", fontsize=10)
    fig.tight_layout()
    return fig
