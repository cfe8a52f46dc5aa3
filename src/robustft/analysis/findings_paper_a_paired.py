"""Paper A's area and OOD findings from the runs' per-image outcomes (``findings_paired``): the Pareto areas of all
strategies bootstrapped over the same images, and the OOD correlation bootstrapped over its images.

- Areas: one bootstrap of every strategy's area (two levels with several seeds: the seeds' mean area, as the
  unpaired ``combine`` averages seeds), from which each derived quantity takes its interval: each area's and each
  strategy's % above the average area (percentile), and BitFit's area minus the best other strategy's, the
  "largest" claim, as the smallest of BitFit's differences with every other strategy, whose interval accounts for
  which strategy is the best other (``analysis.simultaneous.interval_of_min``).
- OOD: Pearson's r between clean and OOD accuracy over every evaluation of every strategy, per OOD split, its
  interval from resampling the images of the clean and the OOD split (each split its own images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import clean_series, robust_series, series
from robustft.analysis.findings_paired import Inference, UnpairedError, align_runs, bootstrap, percentile, seed_groups
from robustft.analysis.paired_bootstrap import BootstrapResult, correlation_statistic
from robustft.analysis.pareto import pareto_areas
from robustft.analysis.simultaneous import interval_of_min
from robustft.runs import Run, records


def area_points(run: Run, eps: float) -> pd.DataFrame:
    """(step, clean, n_clean, robust, n_robust, point_clean, point_robust) per evaluation step on the run's preferred
    split (``point_*`` key the per-image outcomes)."""
    clean, split = clean_series(run)
    robust = robust_series(run, eps, split or "test")
    merged = clean.merge(robust, on="step", suffixes=("_clean", "_robust"))
    return merged.rename(columns={"value_clean": "clean", "value_robust": "robust"})


@dataclass(frozen=True)
class PairedAreas:
    """The strategies' Pareto areas and what the findings derive from them, with paired intervals.

    Attributes:
        areas: each strategy's area (the seeds' mean with several).
        bitfit_minus_best_other: BitFit's area minus the largest other area (None without BitFit).
        above_average: each strategy's (area - mean area) / mean area; None where every area is 0.
        method, n, seeds: how the intervals were drawn, images per evaluation, seeds.
        left_out: runs without a run of the same seed in every other strategy.
    """

    areas: dict[str, Estimate]
    bitfit_minus_best_other: Estimate | None
    above_average: dict[str, Estimate | None]
    method: str
    n: int
    seeds: int
    left_out: tuple[str, ...]


def paired_areas(arms: dict[str, list[Run]], eps: float, inference: Inference) -> PairedAreas:
    """The areas of the strategies in ``arms`` (strategy -> its runs, one per seed) at robust eps ``eps``.

    Raises:
        UnpairedError: the runs cannot be aligned image by image (``findings_paired.align_runs`` says why).
    """
    names = list(arms)
    groups, left_out = seed_groups([arms[name] for name in names])
    frames = [[area_points(run, eps) for run in group] for group in groups]
    joint = align_runs(groups, [[[*f["point_clean"], *f["point_robust"]] for f in seed] for seed in frames])
    sizes = [len(f) for f in frames[0]] if frames else []
    clean = [joint.columns(r, range(m)) for r, m in enumerate(sizes)]
    robust = [joint.columns(r, range(m, 2 * m)) for r, m in enumerate(sizes)]

    def areas(acc: np.ndarray) -> np.ndarray:
        if len(set(sizes)) == 1:  # the usual case: one vectorised call for every run
            return pareto_areas(acc[:, 0, np.stack(clean)], acc[:, 0, np.stack(robust)])
        return np.stack([pareto_areas(acc[:, 0, c], acc[:, 0, r]) for c, r in zip(clean, robust, strict=True)], 1)

    area, behind, above = area_contrasts(names, bootstrap(joint, areas, inference))
    return PairedAreas(area, behind, above, area["bitfit" if "bitfit" in area else names[0]].basis, joint.n,
                       joint.seeds, tuple(left_out))


def area_contrasts(names: list[str], areas: BootstrapResult
                   ) -> tuple[dict[str, Estimate], Estimate | None, dict[str, Estimate | None]]:
    """What the area findings read, from the strategies' bootstrapped areas (value (K,), replicates (B, K), in the
    order of ``names``): each area (percentile), BitFit minus the best other (``interval_of_min`` over BitFit's
    differences with every other strategy; None without BitFit) and each strategy's % above the average area
    (percentile; None everywhere when every area is 0)."""
    value, replicates, basis = np.asarray(areas.value), areas.replicates, areas.basis
    area = dict(zip(names, percentile(value, replicates, basis=basis), strict=True))
    behind = None
    if "bitfit" in names and len(names) >= 2:
        b = names.index("bitfit")
        others = [k for k in range(len(names)) if k != b]
        behind = interval_of_min(value[b] - value[others], replicates[:, [b]] - replicates[:, others], basis=basis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, means = value.mean(), replicates.mean(axis=1, keepdims=True)
        percent = (replicates - means) / np.where(means > 0, means, np.nan)
    above = dict.fromkeys(names) if mean <= 0 else dict(zip(
        names, percentile((value - mean) / mean, percent, basis=basis), strict=True))
    return area, behind, above


@dataclass(frozen=True)
class PairedCorrelation:
    """Per OOD split, Pearson's r of clean and OOD accuracy over every evaluation (None without variance)."""

    pearson_r: dict[str, Estimate | None]
    method: str
    n: int
    seeds: int


