"""Paper A's robust-peak claim (``A.robust_peak``): in standard (full) fine-tuning robust accuracy rises early,
peaks, then degrades while clean accuracy still rises.

Three contrasts decide it, each with an interval: the rise (peak - start), the drop (peak - end) and the clean change
after the peak (clean at the end - clean at the peak). The claim holds when all three are measurably positive; it
does not hold when clean accuracy measurably fell after the peak (the model got worse overall, no trade-off) or when
robust accuracy is still at its highest at the last evaluation; otherwise it is inconclusive.

The peak is the largest of m noisy evaluations, so picking it inflates the rise and the drop: their intervals are
widened to ``1 - 0.05 / m`` (Bonferroni over the m candidate peaks).

- One run: each accuracy has its Wilson interval (the peak's at the widened level), and a contrast combines two
  (``evidence.difference``).
- Several seeds: the peak is the step where the seeds' mean robust accuracy is highest (over the evaluation steps
  every seed has); each contrast is taken per seed and its interval is the seeds' Student-t interval (the rise's and
  the drop's at the widened level).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Finding,
    StudyRun,
    clean_series,
    interval_text,
    pct,
    robust_series,
)

CLAIM = ("Standard fine-tuning: robust accuracy rises early, peaks, then degrades while clean accuracy still rises "
         "(paper A: ~25% near step 400, then down).")


def _curves(run: StudyRun, eps: float) -> tuple[pd.DataFrame, str | None]:
    """(step, robust, robust_n, clean, clean_n) at the run's evaluation steps with robust accuracy, step-sorted; clean
    NaN where that step has none."""
    clean, split = clean_series(run)
    robust = robust_series(run, eps, split or "test")
    merged = robust.merge(clean[["step", "value", "n"]], on="step", how="left", suffixes=("", "_clean"))
    merged = merged.rename(columns={"value": "robust", "n": "robust_n", "value_clean": "clean", "n_clean": "clean_n"})
    return merged[["step", "robust", "robust_n", "clean", "clean_n"]], split


def _in_points(estimate: Estimate) -> str:
    """A difference of accuracies in percentage points with its interval: ``2.0 [-6.0, 10.7]``."""
    return interval_text(estimate, unit="")


class _Contrasts(NamedTuple):
    initial: Estimate
    peak: Estimate
    final: Estimate
    rise: Estimate
    drop: Estimate
    clean_peak: Estimate | None
    clean_final: Estimate | None
    clean_change: Estimate | None


def _one_run(frames: list[pd.DataFrame], steps: tuple[int, int, int], wide: float, has_clean: bool) -> _Contrasts:
    """The accuracies and contrasts from one run's Wilson intervals; the peak's at the Bonferroni level ``wide``."""
    (row,), (first, peak_step, last) = frames, steps

    def at(step: int, column: str, confidence: float = evidence.CONFIDENCE) -> Estimate:
        return evidence.accuracy(float(row.loc[step, column]), int(row.loc[step, f"{column}_n"]), confidence)

    initial, peak, final = at(first, "robust"), at(peak_step, "robust", wide), at(last, "robust")
    clean_peak, clean_final = (at(peak_step, "clean"), at(last, "clean")) if has_clean else (None, None)
    clean_change = evidence.difference(clean_final, clean_peak) if clean_peak and clean_final else None
    return _Contrasts(initial, peak, final, evidence.difference(peak, initial), evidence.difference(peak, final),
                      clean_peak, clean_final, clean_change)


def _seeds(frames: list[pd.DataFrame], steps: tuple[int, int, int], wide: float, has_clean: bool) -> _Contrasts:
    """The same from several seeds: each contrast per seed, then the seeds' Student-t interval (the rise's and the
    drop's at the Bonferroni level ``wide``)."""
    first, peak_step, last = steps

    def per_seed(step: int, column: str) -> list[float]:
        return [float(frame.loc[step, column]) for frame in frames]

    def mean(values: list[float]) -> Estimate:
        return evidence.from_seeds(values, bounds=evidence.UNIT)

    def change(a: list[float], b: list[float], confidence: float = evidence.CONFIDENCE) -> Estimate:
        return evidence.from_seeds([x - y for x, y in zip(a, b, strict=True)], confidence, evidence.SIGNED_UNIT)

    r0, rp, rl = per_seed(first, "robust"), per_seed(peak_step, "robust"), per_seed(last, "robust")
    cp, cl = (per_seed(peak_step, "clean"), per_seed(last, "clean")) if has_clean else ([], [])
    return _Contrasts(mean(r0), mean(rp), mean(rl), change(rp, r0, wide), change(rp, rl, wide),
                      mean(cp) if has_clean else None, mean(cl) if has_clean else None,
                      change(cl, cp) if has_clean else None)


