"""Paper A's claims tested on a study of fine-tuning strategies (``robustft.analysis.findings`` matches the runs).

- ``A.robust_peak``: in standard (full) fine-tuning robust accuracy rises, peaks, then degrades while clean
  accuracy still rises (``findings_peak``);
- ``A.largest_area``: on a simple task BitFit has the largest Pareto area;
- ``A.bitfit_above_average``: on a simple task BitFit's area is above the strategies' average (paper A's abstract);
- ``A.linear_above_average``: the same for linear probing, a line of its own (paper A's poster groups it with BitFit
  as a peripheral update; the abstract credits BitFit alone, so it is never a condition of BitFit's verdict);
- ``A.ood_tracks_clean``: OOD accuracy correlates positively with clean accuracy over training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    PERIPHERAL,
    Finding,
    clean_series,
    combine,
    interval_text,
    pct,
    series,
    setting_text,
    smallest_robust_eps,
)
from robustft.analysis.findings_paired import (
    DEFAULT_INFERENCE,
    Inference,
    UnpairedError,
    evidence_fields,
    unpaired_text,
)
from robustft.analysis.findings_paper_a_paired import PairedAreas, area_points, paired_areas, paired_correlation
from robustft.analysis.findings_peak import robust_peak
from robustft.analysis.pareto import pareto_area
from robustft.runs import Run, records


def paper_a_findings(arms: dict[str, list[Run]], inference: Inference = DEFAULT_INFERENCE) -> list[Finding]:
    """Paper A's findings for one study: ``arms`` maps a strategy name to its runs (one per seed)."""
    runs = [run for group in arms.values() for run in group]
    setting = setting_text(runs[0].config)
    eps = smallest_robust_eps(runs)
    out = []
    if "full" in arms and eps is not None:
        out.append(robust_peak(arms["full"], eps, setting, inference))
    if eps is not None:
        areas = {name: _area(group, eps) for name, group in arms.items()}
        areas = {name: a for name, a in areas.items() if a is not None}
        if len(areas) >= 2:
            names = tuple(r.name for r in runs)
            measured = _area_evidence(areas, {name: arms[name] for name in areas}, eps, inference)
            if "bitfit" in areas:
                out.append(_largest_area(measured, setting, names))
            for name in (p for p in PERIPHERAL if p in areas and len(areas) >= 3):
                out.append(_above_average(name, measured, arms, eps, setting, names))
    ood = _ood_tracks_clean(arms, setting, inference)
    if ood is not None:
        out.append(ood)
    return out


def _in_points(estimate: Estimate) -> str:
    """A difference of accuracies in percentage points with its interval: ``2.0 [-6.0, 10.7]``."""
    return interval_text(estimate, unit="")


def _points(run: Run, eps: float) -> pd.DataFrame:
    """(clean, n_clean, robust, n_robust) per evaluation step on the run's preferred split."""
    return area_points(run, eps)


def _run_area(run: Run, eps: float) -> Estimate | None:
    points = _points(run, eps)
    if points.empty:
        return None
    bounds = {"value": [], "low": [], "high": []}
    for _, row in points.iterrows():
        c = evidence.accuracy(row["clean"], int(row["n_clean"]))
        r = evidence.accuracy(row["robust"], int(row["n_robust"]))
        for part, (cv, rv) in (("value", (c.value, r.value)), ("low", (c.low, r.low)), ("high", (c.high, r.high))):
            bounds[part].append((cv, rv))
    area = {part: pareto_area([p[0] for p in pts], [p[1] for p in pts]) for part, pts in bounds.items()}
    return Estimate(area["value"], area["low"], area["high"], f"Wilson bounds, n={int(points['n_robust'].min())}")


def _area(group: Sequence[Run], eps: float) -> Estimate | None:
    return combine([_run_area(run, eps) for run in group])


def _area_text(name: str, area: Estimate) -> str:
    return f"{name} {area.value:.3f} [{area.low:.3f}, {area.high:.3f}]"


def _signed_area_text(estimate: Estimate) -> str:
    return f"{estimate.value:+.3f} [{estimate.low:+.3f}, {estimate.high:+.3f}]"