def _ood_frames(run: Run, splits: list[str]) -> list[pd.DataFrame]:
    clean, _ = clean_series(run)
    mask = records.is_clean(run.metrics) & ~records.is_final(run.metrics) & records.is_ood(run.metrics)
    return [clean.merge(series(run, mask, split), on="step", suffixes=("_clean", "_ood")) for split in splits]


def paired_correlation(arms: dict[str, list[Run]], splits: list[str], inference: Inference) -> PairedCorrelation:
    """Pearson's r of clean and OOD accuracy, per split in ``splits`` (``ood:<name>``), pooled over every evaluation
    of every strategy's run (per seed, then averaged over seeds).

    Raises:
        UnpairedError: the runs cannot be aligned image by image.
    """
    groups, _ = seed_groups(list(arms.values()))
    frames = [[_ood_frames(run, splits) for run in group] for group in groups]
    points = [[[p for f in per_split for p in (*f["point_clean"], *f["point_ood"])] for per_split in seed]
              for seed in frames]
    joint = align_runs(groups, points)
    x, y = {s: [] for s in splits}, {s: [] for s in splits}
    for r, per_split in enumerate(frames[0]):
        offset = 0
        for split, frame in zip(splits, per_split, strict=True):
            m = len(frame)
            x[split].extend(joint.columns(r, range(offset, offset + m)))
            y[split].extend(joint.columns(r, range(offset + m, offset + 2 * m)))
            offset += 2 * m
    usable = [s for s in splits if len(x[s]) >= 2]
    statistics = [correlation_statistic(x[s], y[s]) for s in usable]
    if not statistics:
        raise UnpairedError("fewer than two evaluations with OOD accuracy")
    result = bootstrap(joint, lambda acc: np.concatenate([f(acc) for f in statistics], axis=1), inference)
    estimates = percentile(np.atleast_1d(result.value), result.replicates.reshape(inference.n_boot, -1),
                           basis=result.basis)
    found = dict(zip(usable, estimates, strict=True))
    pearson = {s.removeprefix("ood:"): (found[s] if s in found and np.isfinite(found[s].value) else None)
               for s in splits}
    return PairedCorrelation(pearson, result.basis, joint.n, joint.seeds)