def robust_peak(group: Sequence[StudyRun], eps: float, setting: str) -> Finding:
    """``A.robust_peak`` on the full fine-tuning runs of a study (one per seed) at robust eps ``eps``."""
    names = tuple(run.name for run in group)
    base = {"key": "A.robust_peak", "paper": "A", "claim": CLAIM, "setting": setting, "runs": names}
    curves = [_curves(run, eps) for run in group]
    split = curves[0][1]
    frames = [frame for frame, _ in curves]
    steps = sorted(set.intersection(*(set(frame["step"]) for frame in frames)))
    if len(steps) < 3:
        who = names[0] if len(group) == 1 else f"the {len(group)} seeds ({', '.join(names)})"
        return Finding(verdict=INCONCLUSIVE, why=f"{who} {'has' if len(group) == 1 else 'share'} fewer than 3 robust "
                                                 "evaluations.", **base)
    frames = [frame.set_index("step").loc[steps] for frame in frames]
    m = len(steps)
    wide = 1 - (1 - evidence.CONFIDENCE) / m
    mean_robust = sum(frame["robust"].to_numpy(dtype=float) for frame in frames) / len(frames)
    peak_index = int(mean_robust.argmax())
    first, peak_step, last = steps[0], steps[peak_index], steps[-1]
    has_clean = all(pd.notna(frame.loc[s, "clean"]) for frame in frames for s in (peak_step, last))
    contrasts = _one_run if len(frames) == 1 else _seeds
    initial, peak, final, rise, drop, clean_peak, clean_final, clean_change = contrasts(
        frames, (first, peak_step, last), wide, has_clean)
    numbers = {"eps": eps, "split": split, "evaluations": m, "seeds": len(frames), "initial": initial.as_dict(),
               "peak": peak.as_dict(), "peak_step": peak_step, "final": final.as_dict(), "final_step": last,
               "clean_at_peak": clean_peak.as_dict() if clean_peak else None,
               "clean_final": clean_final.as_dict() if clean_final else None,
               "rise": rise.as_dict(), "drop": drop.as_dict(),
               "clean_change": clean_change.as_dict() if clean_change else None}
    curve = (f"robust accuracy {pct(initial.value)} at step {first} -> peak {pct(peak.value)} at step {peak_step} -> "
             f"{pct(final.value)} at step {last}" + (f" (mean of {len(frames)} seeds)" if len(frames) > 1 else ""))
    base["numbers"] = numbers
    if evidence.sign(rise) != evidence.GREATER:
        return Finding(verdict=INCONCLUSIVE, why=(
            f"{curve}: the rise is within the sampling noise (peak - start {_in_points(rise)} points), so there "
            "is no measurable peak to degrade from."), **base)
    if evidence.sign(drop) == evidence.GREATER:
        if clean_change is None:
            return Finding(verdict=INCONCLUSIVE, why=(
                f"{curve}, a drop of {_in_points(drop)} points, but clean accuracy was not measured at the peak and "
                "the end, so whether it still rose is unknown."), **base)
        clean = (f"clean accuracy {pct(clean_peak.value)} -> {pct(clean_final.value)} (change "
                 f"{_in_points(clean_change)} points)")
        if evidence.sign(clean_change) == evidence.LESS:
            return Finding(verdict=DOES_NOT_HOLD, why=(
                f"{curve}, but clean accuracy fell too ({clean}): the model got worse overall rather than trading "
                "robustness for accuracy."), **base)
        if evidence.sign(clean_change) == evidence.GREATER:
            return Finding(verdict=HOLDS, why=f"{curve}, a drop of {_in_points(drop)} points, while {clean}.", **base)
        return Finding(verdict=INCONCLUSIVE, why=(
            f"{curve}, a drop of {_in_points(drop)} points, but {clean}: not measurably still rising."), **base)
    if peak_step == last:
        return Finding(verdict=DOES_NOT_HOLD, why=(
            f"{curve}: robust accuracy was still at its highest at the last evaluation, so within these {last} "
            "steps it did not degrade (paper A's runs were thousands of steps long)."), **base)
    return Finding(verdict=INCONCLUSIVE, why=(
        f"{curve}: it rose measurably, but the decline after the peak ({_in_points(drop)} points) is within the "
        "sampling noise."), **base)
