"""Intervals for claims that pick from the data: the largest of several contrasts, or a contrast at a chosen step.

A finding that picks a maximum (the step where robust accuracy peaks, the strategy with the largest Pareto area)
and then reports the picked contrast's ordinary interval over-states its evidence: the largest of m noisy
contrasts is biased upwards, and an interval that holds for each contrast alone does not hold for the one the data
chose. Nor does the percentile bootstrap of the maximum itself, re-picked in every replicate: for "peak minus end"
every replicate is >= 0 by construction (the end is a candidate), so under a flat curve its lower quantile is
often above 0 (in 38% of 200 simulated flat 12-point curves on 256 images), and "BitFit minus the best other"
among 6 equal strategies came out measurably non-zero in 22% of 150 simulated studies (the simulations of
tests/test_findings_paired.py, where these bands stay at or below 2.5%).

What is used instead is the max-|t| simultaneous band over the family (Westfall and Young 1993, "Resampling-Based
Multiple Testing", ch. 2; Romano and Wolf 2005, Econometrica 73:1237-1282): with the family's K contrasts d_k and
their bootstrap replicates d*_k (replicated jointly: the same images in every column, so the band uses their
correlation), ``c`` is the ``confidence`` quantile of ``max_k |d*_k - d_k| / se_k`` and ``d_k +- c se_k`` cover every
contrast at once with probability ``confidence``. Whatever k the data then pick, its band is valid; with
correlated contrasts ``c`` is smaller than Bonferroni's ``z_{1 - alpha / 2K}``.

- :func:`bands`: the K half-widths, simultaneous or each contrast's own (marginal).
- :func:`at_selected`: the contrast at a chosen index with its simultaneous band.
- :func:`interval_of_max`, :func:`interval_of_min`: the largest (smallest) contrast. The lower end of a maximum
  needs the simultaneous band, its upper end only the marginal ones (``max_k (d_k + h_k)`` is at least the upper
  end of the truly largest contrast); for a minimum the other way round. So "bitfit minus the best other strategy"
  is shown above 0 only when every difference is (an intersection-union test needs no correction), and below 0
  when some difference is, accounting for which.

Arrays: ``values`` float (K,), ``replicates`` float (B, K) (NaN replicates are ignored).
"""

from __future__ import annotations

import numpy as np

from robustft.analysis.evidence import CONFIDENCE, Estimate
from robustft.errors import ConfigError

_NO_SPREAD = 1e-12  # accuracies, areas and their contrasts are O(1): a smaller standard error is rounding


def _check(values: np.ndarray, replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    v, r = np.asarray(values, dtype=float), np.asarray(replicates, dtype=float)
    if v.ndim != 1 or v.size == 0 or r.ndim != 2 or r.shape[1] != v.size:
        raise ConfigError(f"a family of contrasts needs values (K,) and replicates (B, K); got {v.shape} and "
                          f"{r.shape}.")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), like 0.95; got {confidence}.")
    return v, r


def _standardised(v: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|d* - d| / se per replicate and contrast, se). NaN where a replicate is NaN or the contrast has no spread
    (se 0, e.g. a step minus itself): ignored by the quantiles, and its band is 0 wide whatever its quantile."""
    se = np.nan_to_num(np.nanstd(r, axis=0, ddof=1)) if r.shape[0] > 1 else np.zeros(v.shape)
    se = np.where(se > _NO_SPREAD, se, 0.0)  # a constant column's std is rounding error, not spread
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(se > 0, np.abs(r - v) / se, np.nan), se


def bands(values: np.ndarray, replicates: np.ndarray, confidence: float = CONFIDENCE,
          simultaneous: bool = True) -> np.ndarray:
    """Half-widths (K,) of the max-|t| bands covering all K contrasts at once (``simultaneous``) or each alone."""
    v, r = _check(values, replicates, confidence)
    z, se = _standardised(v, r)
    if simultaneous:
        z = np.fmax.reduce(z, axis=1, keepdims=True)  # the family's worst contrast per replicate, NaN ignored
    usable = np.isfinite(z).any(axis=0)
    c = np.zeros(z.shape[1])
    c[usable] = np.nanquantile(z[:, usable], confidence, axis=0)
    return c * se


def at_selected(values: np.ndarray, replicates: np.ndarray, index: int, confidence: float = CONFIDENCE,
                basis: str = "") -> Estimate:
    """Contrast ``index`` (picked from the data, e.g. the peak step) with its simultaneous band over the family."""
    v = np.asarray(values, dtype=float)
    half = bands(v, replicates, confidence)[index]
    return Estimate(float(v[index]), float(v[index] - half), float(v[index] + half), basis)


def interval_of_max(values: np.ndarray, replicates: np.ndarray, confidence: float = CONFIDENCE,
                    basis: str = "") -> Estimate:
    """The largest contrast, ``max_k d_k``, with an interval accounting for which one is largest (see module)."""
    v = np.asarray(values, dtype=float)
    simultaneous, marginal = bands(v, replicates, confidence), bands(v, replicates, confidence, simultaneous=False)
    return Estimate(float(v.max()), float(np.max(v - simultaneous)), float(np.max(v + marginal)), basis)


def interval_of_min(values: np.ndarray, replicates: np.ndarray, confidence: float = CONFIDENCE,
                    basis: str = "") -> Estimate:
    """The smallest contrast, ``min_k d_k`` (e.g. BitFit's area minus each other strategy's: BitFit minus the best
    other), with an interval accounting for which one is smallest (see module)."""
    flipped = interval_of_max(-np.asarray(values, dtype=float), -np.asarray(replicates, dtype=float), confidence)
    return Estimate(-flipped.value, -flipped.high, -flipped.low, basis)
