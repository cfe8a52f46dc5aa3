"""Paired inference for the findings: the runs' per-image verdicts aligned across runs and seeds, bootstrapped over
images, and the evidence fields every finding carries (method, n, the interval its verdict rests on, the sample size
that would resolve it).

Every run of a study is evaluated on the same seeded images (the evaluator draws its subsets from the run seed), so
the findings compare runs image by image (``robustft.analysis.paired``, ``paired_bootstrap``) rather than as
independent estimates. Runs of one seed are aligned on the images they share; several seeds are combined by the
two-level bootstrap (seeds, then images). When the runs cannot be paired (no ``outcomes.bin``: runs written before
robustft recorded outcomes; no shared images: another seed or subset), :class:`UnpairedError` says why, and the finding
falls back to its unpaired intervals (Wilson bounds or the seeds' spread, ``robustft.analysis.evidence``) and says
so. ``findings(runs, method="unpaired")`` takes the fallback on purpose, to compare the two on the same runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import INCONCLUSIVE, get
from robustft.analysis.paired import AlignedOutcomes, Point, Sample, align_outcomes, images_to_resolve
from robustft.analysis.paired_bootstrap import BootstrapResult, Statistic, paired_bootstrap, two_level_bootstrap
from robustft.errors import ConfigError
from robustft.runs import Run

PAIRED, UNPAIRED = "paired", "unpaired"
METHODS = (PAIRED, UNPAIRED)
N_BOOT = 2000
# Runs of "one seed" sharing fewer than half their images were evaluated on different subsets: pairing them on the
# few images they happen to share would throw most of the evidence away.
MIN_SHARED = 0.5


@dataclass(frozen=True)
class Inference:
    """How the findings draw their intervals: ``method`` paired (when the runs allow) or unpaired; bootstrap draws
    and seed."""

    method: str = PAIRED
    n_boot: int = N_BOOT
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"findings method must be one of {', '.join(METHODS)}; got {self.method!r}.")
        if int(self.n_boot) < 100:
            raise ConfigError(f"findings need n_boot >= 100 bootstrap draws (2000 is the default); got {self.n_boot}.")

    @property
    def paired(self) -> bool:
        return self.method == PAIRED


DEFAULT_INFERENCE = Inference()


class UnpairedError(Exception):
    """The runs cannot be compared image by image; ``str(error)`` is the reason, e.g. ``runs share no evaluated
    images``."""


def unpaired_text(reason: str) -> str:
    return f"unpaired: {reason}"


@dataclass(frozen=True)
class Joint:
    """Several runs' verdicts, per seed, as one block of columns (``AlignedOutcomes`` with a single "run" whose
    points are every run's points in turn), so any statistic of all of them is one bootstrap.

    Attributes:
        per_seed: one ``AlignedOutcomes`` per seed, runs = 1, points = run 0's points, then run 1's, ...
        starts: the column where each run's points begin (the same in every seed).
        n: images per run and evaluation (the smallest split of the smallest seed).
    """

    per_seed: tuple[AlignedOutcomes, ...]
    starts: tuple[int, ...]
    n: int

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    def columns(self, run: int, positions: Sequence[int]) -> np.ndarray:
        """Column indices of run ``run``'s points at ``positions`` (indices into the points given for that run)."""
        return self.starts[run] + np.asarray(positions, dtype=np.int64)


def seed_groups(arms: Sequence[Sequence[Run]]) -> tuple[list[list[Run]], list[str]]:
    """The runs of several arms matched on their config's seed: per seed one run of every arm, in arm order.

    One run per arm is one group whatever the seeds (as ``findings_base.seed_pairs``). A seed missing from an arm,
    or repeated within one, leaves its runs out (returned by name).
    """
    if all(len(arm) == 1 for arm in arms):
        return [[arm[0] for arm in arms]], []
    by_seed = [{} for _ in arms]
    for index, arm in enumerate(arms):
        for run in arm:
            by_seed[index].setdefault(str(get(run.config, "seed")), []).append(run)
    common = [s for s in by_seed[0] if all(len(seeds.get(s, [])) == 1 for seeds in by_seed)]
    left_out = [run.name for arm in arms for run in arm if str(get(run.config, "seed")) not in common]
    return [[seeds[s][0] for seeds in by_seed] for s in common], left_out


