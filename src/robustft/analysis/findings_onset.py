"""Paper B's onset-delay claim (``B.onset_delay``): RFT-fix delays the onset of task adaptation relative to standard
fine-tuning.

The onset is ``diagnostics.onset_index``'s, the one definition robustft uses (the first evaluation after step 0
whose validation clean accuracy exceeds the threshold), with a range from the Wilson intervals (``onset_range``).
RFT-fix runs are paired with the reference runs on their seed (``findings_base.seed_pairs``). Per pair the ranges
decide: *delayed* when RFT-fix's earliest plausible onset comes after the reference's latest, *not delayed* when
RFT-fix's latest comes no later than the reference's earliest, else *open*; when neither run measurably adapts
within the run there is no onset to compare. Over several seeds the claim holds when every pair shows the delay and
does not hold when no pair does, otherwise it is inconclusive and says how many seeds show it: an onset is an epoch
at the evaluations' resolution and often "never", so a mean and t-interval over seeds would rest on censored
values.
"""

from __future__ import annotations

import math
from typing import Any

from robustft.analysis import evidence
from robustft.analysis.diagnostics import onset_index
from robustft.analysis.diagnostics import onset_threshold as configured_threshold
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    ONSET_PREFERENCE,
    Finding,
    clean_series,
    final_clean,
    get,
    never_perturbed,
    paired_contrast,
    pct,
    seed_pairs,
)
from robustft.runs import Run

CLAIM = "RFT-fix delays the onset of task adaptation relative to standard fine-tuning (suboptimal transfer, paper B)."
_DELAY, _NO_DELAY, _OPEN, _NEITHER, _START_ABOVE, _UNMEASURED = ("delay", "no delay", "open", "neither adapts",
                                                                 "above at step 0", "unmeasured")


def onset_range(run: Run, threshold: float) -> dict[str, Any]:
    """Onset of task adaptation (``diagnostics.onset_index``, paper B's: the first evaluation after step 0 whose
    validation clean accuracy exceeds ``threshold``) with its range from the Wilson intervals.

    ``epoch`` applies the rule to the values, ``earliest`` to the intervals' upper ends (the earliest onset the data
    allow) and ``latest`` to their lower ends (the first evaluation measurably above the threshold); ``inf`` when
    never. Evaluating several times per epoch on a few hundred images, one evaluation can cross the threshold by
    noise and fall back; the range says so (``earliest`` there, ``latest`` later). Step 0 is the pretrained model
    with its untrained head: its accuracy measures the head's class skew, not adaptation, so it is not an onset;
    ``start_above`` says whether it already lies measurably above the threshold (then crossing it does not mark
    adaptation).

    Args:
        run: the run (validation split preferred, else test, else train).
        threshold: accuracy in (0, 1), e.g. ``diagnostics.onset_threshold(config, summary)``.
    """
    clean, split = clean_series(run, ONSET_PREFERENCE)
    steps = [int(step) for step in clean["step"]]
    estimates = [evidence.accuracy(float(v), int(n)) for v, n in zip(clean["value"], clean["n"], strict=True)]
    epochs = [float(epoch) for epoch in clean["epoch"]]

    def onset(part: str) -> float:
        index = onset_index(steps, [getattr(a, part) > threshold for a in estimates])
        return math.inf if index is None else epochs[index]

    start_above = any(step == 0 and a.low > threshold for step, a in zip(steps, estimates, strict=True))
    return {"epoch": onset("value"), "earliest": onset("high"), "latest": onset("low"), "split": split,
            "start_above": start_above, "last_epoch": epochs[-1] if epochs else None}


def onset_threshold(run: Run, reference: Run | None = None) -> float:
    """``detect.onset_threshold`` of the run's config, else ``max(5%, 2 x chance)`` for its number of classes (the
    reference's when the run's summary does not record it)."""
    value = get(reference.summary, "detection.num_classes") or get(reference.summary, "num_classes") \
        if reference is not None else None
    return configured_threshold(run.config, run.summary, int(value) if value else None)


def never_perturbed_text(names: list[str]) -> str:
    return (f"{', '.join(names)} never perturbed (summary.json: perturbed_steps = 0): standard fine-tuning under a "
            "schedule's name, not a schedule result, so left out.")


def _finite(bounds: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v == math.inf else v) if isinstance(v, float) else v for k, v in bounds.items()}


def _epoch_text(bounds: dict[str, Any]) -> str:
    if bounds["last_epoch"] is None:
        return "no clean accuracy with a sample size recorded"

    def at(epoch: float) -> str:
        return f"{epoch:.2f}" if epoch != math.inf else f"not by epoch {bounds['last_epoch']:g}"

    if bounds["epoch"] == math.inf:
        return (f"never above the threshold in {bounds['last_epoch']:g} epochs (earliest plausible "
                f"{at(bounds['earliest'])})")
    return f"epoch {bounds['epoch']:.2f} (range {at(bounds['earliest'])} to {at(bounds['latest'])})"


