"""Paper B's claims across eps_g, backbones and tasks (``robustft.analysis.findings`` matches the runs).

- ``B.delay_grows_with_eps`` (Figure 3): stronger eps_g delays task adaptation longer. The onset is
  ``findings_onset.onset_range``'s (the one definition), of RFT-fix runs at three eps_g values or more that agree on
  everything else. Per seed the onset ranges of the smallest and the largest eps_g decide: *grows* when the largest
  eps_g's earliest plausible onset comes after the smallest's latest, *does not grow* when it comes no later than
  the smallest's earliest, else *open*. With three seeds or more the verdict rests on Spearman's rho of (eps_g,
  onset epoch; "never" ranks after every epoch) pooled over seeds, with a bootstrap over seeds; with fewer, on the
  seeds' ranges as ``B.onset_delay`` (every seed must show it), rho reported without an interval.
- ``B.severity_by_model_and_data`` (Figure 1): suboptimal transfer's severity depends on the model and the dataset
  (in ``findings_claims_severity``).
  Per backbone x task: the clean-accuracy gap, standard fine-tuning minus RFT-fix (paired on seed), at a Bonferroni
  level over the contrasts; it holds when some cell shows suboptimal transfer and the gap differs measurably between
  two backbones on one task and between two tasks on one backbone; it does not hold when no cell shows any (every
  gap measurably below 0).
- ``B.eadv_when_adv_equal`` (Figure 5): Epsilon-Scheduling improves E.adv even where adversarial accuracy at eps_g
  is equal. Where the schedules' adversarial accuracy at eps_g is measurably apart, the premise fails and the claim
  is skipped; otherwise the E.adv difference (paired over images and seeds when outcomes exist,
  ``findings_paper_b``) decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Finding,
    clean_series,
    get,
    interval_text,
    never_perturbed,
    paired_contrast,
    seed_pairs,
    setting_text,
)
from robustft.analysis.findings_claims_base import in_unit, run_bootstrap, skip
from robustft.analysis.findings_onset import onset_range, onset_threshold
from robustft.analysis.findings_paired import Inference, UnpairedError, evidence_fields, percentile, unpaired_text
from robustft.analysis.findings_paper_b import (
    _EXPECTED,
    _clean_difference,
    _eps_text,
    _last_curve,
    _paired_difference,
    _Quantity,
)
from robustft.config.units import parse_eps
from robustft.errors import RobustftError
from robustft.runs import Run

CLAIM_DELAY = ("Stronger perturbations (larger eps_g) cause longer delays of task adaptation under RFT-fix "
               "(paper B, Figure 3: eps_g from 1/255 to 9/255).")
CLAIM_SEVERITY = ("The severity of suboptimal transfer (clean accuracy lost by RFT-fix against standard fine-tuning) "
                  "is model- and dataset-dependent (paper B, Figure 1).")
CLAIM_EADV = ("Epsilon-Scheduling improves expected robustness E.adv even where adversarial accuracy at eps_g is "
              "equal (paper B, Figure 5).")
MIN_EPS = 3
BOOTSTRAP_SEEDS = 3  # fewer seeds give a bootstrap over seeds too few distinct draws to be an interval
_GROWS, _FLAT, _OPEN = "grows", "does not grow", "open"

Refs = Callable[[Run], list[Run]]


def _eps(run: Run) -> float | None:
    try:
        return float(parse_eps(get(run.config, "eps.value")))
    except (TypeError, ValueError, RobustftError):
        return None


def _fix_runs(runs: Sequence[Run]) -> list[Run]:
    return [run for run in runs if get(run.config, "objective.name", "standard") != "standard"
            and get(run.config, "eps.schedule") == "constant" and not never_perturbed(run)]


# ----------------------------------------------------------------------------------------------------------------
# B.delay_grows_with_eps


def _seed_state(onsets: dict[float, dict[str, Any]]) -> str:
    """One seed's outcome from the onset ranges of its smallest and largest eps_g (module docstring)."""
    low, high = onsets[min(onsets)], onsets[max(onsets)]
    if any(o["start_above"] or o["last_epoch"] is None for o in onsets.values()):
        return _OPEN
    if low["latest"] == math.inf and high["earliest"] == math.inf:
        return _OPEN  # neither adapts: "never after never" shows nothing
    if high["earliest"] > low["latest"]:
        return _GROWS
    if high["latest"] <= low["earliest"]:
        return _FLAT
    return _OPEN


