"""Paired statistics for runs evaluated on the same images: McNemar's exact test, a paired interval for the
difference of two accuracies, the sample size that would resolve it, and the alignment of runs' outcomes.

Every run of a study is evaluated on the same seeded images (``robustft.training.evaluator``), so two runs'
accuracies are not independent: an image one model gets right the other mostly gets right too. Treating them as
independent (``robustft.analysis.evidence.difference``) over-states the uncertainty of their difference; pairing the
verdicts image by image uses only the discordant images, where the models disagree.

- :func:`mcnemar_exact`: McNemar's test, exact: under equal accuracies the images only one run gets right are
  split between the runs as Binomial(discordant, 1/2) (``scipy.stats.binomtest``), as statsmodels'
  ``mcnemar(exact=True)``.
- :func:`paired_difference`: the difference of two accuracies on the same images with Newcombe's hybrid score
  interval for paired data (Newcombe 1998, "Improved confidence intervals for the difference between binomial
  proportions based on paired data", Stat. Med. 17:2635-2650, method 10; recommended by Fagerland, Lydersen and
  Laake 2014, Stat. Methods Med. Res., as "Newcombe square-and-add"): the two Wilson intervals combined with the
  correlation of the paired verdicts (phi, continuity-corrected as in the paper). With phi = 0 it is the
  independent-samples Newcombe interval (statsmodels' ``confint_proportions_2indep(method="newcomb")``).
- :func:`images_to_resolve_paired`: how many images a paired comparison needs so that, at the observed
  discordance rates, the interval excludes 0 with the given power (Connor 1987, "Sample size for testing
  differences in proportions for the paired-sample design", Biometrics 43:207-211);
  :func:`images_to_resolve` the same for any interval that shrinks as 1/sqrt(n) (a bootstrap interval).
- :func:`align_outcomes`: the verdicts of several runs at chosen evaluation points, on the images every run was
  evaluated on (``robustft.runs.read_outcomes`` tables in, bool arrays out), for the above and for
  ``robustft.analysis.paired_bootstrap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from robustft.analysis.evidence import Estimate
from robustft.analysis.statistics import wilson_interval
from robustft.errors import ConfigError

# An evaluation point: (step, split, metric, attack, eps), the key of a row of ``robustft.runs.read_outcomes``.
Point = tuple[int, str, str, str, float]
_KEY = ["step", "split", "metric", "attack", "eps"]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), like 0.95; got {confidence}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class PairedTable:
    """The 2 x 2 table of two runs' verdicts on the same images: both right, only a, only b, neither."""

    both: int
    only_a: int
    only_b: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def difference(self) -> float:
        """accuracy(a) - accuracy(b) = (only_a - only_b) / n (NaN with no images)."""
        return (self.only_a - self.only_b) / self.n if self.n else math.nan