def _align_seed(runs: Sequence[Run], points: Sequence[Sequence[Point]]) -> AlignedOutcomes:
    per_run = []
    for run, wanted in zip(runs, points, strict=True):
        table = run.outcomes
        if table.empty:
            raise UnpairedError(f"no per-image outcomes recorded for {run.name} (written before outcomes.bin)")
        try:
            per_run.append(align_outcomes([table], wanted))
        except ConfigError:
            raise UnpairedError(f"{run.name} has no per-image outcomes at every evaluation the finding reads") from None
    starts = np.cumsum([0, *(len(p) for p in points)])[:-1]
    samples, unshared = [], {}
    for split in dict.fromkeys(s for one in per_run for s in (p[1] for p in one.points)):
        parts = [(start + sample.columns, sample) for start, one in zip(starts, per_run, strict=True)
                 for sample in one.samples if one.points[sample.columns[0]][1] == split]
        shared = parts[0][1].image_ids
        for _, sample in parts[1:]:
            shared = np.intersect1d(shared, sample.image_ids)
        smallest = min(sample.image_ids.size for _, sample in parts)
        if shared.size == 0:
            raise UnpairedError("runs share no evaluated images")
        if shared.size < MIN_SHARED * smallest:
            raise UnpairedError(f"runs share only {shared.size} of {smallest} evaluated images")
        correct = np.concatenate([sample.correct[0][:, np.isin(sample.image_ids, shared)] for _, sample in parts])
        samples.append(Sample(np.concatenate([columns for columns, _ in parts]), shared, correct[None]))
        unshared[split] = smallest - int(shared.size)
    flat = tuple(p for one in points for p in one)
    return AlignedOutcomes(flat, tuple(samples), unshared)


def align_runs(groups: Sequence[Sequence[Run]], points: Sequence[Sequence[Sequence[Point]]]) -> Joint:
    """The verdicts of ``groups[s][r]`` (run r of seed s) at ``points[s][r]`` on the images each seed's runs share.

    Raises:
        UnpairedError: no outcomes, a point without outcomes, too few shared images, or seeds with different numbers of
            points per run (the two-level bootstrap applies one statistic to every seed).
    """
    if not groups:
        raise UnpairedError("no seed is shared by every arm")
    counts = {tuple(len(p) for p in seed) for seed in points}
    if len(counts) != 1:
        raise UnpairedError("the seeds were evaluated at different numbers of points")
    per_seed = tuple(_align_seed(runs, pts) for runs, pts in zip(groups, points, strict=True))
    starts = tuple(int(s) for s in np.cumsum([0, *next(iter(counts))])[:-1])
    return Joint(per_seed, starts, min(int(s.image_ids.size) for one in per_seed for s in one.samples))


def bootstrap(joint: Joint, statistic: Statistic, inference: Inference) -> BootstrapResult:
    """``statistic`` of the joint accuracies (B, 1, columns) -> (B,) or (B, K): one level with one seed, two levels
    (seeds, then images; the statistic averaged over seeds) with several."""
    if joint.seeds == 1:
        return paired_bootstrap(joint.per_seed[0], statistic, inference.n_boot, inference.seed)
    return two_level_bootstrap(joint.per_seed, statistic, inference.n_boot, inference.seed)


def percentile(values: np.ndarray, replicates: np.ndarray, confidence: float = 0.95, basis: str = ""
               ) -> list[Estimate]:
    """Percentile intervals of K derived quantities: ``values`` (K,), ``replicates`` (B, K) (NaN ignored); an
    interval the observed value falls outside of (a skewed statistic) is widened to contain it."""
    alpha = 1 - confidence
    out = []
    for value, column in zip(np.asarray(values, dtype=float), np.asarray(replicates, dtype=float).T, strict=True):
        finite = column[np.isfinite(column)]
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2]) if finite.size else (math.nan, math.nan)
        out.append(Estimate(float(value), float(min(low, value)), float(max(high, value)), basis))
    return out


def evidence_fields(estimate: Estimate | None, what: str, text: str, verdict: str, method: str, n: int | None,
                    seeds: int = 1, needed: float | None = None) -> dict[str, Any]:
    """The ``Finding`` fields method, n, interval and resolve for a verdict resting on ``estimate``.

    ``resolve`` (inconclusive verdicts only) is the sample size at which the observed effect would be resolved with
    80% power: ``needed`` when the caller has an exact one (McNemar's, ``paired.images_to_resolve_paired``), else the
    n at which the interval, shrinking as 1/sqrt(n), would exclude 0 (``paired.images_to_resolve``); in seeds when
    the interval comes from several seeds, whose spread more images do not shrink.
    """
    interval = None if estimate is None else {**estimate.as_dict(), "what": what, "text": text}
    resolve = None
    if verdict == INCONCLUSIVE and estimate is not None and n:
        unit, size = ("seeds", seeds) if seeds > 1 else ("images", n)
        count = needed if needed is not None and seeds == 1 else images_to_resolve(estimate, size)
        if math.isfinite(estimate.low) and math.isfinite(estimate.high):
            resolve = {"count": int(count) if math.isfinite(count) else None, "unit": unit}
    return {"method": method, "n": n, "interval": interval, "resolve": resolve}
