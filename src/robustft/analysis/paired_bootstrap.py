"""The paired bootstrap over images: intervals for any statistic of several runs' accuracies on the same images.

A statistic of a study (a Pareto area, % above the average area, expected robustness, peak minus end, a correlation
over training, or a contrast of two runs' values) is a function of the runs' accuracies at their evaluation points,
and every accuracy is a mean over the same seeded images. Resampling the images, jointly for every run and every
point (one draw of images per split per replicate, the same for all runs and points), keeps the correlation between
runs and between points that an interval from independent Wilson bounds ignores, and lets a statistic that picks a
maximum (a peak, the largest area) pick it again in every replicate, so the selection is part of its interval.

- :func:`paired_bootstrap`: one level, images resampled with replacement (multinomial counts, vectorised with numpy),
  percentile interval (Efron and Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13).
- :func:`two_level_bootstrap`: several seeds, each evaluated on its own images: seeds resampled with replacement,
  then images within each drawn seed; the statistic is computed per seed and averaged over the drawn seeds (as
  ``findings_base.combine`` averages seeds). With one seed it equals :func:`paired_bootstrap` draw for draw.
- Ready statistics (factories taking point positions, returning a :data:`Statistic`): :func:`pareto_area_statistic`,
  :func:`percent_above_average_statistic`, :func:`expected_robustness_statistic`, :func:`peak_minus_end_statistic`,
  :func:`correlation_statistic`, and :func:`contrast` for the difference of two runs' values.

A :data:`Statistic` maps accuracies float (B, runs, points) to values (B,) or (B, K) (K: one value per run, say).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from robustft.analysis.evidence import Estimate
from robustft.analysis.paired import AlignedOutcomes
from robustft.analysis.pareto import pareto_areas
from robustft.analysis.tradeoff import percent_above_average
from robustft.errors import ConfigError

Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic with its percentile bootstrap interval.

    Attributes:
        value: the statistic on the observed accuracies: float, or array (K,) for a statistic with K values.
        low, high: the percentile interval, shaped as ``value``.
        replicates: the bootstrap values, (n_boot,) or (n_boot, K).
        confidence: the interval's level.
        n_images: images behind each accuracy (per split; the smallest split when several, summed over seeds).
        basis: how the interval was obtained, e.g. ``"paired bootstrap over 256 images, 2000 draws"``.
    """

    value: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    replicates: np.ndarray
    confidence: float
    n_images: int
    basis: str

    def estimate(self, index: int | None = None) -> Estimate:
        """The value (or its ``index``-th component) as an ``evidence.Estimate``."""
        pick = (lambda x: float(x)) if index is None else (lambda x: float(np.asarray(x)[index]))
        return Estimate(pick(self.value), pick(self.low), pick(self.high), self.basis)


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the seed draws and the image draws: the image draws of a one-level bootstrap
    are then the same as those of a two-level one with a single seed."""
    seeds, images = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(seeds), np.random.default_rng(images)


def resampled_accuracies(outcomes: AlignedOutcomes, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """float (n_boot, runs, points): accuracies on ``n_boot`` resamples of the images, the same resample for every run
    and point of a split (splits are resampled independently: they are different images)."""
    out = np.empty((n_boot, outcomes.runs, len(outcomes.points)))
    for sample in outcomes.samples:
        runs, points, n = sample.correct.shape
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # (B, n)
        flat = sample.correct.reshape(runs * points, n).astype(np.float64)
        out[:, :, sample.columns] = (counts @ flat.T / n).reshape(n_boot, runs, points)
    return out


def _check(n_boot: int, confidence: float) -> None:
    if n_boot < 2:
        raise ConfigError(f"n_boot must be at least 2 (1000-10000 is usual); got {n_boot}.")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), like 0.95; got {confidence}.")


def _result(value: np.ndarray, replicates: np.ndarray, confidence: float, n_images: int, basis: str
            ) -> BootstrapResult:
    alpha = 1 - confidence
    low, high = np.nanquantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
    unwrap = (lambda x: float(x)) if np.ndim(value) == 0 else (lambda x: np.asarray(x, dtype=float))
    return BootstrapResult(unwrap(value), unwrap(low), unwrap(high), replicates, confidence, n_images, basis)


def _apply(statistic: Statistic, accuracies: np.ndarray) -> np.ndarray:
    values = np.asarray(statistic(accuracies), dtype=float)
    if values.shape[:1] != accuracies.shape[:1]:
        raise ConfigError(f"a bootstrap statistic must return one value (or row) per replicate: got shape "
                          f"{values.shape} for accuracies {accuracies.shape}.")
    return values


def paired_bootstrap(outcomes: AlignedOutcomes, statistic: Statistic, n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """The statistic of the runs' accuracies with a percentile interval from resampling the shared images.

    Args:
        outcomes: ``robustft.analysis.paired.align_outcomes`` of the runs at the points the statistic reads.
        statistic: accuracies (B, runs, points) -> (B,) or (B, K).
        n_boot: bootstrap replicates.
        seed: seeds the resampling (same seed, same interval).
        confidence: the interval's level (a finding comparing m things may pass 1 - 0.05 / m).
    """
    _check(n_boot, confidence)
    _, rng = _streams(seed)
    value = _apply(statistic, outcomes.accuracy()[None])[0]
    replicates = _apply(statistic, resampled_accuracies(outcomes, n_boot, rng))
    n = min(s.image_ids.size for s in outcomes.samples)
    return _result(value, replicates, confidence, n, f"paired bootstrap over {n} images, {n_boot} draws")


def two_level_bootstrap(per_seed: Sequence[AlignedOutcomes], statistic: Statistic, n_boot: int = 2000,
                        seed: int = 0, confidence: float = 0.95) -> BootstrapResult:
    """The statistic averaged over seeds, with an interval from resampling seeds, then images within each seed.

    Args:
        per_seed: one ``align_outcomes`` per seed, each of the same runs (arms, in the same order) at the same
            points; each seed's images may differ (the evaluator draws its subsets from the run seed).
        statistic, n_boot, seed, confidence: as :func:`paired_bootstrap`.

    Raises:
        ConfigError: no seeds, or seeds with different numbers of runs or points.
    """
    _check(n_boot, confidence)
    if not per_seed:
        raise ConfigError("two_level_bootstrap needs the outcomes of at least one seed.")
    shapes = {(o.runs, len(o.points)) for o in per_seed}
    if len(shapes) != 1:
        raise ConfigError(f"every seed must have the same runs and points; got (runs, points) {sorted(shapes)}.")
    seeds_rng, images_rng = _streams(seed)
    s = len(per_seed)
    drawn = seeds_rng.integers(0, s, size=(n_boot, s)) if s > 1 else np.zeros((n_boot, 1), dtype=np.int64)
    runs, points = next(iter(shapes))
    accuracies = np.empty((n_boot, s, runs, points))
    for k, outcomes in enumerate(per_seed):
        slots = np.nonzero(drawn == k)
        if slots[0].size:
            accuracies[slots] = resampled_accuracies(outcomes, slots[0].size, images_rng)
    flat = _apply(statistic, accuracies.reshape(n_boot * s, runs, points))
    replicates = np.nanmean(flat.reshape(n_boot, s, *flat.shape[1:]), axis=1)
    value = np.mean(_apply(statistic, np.stack([o.accuracy() for o in per_seed])), axis=0)
    n = sum(min(x.image_ids.size for x in o.samples) for o in per_seed)
    return _result(value, replicates, confidence, n,
                   f"two-level bootstrap over {s} seeds and {n} images, {n_boot} draws")


def _positions(points: Sequence[int], name: str) -> np.ndarray:
    index = np.asarray(points, dtype=np.int64)
    if index.ndim != 1 or index.size == 0:
        raise ConfigError(f"{name} needs at least one point position; got {list(points)}.")
    return index


def pareto_area_statistic(clean: Sequence[int], robust: Sequence[int]) -> Statistic:
    """Each run's Pareto area (``robustft.analysis.pareto.pareto_area``, vectorised) of its (clean, robust) pairs.

    Args:
        clean, robust: positions of the points holding each evaluation's clean and robust accuracy, paired in order.

    Returns:
        A statistic giving (B, runs).
    """
    c, r = _positions(clean, "pareto_area_statistic"), _positions(robust, "pareto_area_statistic")
    if c.size != r.size:
        raise ConfigError(f"pareto_area_statistic pairs clean and robust points; got {c.size} and {r.size}.")

    def areas(acc: np.ndarray) -> np.ndarray:
        return pareto_areas(acc[..., c], acc[..., r])

    return areas


def percent_above_average_statistic(clean: Sequence[int], robust: Sequence[int]) -> Statistic:
    """Each run's Pareto area in % above the runs' average area (``tradeoff.percent_above_average``): (B, runs);
    NaN in a replicate where every area is 0."""
    areas = pareto_area_statistic(clean, robust)

    def percent(acc: np.ndarray) -> np.ndarray:
        values = areas(acc)
        out = np.full(values.shape, np.nan)
        for b, row in enumerate(values):
            try:
                above = percent_above_average(dict(enumerate(row)))
            except ValueError:
                continue
            out[b] = [above[i] for i in range(row.size)]
        return out

    return percent


def expected_robustness_statistic(curve: Sequence[int], eps: Sequence[float]) -> Statistic:
    """Each run's expected robustness E.adv, the trapezoid mean of its robust curve over [0, eps_max]: (B, runs).

    Args:
        curve: positions of the curve's points, in the order of ``eps``.
        eps: the curve's radii, ascending from 0 (as ``robustft.attacks.expected_robustness`` takes them).
    """
    index = _positions(curve, "expected_robustness_statistic")
    e = np.asarray(eps, dtype=float)
    if e.shape != index.shape or e.size < 2 or e[0] != 0 or np.any(np.diff(e) <= 0):
        raise ConfigError(f"expected_robustness_statistic needs >= 2 strictly ascending eps from 0, one per curve "
                          f"point; got eps {list(eps)} for {index.size} points.")
    widths = np.diff(e) / (2 * e[-1])

    def expected(acc: np.ndarray) -> np.ndarray:
        values = acc[..., index]
        return np.sum(widths * (values[..., 1:] + values[..., :-1]), axis=-1)

    return expected


def peak_minus_end_statistic(series: Sequence[int]) -> Statistic:
    """Each run's largest accuracy along ``series`` (positions in step order) minus its last: (B, runs). The peak is
    re-picked in every replicate, so the interval accounts for choosing the maximum."""
    index = _positions(series, "peak_minus_end_statistic")

    def drop(acc: np.ndarray) -> np.ndarray:
        values = acc[..., index]
        return values.max(axis=-1) - values[..., -1]

    return drop


def correlation_statistic(x: Sequence[int], y: Sequence[int], pooled: bool = False) -> Statistic:
    """Pearson's r between the accuracies at ``x`` and at ``y`` (paired in order, e.g. clean and OOD accuracy at
    each step): per run (B, runs), or over every run's points at once with ``pooled`` (B,). NaN without variance."""
    xi, yi = _positions(x, "correlation_statistic"), _positions(y, "correlation_statistic")
    if xi.size != yi.size or xi.size < 2:
        raise ConfigError(f"correlation_statistic pairs >= 2 x and y points; got {xi.size} and {yi.size}.")

    def pearson(acc: np.ndarray) -> np.ndarray:
        a, b = acc[..., xi], acc[..., yi]
        if pooled:
            a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        a = a - a.mean(axis=-1, keepdims=True)
        b = b - b.mean(axis=-1, keepdims=True)
        denominator = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, np.sum(a * b, axis=-1) / denominator, np.nan)

    return pearson


def contrast(statistic: Statistic, a: int, b: int) -> Statistic:
    """``statistic``'s value for run ``a`` minus run ``b`` (a per-run statistic, (B, runs) -> (B,))."""

    def difference(acc: np.ndarray) -> np.ndarray:
        values = statistic(acc)
        return values[:, a] - values[:, b]

    return difference


def half_width(result: BootstrapResult) -> float:
    """The interval's half-width, (high - low) / 2 (a scalar result), for before/after comparisons."""
    return float((result.high - result.low) / 2) if np.ndim(result.value) == 0 else math.nan