def _state(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """One pair's outcome from the two onset ranges (see the module docstring)."""
    if mine["last_epoch"] is None or theirs["last_epoch"] is None:
        return _UNMEASURED
    if mine["start_above"] or theirs["start_above"]:
        return _START_ABOVE
    if mine["latest"] == math.inf and theirs["earliest"] == math.inf:
        return _NEITHER  # "never <= never" is no evidence that RFT-fix adapts as early
    if mine["earliest"] > theirs["latest"]:
        return _DELAY
    if mine["latest"] <= theirs["earliest"]:
        return _NO_DELAY
    return _OPEN


_REASONS = {
    _UNMEASURED: "without measured clean accuracy there is no onset.",
    _START_ABOVE: ("the pretrained model with its new head is already above the threshold at step 0, so crossing it "
                   "does not mark adaptation; set detect.onset_threshold higher."),
    _NEITHER: ("neither run measurably adapts within its epochs (RFT-fix never measurably above the threshold, "
               "standard fine-tuning never above it), so there is no onset to compare; train longer or set "
               "detect.onset_threshold lower."),
    _OPEN: "the two onset ranges overlap at this evaluation resolution.",
    _NO_DELAY: ("RFT-fix adapts as early as standard fine-tuning at this eps. Paper B's delays are on 100-200-class "
                "tasks at 224 px, where the threshold is far above chance; choose a larger eps_g for a 10-class "
                "grey-scale task."),
}


def onset_delay(fix: list[Run], reference: list[Run], setting: str) -> Finding:
    """``B.onset_delay`` over RFT-fix and standard reference runs paired on seed (runs that never perturbed are
    left out and named)."""
    idle = [run.name for run in fix if never_perturbed(run)]
    pairs, left_out = seed_pairs([run for run in fix if not never_perturbed(run)], reference)
    base = {"key": "B.onset_delay", "paper": "B", "claim": CLAIM, "setting": setting,
            "runs": tuple(run.name for pair in pairs for run in pair) or tuple(r.name for r in (*fix, *reference))}
    note = (f" {never_perturbed_text(idle)}" if idle else "") + (
        f" Left out without a run of the same seed on the other side: {', '.join(left_out)}." if left_out else "")
    if not pairs:
        return Finding(verdict=INCONCLUSIVE, why=f"no RFT-fix run to compare with the reference.{note}", **base)
    rows = []
    for run, ref in pairs:
        threshold = onset_threshold(run, ref)
        mine, theirs = onset_range(run, threshold), onset_range(ref, threshold)
        rows.append({"seed": get(run.config, "seed"), "fix_run": run.name, "reference_run": ref.name,
                     "threshold": threshold, "mine": mine, "theirs": theirs, "state": _state(mine, theirs)})
    sizes = [int(clean_series(run, ONSET_PREFERENCE)[0]["n"].min()) for pair in pairs for run in pair
             if not clean_series(run, ONSET_PREFERENCE)[0].empty]
    # the onset is a rule on the curve (an evaluation above a threshold), decided from Wilson ranges; no paired
    # interval applies to it
    base.update(method=f"onset ranges from Wilson intervals, {len(rows)} seed pair{'s' if len(rows) > 1 else ''}",
                n=min(sizes) if sizes else None)
    used_fix, used_ref = [run for run, _ in pairs], [ref for _, ref in pairs]
    clean = paired_contrast(used_ref, used_fix, final_clean)
    numbers: dict[str, Any] = {
        "threshold": float(rows[0]["threshold"]),
        "pairs": [{"seed": r["seed"], "fix_run": r["fix_run"], "reference_run": r["reference_run"],
                   "fix_onset_epoch": _finite(r["mine"]), "reference_onset_epoch": _finite(r["theirs"]),
                   "outcome": r["state"]} for r in rows],
        "fix_final_clean": clean.b.as_dict() if clean.b else None,
        "reference_final_clean": clean.a.as_dict() if clean.a else None,
        "clean_gap": clean.difference.as_dict() if clean.difference else None}
    if len(rows) == 1:
        numbers["fix_onset_epoch"], numbers["reference_onset_epoch"] = (numbers["pairs"][0]["fix_onset_epoch"],
                                                                          numbers["pairs"][0]["reference_onset_epoch"])
    finals = (f"final clean {pct(clean.b.value if clean.b else None)} vs "
              f"{pct(clean.a.value if clean.a else None)}")
    threshold_text = f"onset (first evaluation after step 0 with clean accuracy above {pct(numbers['threshold'])})"
    states = [r["state"] for r in rows]
    verdict = HOLDS if set(states) == {_DELAY} else DOES_NOT_HOLD if set(states) == {_NO_DELAY} else INCONCLUSIVE
    if len(rows) == 1:
        row = rows[0]
        text = (f"{threshold_text}: RFT-fix {_epoch_text(row['mine'])}, standard {_epoch_text(row['theirs'])}; "
                f"{finals}")
        why = f"{text}." if verdict == HOLDS else f"{text}: {_REASONS[row['state']]}"
        return Finding(verdict=verdict, why=why + note, numbers=numbers, **base)
    per_seed = "; ".join(f"seed {r['seed']}: RFT-fix {_epoch_text(r['mine'])}, standard {_epoch_text(r['theirs'])}"
                         for r in rows)
    shown, m = states.count(_DELAY), len(states)
    if verdict == HOLDS:
        summary = f"Every one of {m} seeds shows the delay."
    elif verdict == DOES_NOT_HOLD:
        summary = f"No seed of {m} shows a delay: {_REASONS[_NO_DELAY]}"
    elif len(set(states)) == 1:
        summary = f"In each of {m} seeds: {_REASONS[states[0]]}"
    else:
        counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
        summary = f"{shown} of {m} seeds show the delay ({counts}): the seeds disagree."
    return Finding(verdict=verdict, why=f"{threshold_text} per seed: {per_seed}; {finals}. {summary}{note}",
                   numbers=numbers, **base)