def _ranked(onset: dict[str, Any]) -> float:
    """The onset epoch for a rank statistic: "never" after every epoch of the run."""
    return onset["epoch"] if onset["epoch"] != math.inf else float(onset["last_epoch"] or 0) + 1.0


def _rho(points: list[tuple[float, float]]) -> float:
    x, y = zip(*points, strict=True)
    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(scipy_stats.spearmanr(x, y)[0])


def delay_grows_with_eps(runs: Sequence[Run], family: Callable[[Run], str], references: Refs,
                         inference: Inference) -> list[Finding]:
    """``B.delay_grows_with_eps`` once per family of RFT-fix runs with >= 3 eps_g values and references (each
    backbone x task of a grid is its own test of Figure 3), or its one skip line. ``family(run)``: the run's config
    without eps_g, seed and bookkeeping."""
    fixes = _fix_runs(runs)
    families: dict[str, dict[float, list[Run]]] = {}
    for run in fixes:
        eps = _eps(run)
        if eps is not None and references(run):
            families.setdefault(family(run), {}).setdefault(eps, []).append(run)
    usable = [f for f in families.values() if len(f) >= MIN_EPS]
    if not usable:
        have = ", ".join(sorted({_eps_text(get(r.config, "eps.value")) for r in fixes if references(r)})) or "none"
        where = setting_text(fixes[0].config) if fixes else "the paper B study"
        return [skip("B.delay_grows_with_eps", CLAIM_DELAY, [
            f"RFT-fix (eps.schedule=constant) runs at {MIN_EPS} eps_g values or more (e.g. 1/255, 2/255, 4/255, "
            f"8/255), each with its standard reference, on {where}"],
            f"RFT-fix with a reference at eps_g {have}", where, fixes)]
    return [_delay_in_family(by_eps, references, inference) for by_eps in usable]