@dataclass(frozen=True)
class _AreaEvidence:
    """The strategies' areas as the area findings read them: paired (``paired`` set) or unpaired, and how."""

    areas: dict[str, Estimate]
    paired: PairedAreas | None
    method: str
    n: int | None
    seeds: int
    fallback: str


def _area_evidence(areas: dict[str, Estimate], arms: dict[str, list[Run]], eps: float, inference: Inference
                   ) -> _AreaEvidence:
    """Paired areas when the runs allow it (and ``inference`` asks), else the unpaired ``areas`` and the reason."""
    fallback = ""
    if inference.paired:
        try:
            paired = paired_areas(arms, eps, inference)
            left = f"; left out without a run of the same seed in every strategy: {', '.join(paired.left_out)}" \
                if paired.left_out else ""
            return _AreaEvidence(paired.areas, paired, paired.method + left, paired.n, paired.seeds, "")
        except UnpairedError as reason:
            fallback = str(reason)
    sizes = [int(p["n_robust"].min()) for group in arms.values() for run in group
             if not (p := _points(run, eps)).empty]
    seeds = max(len(group) for group in arms.values())
    basis = next(iter(areas.values())).basis if seeds == 1 else f"{seeds} seeds"
    method = f"{unpaired_text(fallback)}; {basis}" if fallback else f"unpaired: {basis}"
    return _AreaEvidence(areas, None, method, min(sizes) if sizes else None, seeds, fallback)


def _fallback_note(measured: _AreaEvidence) -> str:
    """Said in the sentence when the runs have outcomes but could not be paired (the method says it always)."""
    return f" ({unpaired_text(measured.fallback)})" if measured.fallback and "outcomes recorded" not in \
        measured.fallback else ""


def _largest_area(measured: _AreaEvidence, setting: str, names: tuple[str, ...]) -> Finding:
    claim = ("On a simple task the peripheral BitFit has the largest Pareto area of the strategies (paper A, "
             "CIFAR-10: BitFit 0.21, +81.5% above the average area).")
    areas = measured.areas
    ranked = sorted(areas, key=lambda name: areas[name].value, reverse=True)
    bitfit = areas["bitfit"]
    others = {name: a for name, a in areas.items() if name != "bitfit"}
    best_other = max(others, key=lambda name: others[name].value)
    numbers = {"areas": {name: areas[name].as_dict() for name in ranked}, "leader": ranked[0],
               "runner_up": ranked[1]}
    if measured.paired is not None:
        behind = measured.paired.bitfit_minus_best_other
        sign = evidence.sign(behind)
        verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(sign, INCONCLUSIVE)
        ahead = [best_other] if verdict == DOES_NOT_HOLD else []
    else:
        # UnpairedError: the areas' intervals must be apart (every area at its Wilson bounds at once).
        behind = evidence.difference(bitfit, others[best_other])
        ahead = [name for name, a in others.items() if a.low > bitfit.high]
        verdict = HOLDS if all(bitfit.low > a.high for a in others.values()) else \
            DOES_NOT_HOLD if ahead else INCONCLUSIVE
    numbers["bitfit_minus_best_other"] = behind.as_dict()
    gap = f"BitFit minus the best other ({best_other}) {_signed_area_text(behind)}"
    if verdict == HOLDS:
        why = (f"BitFit's area ({_area_text('bitfit', bitfit)}) is measurably above every other strategy's ({gap}); "
               f"next is {_area_text(ranked[1], areas[ranked[1]])}.")
    elif verdict == DOES_NOT_HOLD:
        best = max(ahead, key=lambda name: areas[name].value)
        why = (f"{_area_text(best, areas[best])} is measurably larger than {_area_text('bitfit', bitfit)} ({gap}); "
               f"the largest is {ranked[0]}. Paper A measured ViT-B/16 (ImageNet-21k) at 224 px; here {setting}.")
    elif ranked[0] == "bitfit":
        why = (f"BitFit has the largest area ({_area_text('bitfit', bitfit)}), but not measurably: {gap}, against "
               f"{_area_text(ranked[1], areas[ranked[1]])}.")
    else:
        why = (f"the largest is {_area_text(ranked[0], areas[ranked[0]])}; BitFit's ({_area_text('bitfit', bitfit)}) "
               f"is not measurably smaller or larger ({gap}).")
    method = measured.method + ("; the best other picked from the data (max-|t| bands over every other strategy)"
                                if measured.paired is not None else "; holds only when the areas' intervals are apart")
    fields = evidence_fields(behind, "BitFit minus the best other area", _signed_area_text(behind), verdict,
                             method, measured.n, measured.seeds)
    return Finding(key="A.largest_area", paper="A", claim=claim, verdict=verdict, why=why + _fallback_note(measured),
                   numbers=numbers, setting=setting, runs=names, **fields)


