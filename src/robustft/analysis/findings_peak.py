"""Paper A's robust-peak claim (``A.robust_peak``): in standard (full) fine-tuning robust accuracy rises early,
peaks, then degrades while clean accuracy still rises.

Three contrasts decide it, each with an interval: the rise (peak - start), the drop (peak - end) and the clean change
after the peak (clean at the end - clean at the peak). The claim holds when all three are measurably positive; it
does not hold when clean accuracy measurably fell after the peak (the model got worse overall, no trade-off) or when
robust accuracy is still at its highest at the last evaluation; otherwise it is inconclusive.

The peak is the largest of m noisy evaluations, so picking it inflates the rise and the drop; the intervals account
for the choice.

- Paired (the runs' per-image outcomes, ``findings_paired``): every accuracy of the curve is bootstrapped over the
  images (two levels, seeds then images, with several seeds), and the contrasts at the chosen peak get max-|t|
  simultaneous bands over all m candidate steps (``analysis.simultaneous``): valid whichever step the data pick,
  and narrower than Bonferroni because the m accuracies, measured on the same images, are correlated.
- UnpairedError (runs without outcomes, or ``method="unpaired"``): the rise's and the drop's intervals are widened to
  ``1 - 0.05 / m`` (Bonferroni over the m candidate peaks). One run: each accuracy has its Wilson interval (the
  peak's at the widened level), and a contrast combines two (``evidence.difference``). Several seeds: each contrast
  is taken per seed and its interval is the seeds' Student-t interval.

The peak is the step where the (seeds' mean) robust accuracy is highest, over the evaluation steps every seed has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Finding,
    clean_series,
    interval_text,
    pct,
    robust_series,
)
from robustft.analysis.findings_paired import (
    DEFAULT_INFERENCE,
    Inference,
    UnpairedError,
    align_runs,
    bootstrap,
    evidence_fields,
    percentile,
    unpaired_text,
)
from robustft.analysis.paired_bootstrap import BootstrapResult
from robustft.analysis.simultaneous import at_selected
from robustft.runs import Run

CLAIM = ("Standard fine-tuning: robust accuracy rises early, peaks, then degrades while clean accuracy still rises "
         "(paper A: ~25% near step 400, then down).")


def _curves(run: Run, eps: float) -> tuple[pd.DataFrame, str | None]:
    """(step, robust, robust_n, clean, clean_n) at the run's evaluation steps with robust accuracy, step-sorted; clean
    NaN where that step has none."""
    clean, split = clean_series(run)
    robust = robust_series(run, eps, split or "test")
    merged = robust.merge(clean[["step", "value", "n", "point"]], on="step", how="left", suffixes=("", "_clean"))
    merged = merged.rename(columns={"value": "robust", "n": "robust_n", "value_clean": "clean", "n_clean": "clean_n",
                                    "point": "robust_point", "point_clean": "clean_point"})
    return merged[["step", "robust", "robust_n", "clean", "clean_n", "robust_point", "clean_point"]], split


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


def peak_contrasts(robust: BootstrapResult, clean: BootstrapResult | None = None) -> tuple[_Contrasts, int]:
    """The contrasts of the robust-peak claim from bootstrapped curves, and the peak's index.

    Args:
        robust: the robust accuracies at the m evaluation steps (value (m,), replicates (B, m), in step order).
        clean: the clean accuracies at the same steps, or None; used from the peak on when it has the peak and the
            last step (values (m,)).

    The peak is the largest robust accuracy; rise, drop, the peak itself and the clean change after it get the
    simultaneous band of their family over all m candidate steps (``simultaneous.at_selected``), so they are valid
    for the step the data picked; start and end (not picked) get percentile intervals.
    """
    value, reps, basis = np.asarray(robust.value), robust.replicates, robust.basis
    peak_index = int(value.argmax())
    initial, final = percentile(value[[0, -1]], reps[:, [0, -1]], basis=basis)
    rise = at_selected(value - value[0], reps - reps[:, :1], peak_index, basis=basis)
    drop = at_selected(value - value[-1], reps - reps[:, -1:], peak_index, basis=basis)
    peak = at_selected(value, reps, peak_index, basis=basis)
    clean_peak = clean_final = clean_change = None
    if clean is not None:
        c, c_reps = np.asarray(clean.value), clean.replicates
        clean_peak, clean_final = percentile(c[[peak_index, -1]], c_reps[:, [peak_index, -1]], basis=basis)
        clean_change = at_selected(c[-1] - c, c_reps[:, -1:] - c_reps, peak_index, basis=basis)
    return _Contrasts(initial, peak, final, rise, drop, clean_peak, clean_final, clean_change), peak_index


def _paired(group: Sequence[Run], frames: list[pd.DataFrame], inference: Inference
            ) -> tuple[_Contrasts, int, str, int]:
    """The contrasts from the runs' per-image outcomes: (contrasts, peak index, method, images).

    Raises:
        UnpairedError: the runs' outcomes cannot be aligned (``findings_paired.align_runs``).
    """
    m = len(frames[0])
    # clean accuracy where every seed measured it: the family of "clean at the end minus clean at step j"
    has_clean = all(pd.notna(frame["clean"]).all() for frame in frames)
    points = [[[*frame["robust_point"], *(frame["clean_point"] if has_clean else [])]] for frame in frames]
    joint = align_runs([[run] for run in group], points)
    both = bootstrap(joint, lambda acc: acc[:, 0, :], inference)
    value, replicates = np.asarray(both.value), both.replicates

    def part(columns: slice) -> BootstrapResult:
        return dataclasses.replace(both, value=value[columns], replicates=replicates[:, columns])

    contrasts, peak_index = peak_contrasts(part(slice(0, m)), part(slice(m, 2 * m)) if has_clean else None)
    return contrasts, peak_index, f"{both.basis}; the peak picked among {m} evaluations (max-|t| bands)", joint.n


def robust_peak(group: Sequence[Run], eps: float, setting: str,
                inference: Inference = DEFAULT_INFERENCE) -> Finding:
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
    fallback = ""
    try:
        if not inference.paired:
            raise UnpairedError("")
        contrasts, peak_index, method, n = _paired(group, frames, inference)
    except UnpairedError as reason:
        fallback = str(reason)
        has_clean = all(pd.notna(frame.loc[s, "clean"]) for frame in frames for s in (steps[peak_index], steps[-1]))
        unpaired = _one_run if len(frames) == 1 else _seeds
        contrasts = unpaired(frames, (steps[0], steps[peak_index], steps[-1]), wide, has_clean)
        n = int(min(frame["robust_n"].min() for frame in frames))
        method = (f"Wilson, n={n}" if len(frames) == 1 else f"{len(frames)} seeds") + \
            f", Bonferroni over {m} evaluations"
        method = f"{unpaired_text(fallback)}; {method}" if fallback else f"unpaired: {method}"
    first, peak_step, last = steps[0], steps[peak_index], steps[-1]
    initial, peak, final, rise, drop, clean_peak, clean_final, clean_change = contrasts
    numbers = {"eps": eps, "split": split, "evaluations": m, "seeds": len(frames), "initial": initial.as_dict(),
               "peak": peak.as_dict(), "peak_step": peak_step, "final": final.as_dict(), "final_step": last,
               "clean_at_peak": clean_peak.as_dict() if clean_peak else None,
               "clean_final": clean_final.as_dict() if clean_final else None,
               "rise": rise.as_dict(), "drop": drop.as_dict(),
               "clean_change": clean_change.as_dict() if clean_change else None}
    curve = (f"robust accuracy {pct(initial.value)} at step {first} -> peak {pct(peak.value)} at step {peak_step} -> "
             f"{pct(final.value)} at step {last}" + (f" (mean of {len(frames)} seeds)" if len(frames) > 1 else ""))
    base["numbers"] = numbers
    verdict, why, decisive = _decide(contrasts, curve, peak_step == last, last)
    if fallback and "outcomes recorded" not in fallback:
        why += f" ({unpaired_text(fallback)})"
    what, estimate = {"rise": ("rise (peak - start)", rise), "drop": ("drop (peak - end)", drop),
                      "clean": ("clean change (end - peak)", clean_change)}[decisive]
    fields = evidence_fields(estimate, what, f"{_in_points(estimate)} points", verdict, method, n, len(frames))
    return Finding(verdict=verdict, why=why, **base, **fields)


def _decide(contrasts: _Contrasts, curve: str, peak_is_last: bool, last: int) -> tuple[str, str, str]:
    """(verdict, sentence, the contrast it rests on: ``rise``, ``drop`` or ``clean``)."""
    _, _, _, rise, drop, clean_peak, clean_final, clean_change = contrasts
    if evidence.sign(rise) != evidence.GREATER:
        return INCONCLUSIVE, (
            f"{curve}: the rise is within the sampling noise (peak - start {_in_points(rise)} points), so there "
            "is no measurable peak to degrade from."), "rise"
    if evidence.sign(drop) == evidence.GREATER:
        if clean_change is None:
            return INCONCLUSIVE, (
                f"{curve}, a drop of {_in_points(drop)} points, but clean accuracy was not measured at the peak and "
                "the end, so whether it still rose is unknown."), "drop"
        clean = (f"clean accuracy {pct(clean_peak.value)} -> {pct(clean_final.value)} (change "
                 f"{_in_points(clean_change)} points)")
        if evidence.sign(clean_change) == evidence.LESS:
            return DOES_NOT_HOLD, (
                f"{curve}, but clean accuracy fell too ({clean}): the model got worse overall rather than trading "
                "robustness for accuracy."), "clean"
        if evidence.sign(clean_change) == evidence.GREATER:
            return HOLDS, f"{curve}, a drop of {_in_points(drop)} points, while {clean}.", "drop"
        return INCONCLUSIVE, (
            f"{curve}, a drop of {_in_points(drop)} points, but {clean}: not measurably still rising."), "clean"
    if peak_is_last:
        return DOES_NOT_HOLD, (
            f"{curve}: robust accuracy was still at its highest at the last evaluation, so within these {last} "
            "steps it did not degrade (paper A's runs were thousands of steps long)."), "drop"
    return INCONCLUSIVE, (
        f"{curve}: it rose measurably, but the decline after the peak ({_in_points(drop)} points) is within the "
        "sampling noise."), "drop"