def _delay_in_family(by_eps: dict[float, list[Run]], references: Refs, inference: Inference) -> Finding:
    """``B.delay_grows_with_eps`` on one family's RFT-fix runs keyed by eps_g (>= 3 values)."""
    onsets: dict[str, dict[float, dict[str, Any]]] = {}
    reference_onsets: dict[str, dict[str, Any]] = {}
    for eps, group in sorted(by_eps.items()):
        refs = list({r.name: r for run in group for r in references(run)}.values())
        for run, ref in seed_pairs(group, refs)[0]:
            threshold = onset_threshold(run, ref)
            seed = str(get(run.config, "seed"))
            onsets.setdefault(seed, {})[eps] = onset_range(run, threshold)
            reference_onsets[seed] = onset_range(ref, threshold)
    onsets = {seed: per for seed, per in onsets.items() if len(per) >= MIN_EPS}
    used = [run for group in by_eps.values() for run in group]
    setting = setting_text(used[0].config) + ", eps_g = " + ", ".join(_eps_text(e) for e in sorted(by_eps))
    if not onsets:
        return skip("B.delay_grows_with_eps", CLAIM_DELAY, [f"one seed run at {MIN_EPS} eps_g values or more with "
                    "its reference"], "no seed at three eps_g", setting, used)
    seeds = sorted(onsets)
    states = {seed: _seed_state(onsets[seed]) for seed in seeds}
    points = {seed: [(eps, _ranked(o)) for eps, o in sorted(onsets[seed].items())] for seed in seeds}
    rho = _rho([p for seed in seeds for p in points[seed]])
    numbers: dict[str, Any] = {
        "onsets": {seed: {_eps_text(eps): _finite(o) for eps, o in sorted(onsets[seed].items())} for seed in seeds},
        "reference_onsets": {seed: _finite(reference_onsets[seed]) for seed in seeds},
        "per_seed": states, "spearman_rho": rho, "eps_g": sorted(by_eps)}
    per_seed = "; ".join(f"seed {seed}: " + ", ".join(f"{_eps_text(eps)} {_at(o)}" for eps, o in
                                                      sorted(onsets[seed].items())) for seed in seeds)
    rho_text = f"Spearman rho {rho:.2f}" if rho == rho else "Spearman rho undefined (equal onsets at every eps_g)"
    lead = f"onset epoch of RFT-fix per eps_g ({per_seed}); {rho_text}"
    n = min((int(clean_series(run)[0]["n"].min()) for run in used if not clean_series(run)[0].empty), default=None)
    if len(seeds) >= BOOTSTRAP_SEEDS and math.isfinite(rho):  # rho undefined: one onset everywhere, ranges decide
        draws = run_bootstrap(len(seeds), lambda d: _rho([p for i in d for p in points[seeds[i]]]),
                              inference.n_boot, inference.seed)
        (estimate,) = percentile(np.array([rho]), draws[:, None], basis=f"bootstrap over {len(seeds)} seeds")
        verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(evidence.sign(estimate), INCONCLUSIVE)
        numbers["spearman_rho"] = estimate.as_dict()
        text = f"{rho:+.2f} [{estimate.low:+.2f}, {estimate.high:+.2f}]"
        why = {HOLDS: f"{lead}: later onsets at larger eps_g.", INCONCLUSIVE: f"{lead}: the interval includes 0.",
               DOES_NOT_HOLD: f"{lead}: onsets come measurably earlier at larger eps_g."}[verdict]
        fields = in_unit(evidence_fields(estimate, "Spearman rho of eps_g and onset epoch", text, verdict,
                                         f"onsets from Wilson ranges; rho's interval a bootstrap over {len(seeds)} "
                                         f"seeds, {inference.n_boot} draws", n, len(seeds)), "seeds")
        return Finding(key="B.delay_grows_with_eps", paper="B", claim=CLAIM_DELAY, verdict=verdict, why=why,
                       numbers=numbers, setting=setting, runs=tuple(r.name for r in used), **fields)
    values = set(states.values())
    verdict = HOLDS if values == {_GROWS} else DOES_NOT_HOLD if values == {_FLAT} else INCONCLUSIVE
    summary = {HOLDS: f"in every seed ({len(seeds)}) the largest eps_g's onset range lies after the smallest's.",
               DOES_NOT_HOLD: f"in every seed ({len(seeds)}) the largest eps_g adapts no later than the smallest.",
               INCONCLUSIVE: "the onset ranges of the smallest and largest eps_g overlap or the seeds disagree ("
                             + ", ".join(f"seed {s}: {states[s]}" for s in seeds) + ")."}[verdict]
    return Finding(key="B.delay_grows_with_eps", paper="B", claim=CLAIM_DELAY, verdict=verdict,
                   why=f"{lead}; {summary} Fewer than {BOOTSTRAP_SEEDS} seeds: rho has no interval, the onset "
                       "ranges decide.", numbers=numbers, setting=setting, runs=tuple(r.name for r in used),
                   method=f"onset ranges from Wilson intervals, {len(seeds)} seed{'s' if len(seeds) > 1 else ''}",
                   n=n)


def _at(onset: dict[str, Any]) -> str:
    return "never" if onset["epoch"] == math.inf else f"{onset['epoch']:.2f}"


def _finite(onset: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v == math.inf else v) if isinstance(v, float) else v for k, v in onset.items()}


# ----------------------------------------------------------------------------------------------------------------
# B.eadv_when_adv_equal


def _adversarial_row(run: Run) -> pd.Series | None:
    """The last robust curve's point at the run's eps_g (adversarial accuracy at eps_g), or None."""
    curve, eps = _last_curve(run), _eps(run)
    if curve is None or eps is None:
        return None
    match = curve[np.isclose(curve["eps"].to_numpy(float), eps)]
    return None if match.empty else match.iloc[-1]


def _adversarial(run: Run) -> Estimate | None:
    row = _adversarial_row(run)
    return None if row is None else evidence.accuracy(float(row["value"]), int(row["n"]))


def _adversarial_points(run: Run) -> list | None:
    row = _adversarial_row(run)
    return None if row is None else [row["point"]]


def _adversarial_size(run: Run) -> int | None:
    row = _adversarial_row(run)
    return None if row is None else int(row["n"])