_ABOVE_AVERAGE_CLAIMS = {
    "bitfit": ("On a simple task BitFit's Pareto area is above the strategies' average (paper A's abstract, CIFAR-10: "
               "BitFit +81.5%)."),
    "linear": ("On a simple task linear probing's Pareto area is above the strategies' average (paper A's poster "
               "groups it with BitFit as a peripheral update; the abstract credits BitFit alone)."),
}


def _unpaired_above(name: str, areas: dict[str, Estimate]) -> Estimate | None:
    k = len(areas)
    mean = sum(a.value for a in areas.values()) / k
    # area_s - mean = area_s (1 - 1/k) - sum_{j != s} area_j / k: monotone in each area, so its interval is the
    # areas' bounds put in the right places.
    mine, rest = areas[name], [a for other, a in areas.items() if other != name]
    value = mine.value * (1 - 1 / k) - sum(a.value for a in rest) / k
    low = mine.low * (1 - 1 / k) - sum(a.high for a in rest) / k
    high = mine.high * (1 - 1 / k) - sum(a.low for a in rest) / k
    return Estimate(value / mean, low / mean, high / mean, mine.basis) if mean > 0 else None


def _above_average(name: str, measured: _AreaEvidence, arms: dict[str, list[Run]], eps: float, setting: str,
                   names: tuple[str, ...]) -> Finding:
    """``A.<name>_above_average``: the strategy's (area - mean area) / mean area, with its interval."""
    areas = measured.areas
    mean = sum(a.value for a in areas.values()) / len(areas)
    above = measured.paired.above_average[name] if measured.paired is not None else _unpaired_above(name, areas)
    numbers = {"mean_area": mean, "percent_above_average": above.as_dict() if above else None}
    base = {"key": f"A.{name}_above_average", "paper": "A", "claim": _ABOVE_AVERAGE_CLAIMS[name],
            "setting": setting, "runs": names, "numbers": numbers}
    if above is None:
        return Finding(verdict=INCONCLUSIVE, why="every strategy's Pareto area is zero.", method=measured.method,
                       n=measured.n, **base)
    text = f"{name} {100 * above.value:+.0f}% [{100 * above.low:+.0f}, {100 * above.high:+.0f}] against the average"
    sign = evidence.sign(above)
    verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(sign, INCONCLUSIVE)
    fields = evidence_fields(above, f"{name}'s area above the average", f"{100 * above.value:+.0f}% "
                             f"[{100 * above.low:+.0f}, {100 * above.high:+.0f}]", verdict, measured.method,
                             measured.n, measured.seeds)
    note = _fallback_note(measured)
    if verdict == HOLDS:
        return Finding(verdict=HOLDS, why=f"{text}.{note}", **base, **fields)
    if verdict == DOES_NOT_HOLD:
        robust_best = {n: _best_robust(arms[n], eps) for n in arms}
        others = [v for n, v in robust_best.items() if n != name and v is not None]
        return Finding(verdict=DOES_NOT_HOLD, why=(
            f"measurably below the average area ({text}): best robust accuracy {name} {pct(robust_best[name])}, "
            f"against {pct(max(others) if others else None)} for the most robust other strategy. Paper A fine-tuned "
            f"ViT-B/16 (ImageNet-21k) on colour CIFAR at 224 px; here {setting}.{note}"), **base, **fields)
    return Finding(verdict=INCONCLUSIVE, why=f"{text}; the interval includes 0.{note}", **base, **fields)