def paired_table(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> PairedTable:
    """The table of two runs' verdicts ``a`` and ``b``: bool (n,), aligned image by image.

    Raises:
        ConfigError: arrays of different shapes or not 1-D.
    """
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.ndim != 1 or x.shape != y.shape:
        raise ConfigError(f"paired verdicts must be two 1-D arrays over the same images; got shapes {x.shape} and "
                          f"{y.shape}. Align runs on their shared images first (align_outcomes).")
    return PairedTable(int(np.sum(x & y)), int(np.sum(x & ~y)), int(np.sum(~x & y)), int(np.sum(~x & ~y)))


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test: ``statistic`` = min(only_a, only_b), ``p_value`` two-sided (1 with no discordance)."""

    only_a: int
    only_b: int
    statistic: int
    p_value: float


def mcnemar_exact(table: PairedTable) -> McNemar:
    """McNemar's exact test of equal accuracies: the two-sided binomial test of only_a out of the discordant images.

    Equals ``statsmodels.stats.contingency_tables.mcnemar([[both, only_a], [only_b, neither]], exact=True)``.
    """
    discordant = table.only_a + table.only_b
    p = 1.0 if discordant == 0 else float(scipy_stats.binomtest(table.only_a, discordant, 0.5).pvalue)
    return McNemar(table.only_a, table.only_b, min(table.only_a, table.only_b), min(1.0, p))


def _phi(table: PairedTable) -> float:
    """The correlation of the paired verdicts, continuity-corrected as in Newcombe (1998): a positive
    ad - bc is reduced by n/2 (not below 0); 0 when a margin is empty."""
    a, b, c, d = table.both, table.only_a, table.only_b, table.neither
    margins = float(a + b) * float(c + d) * float(a + c) * float(b + d)
    if margins == 0:
        return 0.0
    cross = float(a) * d - float(b) * c
    if cross > table.n / 2:
        cross -= table.n / 2
    elif cross > 0:
        cross = 0.0
    return cross / math.sqrt(margins)


def newcombe_paired_interval(table: PairedTable, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for accuracy(a) - accuracy(b) on the same images, within [-1, 1].

    Raises:
        ConfigError: no images, or confidence outside (0, 1).
    """
    _z(confidence)
    n = table.n
    if n == 0:
        raise ConfigError("a paired interval needs at least one image evaluated by both runs.")
    p1, p2 = (table.both + table.only_a) / n, (table.both + table.only_b) / n
    l1, u1 = wilson_interval(table.both + table.only_a, n, confidence)
    l2, u2 = wilson_interval(table.both + table.only_b, n, confidence)
    phi, d = _phi(table), p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return max(-1.0, low), min(1.0, high)


def images_to_resolve_paired(only_a_rate: float, only_b_rate: float, confidence: float = 0.95,
                             power: float = 0.8) -> float:
    """Images a paired comparison needs to resolve the difference ``only_a_rate - only_b_rate`` (Connor 1987).

    ``n = (z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - delta^2))^2 / delta^2`` with psi the discordance rate
    (only_a_rate + only_b_rate) and delta the difference: with that many images McNemar's test at level
    1 - confidence rejects equal accuracies with probability ``power`` when the rates are the observed ones.

    Returns:
        The number of images (rounded up), ``inf`` when the rates are equal (no effect to resolve).
    """
    z_alpha = _z(confidence)
    if not 0.0 < power < 1.0:
        raise ConfigError(f"power must be in (0, 1), like 0.8; got {power}.")
    psi, delta = only_a_rate + only_b_rate, only_a_rate - only_b_rate
    if delta == 0:
        return math.inf
    z_beta = NormalDist().inv_cdf(power)
    return float(math.ceil((z_alpha * math.sqrt(psi) + z_beta * math.sqrt(max(0.0, psi - delta**2))) ** 2
                           / delta**2))


def images_to_resolve(estimate: Estimate, n: int, confidence: float = 0.95, power: float = 0.8) -> float:
    """Images that would resolve ``estimate`` (an interval from ``n`` images whose width shrinks as 1/sqrt(n)):
    the n at which the interval, centred at the same value, would exclude 0 with probability ``power``.

    Uses the half-width on the side of 0; ``power`` 0.5 gives the n at which the interval just reaches 0.

    Returns:
        Images needed (rounded up; fewer than ``n`` when the interval already excludes 0 with that power); ``inf``
        when the value is 0.
    """
    z_alpha = _z(confidence)
    if not 0.0 < power < 1.0:
        raise ConfigError(f"power must be in (0, 1), like 0.8; got {power}.")
    if estimate.value == 0 or n <= 0:
        return math.inf
    half = estimate.value - estimate.low if estimate.value > 0 else estimate.high - estimate.value
    scale = (z_alpha + NormalDist().inv_cdf(power)) / z_alpha
    return float(math.ceil(n * (scale * half / abs(estimate.value)) ** 2))


@dataclass(frozen=True)
class PairedDifference:
    """accuracy(a) - accuracy(b) on the same images, with its paired interval, McNemar's p and the power estimate.

    Attributes:
        value, low, high: the difference and Newcombe's paired interval (in [-1, 1]).
        table: the 2 x 2 table behind it.
        p_value: McNemar's exact two-sided p.
        images_to_resolve: images that would resolve the observed effect with 80% power (Connor 1987), inf with
            no effect.
        confidence: the interval's level.
    """

    value: float
    low: float
    high: float
    table: PairedTable
    p_value: float
    images_to_resolve: float
    confidence: float = 0.95

    @property
    def n(self) -> int:
        return self.table.n

    def estimate(self) -> Estimate:
        """As an ``evidence.Estimate`` (basis names the method and the images)."""
        return Estimate(self.value, self.low, self.high, f"paired (Newcombe), n={self.n}")


def paired_difference(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray, confidence: float = 0.95,
                      power: float = 0.8) -> PairedDifference:
    """accuracy(a) - accuracy(b) from two runs' verdicts on the same images (bool (n,) each, aligned).

    Raises:
        ConfigError: misaligned arrays or no images.
    """
    table = paired_table(a, b)
    low, high = newcombe_paired_interval(table, confidence)
    n = table.n
    needed = images_to_resolve_paired(table.only_a / n, table.only_b / n, confidence, power)
    return PairedDifference(table.difference, low, high, table, mcnemar_exact(table).p_value, needed, confidence)


@dataclass(frozen=True)
class Sample:
    """Images every run was evaluated on, at the points of one split.

    Attributes:
        columns: int (p,), the positions of these points in ``AlignedOutcomes.points``.
        image_ids: int64 (n,), sorted.
        correct: bool (runs, p, n).
    """

    columns: np.ndarray
    image_ids: np.ndarray
    correct: np.ndarray


@dataclass(frozen=True)
class AlignedOutcomes:
    """Several runs' verdicts at the same evaluation points on their shared images.

    Attributes:
        points: the evaluation points, in the order asked for.
        samples: one per split: the points of that split and the images every run was evaluated on there.
        unshared: per split, how many images some but not all runs were evaluated on (left out; 0 when the runs
            share their evaluated images, as runs with the same data settings and seed do).
    """

    points: tuple[Point, ...]
    samples: tuple[Sample, ...]
    unshared: dict[str, int] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return int(self.samples[0].correct.shape[0]) if self.samples else 0

    def accuracy(self) -> np.ndarray:
        """float (runs, points): each run's accuracy at each point on the shared images."""
        out = np.full((self.runs, len(self.points)), np.nan)
        for sample in self.samples:
            out[:, sample.columns] = sample.correct.mean(axis=2)
        return out

    def correct_at(self, point: Point) -> np.ndarray:
        """bool (runs, n): the verdicts at ``point`` on its split's shared images."""
        index = self.points.index(point)
        for sample in self.samples:
            where = np.flatnonzero(sample.columns == index)
            if where.size:
                return sample.correct[:, where[0]]
        raise KeyError(point)


def align_outcomes(tables: Sequence[pd.DataFrame], points: Sequence[Point]) -> AlignedOutcomes:
    """The runs' verdicts at ``points`` on the images all of them were evaluated on, split by split.

    Args:
        tables: one ``robustft.runs.read_outcomes`` table per run (rows step, split, metric, attack, eps with
            image_ids and correct arrays).
        points: (step, split, metric, attack, eps) keys, e.g. ``(400, "test", "accuracy", "pgd", 1/255)``.

    Raises:
        ConfigError: a run lacks a point (the message names it), or a split has no image every run shares.
    """
    # eps compared to 12 decimals: 1/255 typed by hand and 1/255 parsed from "1/255" may differ in the last bit
    points = tuple((int(s), str(sp), str(m), str(a), round(float(e), 12)) for s, sp, m, a, e in points)
    rows: list[dict[Point, tuple[np.ndarray, np.ndarray]]] = []
    for index, table in enumerate(tables):
        found = {}
        for row in table.itertuples(index=False):
            key = (int(row.step), str(row.split), str(row.metric), str(row.attack), round(float(row.eps), 12))
            found[key] = (np.asarray(row.image_ids), np.asarray(row.correct, dtype=bool))
        missing = [p for p in points if p not in found]
        if missing:
            raise ConfigError(f"run {index} has no per-image outcomes at {missing[0]} (step, split, metric, attack, "
                              "eps); pick points every run evaluated (read_outcomes lists them), or re-run it with "
                              "this version of robustft, which records outcomes.bin.")
        rows.append({p: found[p] for p in points})
    samples, unshared = [], {}
    for split in dict.fromkeys(p[1] for p in points):
        columns = np.array([i for i, p in enumerate(points) if p[1] == split])
        id_sets = [rows[r][points[c]][0] for r in range(len(rows)) for c in columns]
        shared = id_sets[0]
        for ids in id_sets[1:]:
            shared = np.intersect1d(shared, ids)
        union = np.unique(np.concatenate(id_sets)) if id_sets else shared
        if shared.size == 0:
            raise ConfigError(f"the runs share no evaluated image on {split}: they were evaluated on different "
                              "subsets (another seed, eval.subset or data settings). Compare runs of one seed, or "
                              "use the unpaired intervals of robustft.analysis.evidence.")
        correct = np.empty((len(rows), columns.size, shared.size), dtype=bool)
        for r in range(len(rows)):
            for j, c in enumerate(columns):
                ids, verdicts = rows[r][points[c]]
                order = np.argsort(ids)
                correct[r, j] = verdicts[order][np.searchsorted(ids[order], shared)]
        samples.append(Sample(columns, shared.astype(np.int64), correct))
        unshared[split] = int(union.size - shared.size)
    return AlignedOutcomes(points, tuple(samples), unshared)
