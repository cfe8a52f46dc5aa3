"""Paper B's claims tested on RFT-fix, Epsilon-Scheduling and a standard reference (``robustft.analysis.findings``
matches the runs).

- ``B.clean`` and ``B.expected_robustness``: Epsilon-Scheduling beats RFT-fix on clean accuracy and on E.adv;
- ``B.onset_delay``: RFT-fix delays the onset of task adaptation relative to standard fine-tuning
  (``findings_onset``).

Runs of two arms are paired on their seed (``findings_base.seed_pairs``). A run whose adversarial objective never
perturbed (summary.json's ``perturbed_steps == 0``) is standard fine-tuning under a schedule's name: it is left
out of the comparison and the finding says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    SPLIT_PREFERENCE,
    Finding,
    clean_series,
    final_clean,
    get,
    interval_text,
    never_perturbed,
    outcome_point,
    paired_contrast,
    seed_pairs,
    setting_text,
)
from robustft.analysis.findings_onset import never_perturbed_text, onset_delay
from robustft.analysis.findings_paired import (
    DEFAULT_INFERENCE,
    Inference,
    UnpairedError,
    align_runs,
    bootstrap,
    evidence_fields,
    unpaired_text,
)
from robustft.analysis.paired import Point, paired_difference
from robustft.analysis.paired_bootstrap import Statistic, expected_robustness_statistic
from robustft.config.units import format_eps, parse_eps
from robustft.errors import RobustftError
from robustft.runs import Run


def paper_b_findings(fix: list[Run], scheduled: list[Run], reference: list[Run],
                     inference: Inference = DEFAULT_INFERENCE) -> list[Finding]:
    """Paper B's findings for RFT-fix and Epsilon-Scheduling runs (one per seed) and standard reference runs."""
    setting = setting_text(fix[0].config) + f", eps_g = {_eps_text(get(fix[0].config, 'eps.value'))}"
    names = tuple(r.name for r in (*fix, *scheduled))
    idle = [r.name for r in (*fix, *scheduled) if never_perturbed(r)]
    fix_used = [r for r in fix if not never_perturbed(r)]
    scheduled_used = [r for r in scheduled if not never_perturbed(r)]
    out = [_schedule_beats_fix("B.clean", _CLEAN, scheduled_used, fix_used, setting, names, idle, inference)]
    if any(_expected_robustness(r) for r in fix) and any(_expected_robustness(r) for r in scheduled):
        out.append(_schedule_beats_fix("B.expected_robustness", _EXPECTED, scheduled_used, fix_used, setting, names,
                                       idle, inference))
    if reference:
        out.append(onset_delay(fix, reference, setting))
    return out


def _eps_text(value: Any) -> str:
    try:
        return format_eps(parse_eps(value))
    except (TypeError, ValueError, RobustftError):
        return str(value)


def _last_curve(run: Run) -> pd.DataFrame | None:
    """The last robust curve with sample sizes (eps ascending from 0; columns eps, value, n, point), or None."""
    df = run.metrics
    curve = df[(df["metric"] == "curve_accuracy") & (df["split"].isin(SPLIT_PREFERENCE))]
    if curve.empty:
        return None
    split = next(s for s in SPLIT_PREFERENCE if s in set(curve["split"]))
    curve = curve[curve["split"] == split]
    last = curve[curve["step"] == curve["step"].max()]
    last = last.assign(eps=pd.to_numeric(last["eps"]), value=pd.to_numeric(last["value"]))
    last = last.drop_duplicates("eps", keep="last").sort_values("eps")
    if len(last) < 2 or float(last["eps"].iloc[0]) != 0.0:
        return None
    sizes = pd.to_numeric(last["n"], errors="coerce") if "n" in last else None
    if sizes is None or sizes.isna().any():  # no sample size, no interval: no verdict from this curve
        return None
    points = [outcome_point(row) for row in last.itertuples(index=False)]
    return last.assign(n=sizes, point=points)[["eps", "value", "n", "point"]]


def _trapezoid(eps: np.ndarray, values: list[float]) -> float:
    """Paper B's E.adv: the trapezoid mean over [0, eps_max]. Written out: np.trapezoid needs numpy 2 and robustft
    supports numpy >= 1.24."""
    v = np.asarray(values, dtype=float)
    return float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(eps)) / eps[-1])


def _expected_robustness(run: Run) -> Estimate | None:
    """E.adv of the last evaluation with a robust curve, bounded by its curve points' Wilson intervals."""
    last = _last_curve(run)
    if last is None:
        return None
    eps = last["eps"].to_numpy(dtype=float)
    estimates = [evidence.accuracy(v, int(n)) for v, n in zip(last["value"], last["n"], strict=True)]
    return Estimate(_trapezoid(eps, [e.value for e in estimates]), _trapezoid(eps, [e.low for e in estimates]),
                    _trapezoid(eps, [e.high for e in estimates]),
                    f"Wilson bounds of the curve, n={int(last['n'].min())}")


def _final_clean_point(run: Run) -> list[Point] | None:
    clean, _ = clean_series(run)
    return None if clean.empty else [clean["point"].iloc[-1]]


def _curve_points(run: Run) -> list[Point] | None:
    last = _last_curve(run)
    return None if last is None else list(last["point"])


def _final_clean_size(run: Run) -> int | None:
    clean, _ = clean_series(run)
    return None if clean.empty else int(clean["n"].iloc[-1])


def _curve_size(run: Run) -> int | None:
    last = _last_curve(run)
    return None if last is None else int(last["n"].min())


