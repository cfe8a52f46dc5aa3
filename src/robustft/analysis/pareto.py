"""The Pareto frontier of (clean, robust) accuracy points and the area it dominates (paper A).

The area is the hypervolume dominated by the frontier with the origin as reference (inferred: paper A, Li et al.,
ICCV 2025, does not state the reference): the union of the rectangles [0, clean] x [0, robust]. Its own module so
that ``findings`` can use it while the package ``robustft.analysis`` re-exports ``findings``, without a cycle.
Written here: a few lines of numpy; no maintained library computes a 2-D hypervolume with these conventions
without heavy dependencies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_front(clean: Sequence[float], robust: Sequence[float]) -> np.ndarray:
    """Indices of the points on the Pareto frontier (maximising both coordinates).

    A point is on the frontier when no other point is at least as good on both axes and better on one.
    Duplicated points keep one representative.

    Args:
        clean: clean accuracies, shape (N,), in [0, 1].
        robust: robust accuracies, shape (N,), in [0, 1].

    Returns:
        Integer indices into the inputs, sorted by clean accuracy ascending (robust then descends).
    """
    c = np.asarray(clean, dtype=float)
    r = np.asarray(robust, dtype=float)
    if c.shape != r.shape or c.ndim != 1:
        raise ValueError(f"clean and robust must be 1-D of equal length, got {c.shape} and {r.shape}")
    if c.size == 0:
        return np.zeros(0, dtype=int)
    # Sort by clean descending, robust descending: a point is on the front iff its robust accuracy beats every
    # point with a higher (or equal, earlier-sorted) clean accuracy.
    order = np.lexsort((-r, -c))
    front, best_robust = [], -np.inf
    for index in order:
        if r[index] > best_robust:
            front.append(index)
            best_robust = r[index]
    return np.array(front[::-1], dtype=int)


def pareto_area(clean: Sequence[float], robust: Sequence[float]) -> float:
    """Area dominated by the Pareto frontier w.r.t. the origin (2-D hypervolume), in [0, 1] for accuracies.

    Equals sum_i (c_i - c_{i-1}) * r_i over frontier points sorted by clean accuracy ascending, with c_0 = 0.
    """
    index = pareto_front(clean, robust)
    if index.size == 0:
        return 0.0
    c = np.asarray(clean, dtype=float)[index]
    r = np.asarray(robust, dtype=float)[index]
    widths = np.diff(np.concatenate([[0.0], c]))
    return float(np.sum(widths * r))


def pareto_areas(clean: np.ndarray, robust: np.ndarray) -> np.ndarray:
    """:func:`pareto_area` of many point sets at once: ``clean`` and ``robust`` float (..., N) -> areas (...).

    Vectorised for the bootstrap (thousands of replicates of every run's points): with the points sorted by clean
    accuracy descending, each adds the strip ``clean_i * (robust_i - the largest robust accuracy before it)`` when
    positive, which sums to the same union of rectangles [0, clean] x [0, robust] for accuracies in [0, 1].
    """
    c = np.asarray(clean, dtype=float)
    r = np.asarray(robust, dtype=float)
    if c.shape != r.shape or c.ndim < 1:
        raise ValueError(f"clean and robust must have equal shapes (..., N), got {c.shape} and {r.shape}")
    if c.shape[-1] == 0:
        return np.zeros(c.shape[:-1])
    order = np.lexsort((-r, -c), axis=-1)
    c, r = np.take_along_axis(c, order, axis=-1), np.take_along_axis(r, order, axis=-1)
    best_before = np.concatenate([np.zeros(r.shape[:-1] + (1,)), np.maximum.accumulate(r, axis=-1)[..., :-1]],
                                 axis=-1)
    return np.sum(c * np.clip(r - np.maximum(best_before, 0.0), 0.0, None), axis=-1)