def _best_robust(group: Sequence[Run], eps: float) -> float | None:
    values = [float(_points(run, eps)["robust"].max()) for run in group if not _points(run, eps).empty]
    return max(values) if values else None


def _ood_pairs(runs: Sequence[Run]) -> pd.DataFrame:
    """Each OOD split's clean accuracy beside the run's clean accuracy at the same step (as ``analysis.ood_pairs``,
    on the findings' own split preference): columns split, value_clean, value_ood, n_ood."""
    frames = []
    for run in runs:
        clean, _ = clean_series(run)
        ood_mask = records.is_clean(run.metrics) & ~records.is_final(run.metrics) & records.is_ood(run.metrics)
        for split in sorted(set(run.metrics.loc[ood_mask, "split"])):
            ood = series(run, ood_mask, split)
            merged = clean.merge(ood, on="step", suffixes=("_clean", "_ood"))
            frames.append(merged[["value_clean", "value_ood", "n_ood"]].assign(split=split))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "value_clean",
                                                                                     "value_ood", "n_ood"])


def _ood_tracks_clean(arms: dict[str, list[Run]], setting: str, inference: Inference) -> Finding | None:
    runs = [run for group in arms.values() for run in group]
    pairs = _ood_pairs(runs)
    if pairs.empty:
        return None
    claim = "OOD accuracy tracks clean accuracy: a strong positive correlation over training, no trade-off (paper A)."
    per_split: dict[str, Estimate | None] = {}
    for split, part in pairs.groupby("split"):
        r = evidence.correlation(part["value_clean"].astype(float).tolist(), part["value_ood"].astype(float).tolist())
        per_split[str(split).removeprefix("ood:")] = r
    fallback, n, seeds = "", int(pd.to_numeric(pairs["n_ood"]).min()), 1
    method = f"unpaired: Fisher z over {len(pairs)} points, as if independent"
    if inference.paired:
        try:
            paired = paired_correlation(arms, sorted(set(pairs["split"])), inference)
            per_split, method, n, seeds = paired.pearson_r, paired.method, paired.n, paired.seeds
        except UnpairedError as reason:
            fallback = str(reason)
            method = f"{unpaired_text(fallback)}; Fisher z over {len(pairs)} points, as if independent"
    numbers = {"pearson_r": {s: r.as_dict() if r else None for s, r in per_split.items()}}
    base = {"key": "A.ood_tracks_clean", "paper": "A", "claim": claim, "setting": setting,
            "runs": tuple(run.name for run in runs), "numbers": numbers}
    text = ", ".join(f"{s} r = {r.value:.2f} [{r.low:.2f}, {r.high:.2f}]" if r else f"{s} r undefined"
                     for s, r in per_split.items())
    signs = [evidence.sign(r) if r else evidence.UNRESOLVED for r in per_split.values()]
    note = f" ({unpaired_text(fallback)})" if fallback and "outcomes recorded" not in fallback else ""
    if all(s == evidence.GREATER for s in signs):
        verdict, why = HOLDS, f"over every evaluation of every strategy: {text}."
    elif any(s == evidence.LESS for s in signs):
        verdict, why = DOES_NOT_HOLD, f"OOD accuracy falls as clean accuracy rises on some split: {text}."
    else:
        verdict, why = INCONCLUSIVE, f"{text}: an interval includes 0."
    # the split the verdict rests on: the first against it or unresolved, else the least certain
    decisive = [(s, r) for (s, r), sign in zip(per_split.items(), signs, strict=True) if sign != evidence.GREATER]
    split, r = decisive[0] if decisive else min(per_split.items(), key=lambda item: item[1].low)
    fields = evidence_fields(r, f"Pearson r on {split}", f"{r.value:.2f} [{r.low:.2f}, {r.high:.2f}]" if r else "",
                             verdict, method, n, seeds)
    return Finding(verdict=verdict, why=why + note, **base, **fields)