_ADVERSARIAL = _Quantity("adversarial accuracy at eps_g", _adversarial, _adversarial_points, _adversarial_size,
                         _clean_difference)


def _difference(scheduled: list[Run], fix: list[Run], quantity: _Quantity, inference: Inference
                ) -> tuple[Estimate, str, int | None, int] | None:
    """scheduled - fix on ``quantity``: paired over images (and seeds) when the outcomes allow, else unpaired."""
    contrast = paired_contrast(scheduled, fix, quantity.value)
    if contrast.difference is None:
        return None
    sizes = [size for r in (*scheduled, *fix) if (size := quantity.size(r)) is not None]
    diff, method, n, seeds = contrast.difference, f"unpaired: {contrast.difference.basis}", \
        min(sizes) if sizes else None, max(contrast.pairs, 1)
    if inference.paired:
        try:
            diff, method, n, seeds, _ = _paired_difference(scheduled, fix, quantity, inference)
        except UnpairedError as reason:
            method = f"{unpaired_text(str(reason))}; {diff.basis}"
    return diff, method, n, seeds


def eadv_when_adv_equal(fix: list[Run], scheduled: list[Run], inference: Inference) -> Finding:
    """``B.eadv_when_adv_equal`` for one paper B study (RFT-fix and Epsilon-Scheduling runs at one eps_g)."""
    eps_text = _eps_text(get(fix[0].config, "eps.value"))
    setting = setting_text(fix[0].config) + f", eps_g = {eps_text}"
    fix_used = [r for r in fix if not never_perturbed(r)]
    scheduled_used = [r for r in scheduled if not never_perturbed(r)]
    names = tuple(r.name for r in (*fix_used, *scheduled_used))
    adversarial = _difference(scheduled_used, fix_used, _ADVERSARIAL, inference) \
        if fix_used and scheduled_used else None
    expected = _difference(scheduled_used, fix_used, _EXPECTED, inference) if adversarial else None
    if adversarial is None or expected is None:
        return skip("B.eadv_when_adv_equal", CLAIM_EADV, [
            f"RFT-fix and Epsilon-Scheduling runs that perturbed, with a robust curve from 0 to eps_g = {eps_text} "
            "(eval.curve) on the same images"], "no adversarial accuracy at eps_g or E.adv for both schedules",
            setting, [*fix, *scheduled])
    adv, adv_method, _, _ = adversarial
    numbers: dict[str, Any] = {"adversarial_difference": adv.as_dict(), "adversarial_method": adv_method}
    adv_text = interval_text(adv, unit=" points")
    if evidence.sign(adv) != evidence.UNRESOLVED:
        return skip("B.eadv_when_adv_equal", CLAIM_EADV, [
            f"a setting (backbone, task or eps_g other than {eps_text}) where the schedules' adversarial accuracy "
            "at eps_g is not measurably apart"], f"adversarial accuracy at eps_g measurably apart here (on the robust "
            f"curve, whose E.adv the claim compares; the summary table's column is the worse of it and the final "
            f"attack per image): scheduled - fix {adv_text} ({adv_method})", setting, [*fix_used, *scheduled_used],
            numbers)
    diff, method, n, seeds = expected
    numbers["expected_robustness_difference"] = diff.as_dict()
    text = interval_text(diff, unit=" points")
    verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(evidence.sign(diff), INCONCLUSIVE)
    lead = (f"adversarial accuracy at eps_g is not measurably apart (scheduled - fix {adv_text}); E.adv scheduled - "
            f"fix {text}")
    why = {HOLDS: f"{lead}.", INCONCLUSIVE: f"{lead}: the interval includes 0.",
           DOES_NOT_HOLD: f"{lead}: RFT-fix's E.adv is measurably higher here."}[verdict]
    fields = evidence_fields(diff, "E.adv: scheduled - fix where adversarial accuracy is equal", text, verdict,
                             f"{method}; the premise from adversarial accuracy at eps_g, {adv_method.split('; ')[-1]}",
                             n, seeds)
    return Finding(key="B.eadv_when_adv_equal", paper="B", claim=CLAIM_EADV, verdict=verdict, why=why,
                   numbers=numbers, setting=setting, runs=names, **fields)
