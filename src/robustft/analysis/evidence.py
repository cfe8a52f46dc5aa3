"""Intervals for the quantities the findings compare, and the three-way verdict they imply.

A finding never compares two numbers against a fixed margin: each quantity carries an interval from where its
uncertainty comes from, and a claim holds only when the interval of the contrast it makes excludes zero.

- One run: accuracies are counts on a fixed evaluated subset, so each has a 95% Wilson interval
  (``robustft.analysis.statistics``). Quantities built from several accuracies of one run (Pareto area, expected
  robustness) are monotone in each of them, so evaluating the quantity at every accuracy's lower (upper) bound bounds it
  from below (above). For expected robustness that is close to exact: the robust curve nests on the same
  samples, so its errors move together. For the Pareto area it is conservative (every point at its bound at
  once), which can only make a verdict "inconclusive", never a false "holds".
- Several seeds of the same setting: the seeds' spread, a Student-t interval of their mean (``scipy.stats.t``
  for every number of seeds), clipped to the range the quantity can take (an accuracy's to [0, 1]: two seeds far
  apart otherwise give "60.0% [-194.1, 314.1]").
- A difference of two independent estimates: the square-root combination of their half-widths
  (Newcombe 1998, method 10, for Wilson intervals): ``d - sqrt((a - a_lo)^2 + (b_hi - b)^2)`` and
  ``d + sqrt((a_hi - a)^2 + (b - b_lo)^2)``. Two runs evaluated on the same seeded subset are positively
  correlated, so treating them as independent over-states the width: again conservative.
- A correlation: Fisher's z interval.

The quantiles come from scipy (a core dependency); the formulas are written out here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

from robustft.analysis.statistics import wilson_interval

CONFIDENCE = 0.95
UNIT = (0.0, 1.0)  # the range of an accuracy, a Pareto area or E.adv
SIGNED_UNIT = (-1.0, 1.0)  # the range of a difference of two of them

GREATER = "greater"
LESS = "less"
UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class Estimate:
    """A value with a (roughly 95%) interval and how the interval was obtained.

    Attributes:
        value: the point estimate (accuracies and areas in [0, 1]).
        low, high: the interval, ``low <= value <= high``.
        basis: where the uncertainty comes from, e.g. ``"Wilson, n=256"`` or ``"3 seeds"``.
    """

    value: float
    low: float
    high: float
    basis: str = ""

    def as_dict(self) -> dict[str, float | str]:
        """``{"value", "low", "high", "basis"}`` (JSON-serialisable)."""
        return {"value": self.value, "low": self.low, "high": self.high, "basis": self.basis}


def accuracy(value: float, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """An accuracy measured on ``n`` samples, with its Wilson interval (the count is ``round(value * n)``)."""
    n = int(n)
    k = min(n, max(0, int(round(float(value) * n))))
    low, high = wilson_interval(k, n, confidence)
    return Estimate(float(value), min(low, float(value)), max(high, float(value)), f"Wilson, n={n}")


def from_seeds(values: Sequence[float], confidence: float = CONFIDENCE,
               bounds: tuple[float, float] | None = None) -> Estimate:
    """The mean over seeds with a two-sided Student-t interval (``len(values) >= 2``).

    Args:
        values: one number per seed.
        confidence: the interval's level (a Bonferroni-widened level such as ``1 - 0.05 / m`` is accepted).
        bounds: the range the quantity can take (``UNIT`` for accuracies); the interval is clipped to it. None: no
            clipping.
    """
    if len(values) < 2:
        raise ValueError("from_seeds needs at least two values")
    m = len(values)
    mean = sum(values) / m
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (m - 1))
    half = t_quantile(m - 1, confidence) * sd / math.sqrt(m)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Estimate(mean, low, high, f"{m} seeds")


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t quantile ``t_{(1 + confidence) / 2, df}`` for ``df >= 1`` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    return float(scipy_stats.t.ppf(0.5 + confidence / 2, df))


def difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with the square-root combination of the two intervals (Newcombe's method for proportions)."""
    d = a.value - b.value
    low = d - math.hypot(a.value - a.low, b.high - b.value)
    high = d + math.hypot(a.high - a.value, b.value - b.low)
    basis = a.basis if a.basis == b.basis else f"{a.basis}; {b.basis}"
    return Estimate(d, low, high, basis)


def sign(estimate: Estimate) -> str:
    """``GREATER`` when the interval lies above 0, ``LESS`` below 0, else ``UNRESOLVED``."""
    if estimate.low > 0:
        return GREATER
    if estimate.high < 0:
        return LESS
    return UNRESOLVED


def correlation(x: Sequence[float], y: Sequence[float]) -> Estimate | None:
    """Pearson r with Fisher's z 95% interval; None with fewer than 4 points or no variance.

    The interval assumes independent points; points along one training run are not, so read it as a lower bound
    on the uncertainty.
    """
    n = len(x)
    if n != len(y):
        raise ValueError("x and y must have equal length")
    if n < 4:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    r = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / math.sqrt(sxx * syy)
    r = max(-1.0, min(1.0, r))
    z = math.atanh(max(-0.999999, min(0.999999, r)))
    half = float(scipy_stats.norm.ppf(0.5 + CONFIDENCE / 2)) / math.sqrt(n - 3)
    return Estimate(r, math.tanh(z - half), math.tanh(z + half), f"Fisher z, {n} points")
