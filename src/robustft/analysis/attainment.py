"""Attainment bands: the Pareto frontiers of several seeds' (clean, robust) clouds as one band.

Where one seed's frontier bounds the region it dominates (``analysis.pareto_area``), n seeds give the regions
reached by at least one, half, and every seed: the attainment surfaces of Fonseca & Fleming. The report draws the
band between the best and worst surface with the median as a line; ``seed_stats.run_summaries`` computes each
run's Pareto area as its one-seed band's area. ``seed_stats`` re-exports these names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustft.errors import ConfigError

__all__ = ["AttainmentBand", "attainment_band"]


@dataclass(frozen=True)
class AttainmentBand:
    """Attainment surfaces of n seeds' (clean, robust) clouds, as step functions of clean accuracy.

    A seed *attains* a point (c, r) when one of its evaluations has clean >= c and robust >= r, i.e. (c, r) lies in
    the region its Pareto frontier dominates (whose area ``analysis.pareto_area`` measures). On the interval
    ``(clean[j-1], clean[j]]`` (``clean[-1] = 0``) the region reached by at least k seeds is ``robust <= v_k[j]``
    where ``v_k[j]`` is the k-th largest of the seeds' best robust accuracies at clean >= clean[j].

    Attributes:
        clean: the breakpoints, every frontier point's clean accuracy, ascending, shape (m,).
        best: k = 1, the region reached by at least one seed (the union), shape (m,).
        median: k = ceil(n / 2), the region reached by at least half of the seeds (the 50%-attainment surface of
            Fonseca & Fleming; for n = 2 it is the union, for n = 5 three seeds), shape (m,).
        worst: k = n, the region reached by every seed (the intersection), shape (m,).
        n_seeds: n.
    """

    clean: np.ndarray
    best: np.ndarray
    median: np.ndarray
    worst: np.ndarray
    n_seeds: int

    def surface(self, which: str = "median") -> pd.DataFrame:
        """The surface's frontier points (columns clean, robust), drawable by ``report.figures.staircase``; its
        ``pareto_area`` is the area of the region reached by that many seeds."""
        values = {"best": self.best, "median": self.median, "worst": self.worst}[which]
        # values do not increase with clean; a corner of the staircase is the last breakpoint of each level
        corner = np.append(values[:-1] > values[1:], True) & (values > 0)
        return pd.DataFrame({"clean": self.clean[corner], "robust": values[corner]})

    def area(self, which: str = "median") -> float:
        """Area of the region reached by at least one (best) / half (median) / every (worst) seed."""
        widths = np.diff(np.concatenate([[0.0], self.clean]))
        return float(np.sum(widths * {"best": self.best, "median": self.median, "worst": self.worst}[which]))


def attainment_band(clouds: Sequence[tuple[Sequence[float], Sequence[float]]]) -> AttainmentBand:
    """The best / median / worst attainment surfaces of the seeds' (clean, robust) point clouds.

    Args:
        clouds: one (clean accuracies, robust accuracies) pair of equal-length sequences per seed.

    Raises:
        ConfigError: no cloud.
    """
    if not clouds:
        raise ConfigError("attainment_band needs at least one seed's points.")
    sorted_clouds = []
    for clean, robust in clouds:
        c, r = np.asarray(clean, dtype=float), np.asarray(robust, dtype=float)
        if c.shape != r.shape or c.ndim != 1:
            raise ConfigError(f"attainment_band: clean and robust must be 1-D of equal length, got {c.shape} and "
                              f"{r.shape}.")
        order = np.argsort(c, kind="stable")
        # best[i] = max robust over points with clean >= c[i] (a suffix maximum over clean ascending)
        best = np.maximum.accumulate(r[order][::-1])[::-1] if len(c) else r
        sorted_clouds.append((c[order], best))
    grid = np.unique(np.concatenate([c for c, _ in sorted_clouds]))
    grid = grid[grid > 0] if (grid > 0).any() else grid  # (0, 0] is empty: a clean-0 breakpoint adds no area
    reach = np.zeros((len(sorted_clouds), len(grid)))
    for i, (c, best) in enumerate(sorted_clouds):
        position = np.searchsorted(c, grid, side="left")  # the first point with clean >= the breakpoint
        inside = position < len(c)
        reach[i, inside] = best[position[inside]]
    ordered = -np.sort(-reach, axis=0)  # per breakpoint, seeds' values descending: row k-1 is the k-th largest
    n = len(sorted_clouds)
    return AttainmentBand(grid, ordered[0], ordered[math.ceil(n / 2) - 1], ordered[n - 1], n)
