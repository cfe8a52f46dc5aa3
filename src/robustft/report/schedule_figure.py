"""Paper B's delayed-adaptation figure: per run, the training eps schedule alpha(t) = eps(t) / eps_g against
validation clean accuracy over epochs, with the onset of task adaptation marked.

One panel per configuration (its seeds drawn together, one shade each), so a figure stays readable for a
sweep: at most ``MAX_PANELS`` panels; the others are named in the caption by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from robustft.runs import records  # noqa: E402

MAX_PANELS = 12
ACCURACY_COLOUR, ALPHA_COLOUR = "#2ca02c", "#9467bd"


def schedule_curves(metrics: pd.DataFrame, eps_g: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One run's validation clean accuracy and alpha(t) by epoch.

    Args:
        metrics: the run's long-form records.
        eps_g: the config's target eps (``eps.value``); alpha = training eps / eps_g (NaN when eps_g is 0).

    Returns:
        (accuracy: columns epoch, value, in [0, 1]; alpha: columns epoch, alpha, in [0, 1]), sorted by epoch. The
        accuracy is the val split's, else the test split's.
    """
    clean = metrics[records.is_clean(metrics) & ~records.is_final(metrics)]
    split = "val" if (clean["split"] == "val").any() else "test"
    accuracy = clean[clean["split"] == split][["epoch", "value"]].astype(float).sort_values("epoch")
    eps = metrics[records.is_train_eps(metrics)][["epoch", "value"]].astype(float).sort_values("epoch")
    alpha = eps.assign(alpha=eps["value"] / eps_g if eps_g > 0 else math.nan)[["epoch", "alpha"]]
    return accuracy.drop_duplicates("epoch", keep="last"), alpha.drop_duplicates("epoch", keep="last")


def schedule_figure(panels: Sequence[tuple[str, Sequence[tuple[pd.DataFrame, float, float | None]]]]) -> Figure:
    """Small multiples: per configuration, each seed's validation accuracy (solid) and alpha(t) (dashed, right axis),
    the onset epoch marked with a dotted line and a dot on the accuracy curve.

    Args:
        panels: ``(title, [(run metrics, eps_g, onset epoch or None), ...])`` per configuration; the first
            ``MAX_PANELS`` are drawn.
    """
    panels = list(panels)[:MAX_PANELS]
    columns = min(3, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    # Each row is as tall as its panels plus their (wrapped) titles' lines.
    lines = max(str(title).count("\n") + 1 for title, _ in panels) if panels else 1
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, (2.9 + 0.16 * lines) * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, runs) in zip(axes.flat, panels, strict=False):
        ax_alpha = ax.twinx()
        shades = np.linspace(1.0, 0.45, max(1, len(runs)))
        for (metrics, eps_g, onset), shade in zip(runs, shades, strict=True):
            accuracy, alpha = schedule_curves(metrics, eps_g)
            ax.plot(accuracy["epoch"], accuracy["value"], "-o", ms=2.5, lw=1.3, color=ACCURACY_COLOUR, alpha=shade)
            # The eps record at an evaluation is the eps of the updates just before it, so at epoch k it held over
            # (k-1, k]: drawn as a step ending at its record ("pre").
            ax_alpha.step(alpha["epoch"], alpha["alpha"], where="pre", ls="--", lw=1.1, color=ALPHA_COLOUR,
                          alpha=shade)
            if onset is not None and not math.isnan(onset):
                ax.axvline(onset, ls=":", lw=1, color="#333333", alpha=shade)
                at = accuracy[np.isclose(accuracy["epoch"], onset)]
                if len(at):
                    ax.plot(at["epoch"], at["value"], "o", ms=6, mfc="none", color="#333333")
        ax.set_ylim(-0.02, 1.02)
        ax_alpha.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("val clean accuracy", color=ACCURACY_COLOUR)
        ax_alpha.set_ylabel("alpha(t) = eps / eps_g", color=ALPHA_COLOUR)
        ax.grid(True, alpha=0.3)
        ax.set_title(title, fontsize=8)
    fig.suptitle("eps schedule vs validation accuracy (dotted: onset of task adaptation)", fontsize=10)
    fig.tight_layout()
    return fig