@dataclass(frozen=True)
class _Quantity:
    """What a schedule finding compares: its name, each run's estimate (unpaired), the outcome points and the images
    behind it, and the statistic of a pair's joint accuracies (scheduled's points first, then fix's) giving
    scheduled - fix."""

    what: str
    value: Callable[[Run], Estimate | None]
    points: Callable[[Run], list[Point] | None]
    size: Callable[[Run], int | None]
    difference: Callable[[list[Point], list[Point]], Statistic]


def _clean_difference(a: list[Point], b: list[Point]) -> Statistic:
    return lambda acc: acc[:, 0, 0] - acc[:, 0, 1]


def _expected_difference(a: list[Point], b: list[Point]) -> Statistic:
    mine = expected_robustness_statistic(range(len(a)), [p[4] for p in a])
    theirs = expected_robustness_statistic(range(len(a), len(a) + len(b)), [p[4] for p in b])
    return lambda acc: mine(acc)[:, 0] - theirs(acc)[:, 0]


_CLEAN = _Quantity("clean accuracy", final_clean, _final_clean_point, _final_clean_size, _clean_difference)
_EXPECTED = _Quantity("expected robustness E.adv", _expected_robustness, _curve_points, _curve_size,
                      _expected_difference)


def _paired_difference(scheduled: list[Run], fix: list[Run], quantity: _Quantity, inference: Inference
                       ) -> tuple[Estimate, str, int, int, float | None]:
    """scheduled - fix from the paired runs' per-image outcomes: (difference, method, images, seeds, images needed).

    One seed: the final clean accuracies by Newcombe's paired interval (McNemar's sample size), E.adv by the paired
    bootstrap; several: the two-level bootstrap (seeds, then images).

    Raises:
        UnpairedError: the runs cannot be aligned image by image.
    """
    pairs, _ = seed_pairs(scheduled, fix)
    points = [[quantity.points(a), quantity.points(b)] for a, b in pairs]
    if not pairs or any(p is None for pair in points for p in pair):
        raise UnpairedError(f"{quantity.what} has no per-image outcomes on both sides")
    joint = align_runs([list(pair) for pair in pairs], points)
    if joint.seeds == 1 and quantity is _CLEAN and len(joint.per_seed[0].samples) == 1:
        verdicts = joint.per_seed[0].samples[0].correct[0]
        result = paired_difference(verdicts[0], verdicts[1])
        return result.estimate(), result.estimate().basis, joint.n, 1, result.images_to_resolve
    boot = bootstrap(joint, quantity.difference(points[0][0], points[0][1]), inference)
    return boot.estimate(), boot.basis, joint.n, joint.seeds, None


_PAPER_B_EVIDENCE = {"B.clean": "paper B, e.g. SWIN on FGVC-Aircraft at 4/255: 73.8% vs 7.7%",
                     "B.expected_robustness": "paper B: at 8/255 in 30 of 30 configurations"}


def _schedule_beats_fix(key: str, quantity: _Quantity, scheduled: list[Run], fix: list[Run], setting: str,
                        names: tuple[str, ...], idle: list[str], inference: Inference) -> Finding:
    what = quantity.what
    claim = f"Epsilon-Scheduling beats RFT-fix on {what} ({_PAPER_B_EVIDENCE[key]})."
    base = {"key": key, "paper": "B", "claim": claim, "setting": setting, "runs": names}
    note = f" {never_perturbed_text(idle)}" if idle else ""
    if not scheduled or not fix:
        return Finding(verdict=INCONCLUSIVE, why=f"no {'RFT-fix' if not fix else 'Epsilon-Scheduling'} run trained "
                                                 f"adversarially, so nothing to compare.{note}", **base)
    contrast = paired_contrast(scheduled, fix, quantity.value)
    s, f, diff = contrast.a, contrast.b, contrast.difference
    if contrast.left_out:
        note += f" Left out without a run of the same seed in the other schedule: {', '.join(contrast.left_out)}."
    if s is None or f is None or diff is None:
        return Finding(verdict=INCONCLUSIVE, why=f"{what} was not recorded for both schedules.{note}", **base)
    seeds, needed, fallback = max(contrast.pairs, 1), None, ""
    sizes = [size for r in (*scheduled, *fix) if (size := quantity.size(r)) is not None]
    n = min(sizes) if sizes else None
    method = f"unpaired: {diff.basis}"
    if inference.paired:
        try:
            diff, method, n, seeds, needed = _paired_difference(scheduled, fix, quantity, inference)
        except UnpairedError as reason:
            fallback = str(reason)
            method = f"{unpaired_text(fallback)}; {diff.basis}"
            if "outcomes recorded" not in fallback:
                note = f" ({unpaired_text(fallback)}){note}"
    numbers = {"scheduled": s.as_dict(), "fix": f.as_dict(), "difference": diff.as_dict(), "pairs": contrast.pairs}
    text = f"scheduled {interval_text(s)} vs fix {interval_text(f)} (difference {interval_text(diff, unit=' points')})"
    verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(evidence.sign(diff), INCONCLUSIVE)
    why = {HOLDS: f"{text}.", INCONCLUSIVE: f"{text}: the difference's interval includes 0.",
           DOES_NOT_HOLD: (f"{text}: RFT-fix is measurably better here. Paper B measured 224-px colour images of "
                           "100-257 classes at eps_g 4/255 and 8/255, over 30 backbone x task configurations; here "
                           f"{setting}, one configuration.")}[verdict]
    fields = evidence_fields(diff, f"{what}: scheduled - fix", interval_text(diff, unit=" points"), verdict, method,
                             n, seeds, needed)
    return Finding(verdict=verdict, why=why + note, numbers=numbers, **base, **fields)
