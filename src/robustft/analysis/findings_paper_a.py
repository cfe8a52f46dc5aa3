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

import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    PERIPHERAL,
    Finding,
    StudyRun,
    clean_series,
    combine,
    interval_text,
    pct,
    robust_series,
    series,
    setting_text,
    smallest_robust_eps,
)
from robustft.analysis.findings_peak import robust_peak
from robustft.analysis.pareto import pareto_area
from robustft.runs import records


def paper_a_findings(arms: dict[str, list[StudyRun]]) -> list[Finding]:
    """Paper A's findings for one study: ``arms`` maps a strategy name to its runs (one per seed)."""
    runs = [run for group in arms.values() for run in group]
    setting = setting_text(runs[0].config)
    eps = smallest_robust_eps(runs)
    out = []
    if "full" in arms and eps is not None:
        out.append(robust_peak(arms["full"], eps, setting))
    if eps is not None:
        areas = {name: _area(group, eps) for name, group in arms.items()}
        areas = {name: a for name, a in areas.items() if a is not None}
        if len(areas) >= 2:
            names = tuple(r.name for r in runs)
            if "bitfit" in areas:
                out.append(_largest_area(areas, setting, names))
            for name in (p for p in PERIPHERAL if p in areas and len(areas) >= 3):
                out.append(_above_average(name, areas, arms, eps, setting, names))
    ood = _ood_tracks_clean(runs, setting)
    if ood is not None:
        out.append(ood)
    return out


def _in_points(estimate: Estimate) -> str:
    """A difference of accuracies in percentage points with its interval: ``2.0 [-6.0, 10.7]``."""
    return interval_text(estimate, unit="")


def _points(run: StudyRun, eps: float) -> pd.DataFrame:
    """(clean, clean_n, robust, robust_n) per evaluation step on the run's preferred split."""
    clean, split = clean_series(run)
    robust = robust_series(run, eps, split or "test")
    merged = clean.merge(robust, on="step", suffixes=("_clean", "_robust"))
    return merged.rename(columns={"value_clean": "clean", "value_robust": "robust"})


def _run_area(run: StudyRun, eps: float) -> Estimate | None:
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


def _area(group: Sequence[StudyRun], eps: float) -> Estimate | None:
    return combine([_run_area(run, eps) for run in group])


def _area_text(name: str, area: Estimate) -> str:
    return f"{name} {area.value:.3f} [{area.low:.3f}, {area.high:.3f}]"


def _largest_area(areas: dict[str, Estimate], setting: str, names: tuple[str, ...]) -> Finding:
    claim = ("On a simple task the peripheral BitFit has the largest Pareto area of the strategies (paper A, "
             "CIFAR-10: BitFit 0.21, +81.5% above the average area).")
    ranked = sorted(areas, key=lambda name: areas[name].value, reverse=True)
    bitfit = areas["bitfit"]
    others = {name: a for name, a in areas.items() if name != "bitfit"}
    numbers = {"areas": {name: areas[name].as_dict() for name in ranked}, "leader": ranked[0],
               "runner_up": ranked[1]}
    base = {"key": "A.largest_area", "paper": "A", "claim": claim, "setting": setting, "runs": names,
            "numbers": numbers}
    ahead = [name for name, a in others.items() if a.low > bitfit.high]
    if all(bitfit.low > a.high for a in others.values()):
        return Finding(verdict=HOLDS, why=(f"BitFit's area ({_area_text('bitfit', bitfit)}) lies above every other "
                                           f"strategy's interval; next is {_area_text(ranked[1], areas[ranked[1]])}."),
                       **base)
    if ahead:
        best = max(ahead, key=lambda name: areas[name].value)
        return Finding(verdict=DOES_NOT_HOLD, why=(
            f"{_area_text(best, areas[best])} is measurably larger than {_area_text('bitfit', bitfit)}; "
            f"the largest is {ranked[0]}. Paper A measured ViT-B/16 (ImageNet-21k) at 224 px; here {setting}."),
            **base)
    top = _area_text(ranked[0], areas[ranked[0]])
    if ranked[0] == "bitfit":
        runner_up = _area_text(ranked[1], areas[ranked[1]])
        why = f"BitFit has the largest area ({top}), but its interval overlaps {runner_up}."
    else:
        why = (f"the largest is {top}; BitFit's ({_area_text('bitfit', bitfit)}) overlaps it, so neither is measurably "
               "larger.")
    return Finding(verdict=INCONCLUSIVE, why=why, **base)


_ABOVE_AVERAGE_CLAIMS = {
    "bitfit": ("On a simple task BitFit's Pareto area is above the strategies' average (paper A's abstract, CIFAR-10: "
               "BitFit +81.5%)."),
    "linear": ("On a simple task linear probing's Pareto area is above the strategies' average (paper A's poster "
               "groups it with BitFit as a peripheral update; the abstract credits BitFit alone)."),
}


def _above_average(name: str, areas: dict[str, Estimate], arms: dict[str, list[StudyRun]], eps: float, setting: str,
                   names: tuple[str, ...]) -> Finding:
    """``A.<name>_above_average``: the strategy's (area - mean area) / mean area, with its interval."""
    k = len(areas)
    mean = sum(a.value for a in areas.values()) / k
    # area_s - mean = area_s (1 - 1/k) - sum_{j != s} area_j / k: monotone in each area, so its interval is the
    # areas' bounds put in the right places.
    mine, rest = areas[name], [a for other, a in areas.items() if other != name]
    value = mine.value * (1 - 1 / k) - sum(a.value for a in rest) / k
    low = mine.low * (1 - 1 / k) - sum(a.high for a in rest) / k
    high = mine.high * (1 - 1 / k) - sum(a.low for a in rest) / k
    above = Estimate(value / mean, low / mean, high / mean, mine.basis) if mean > 0 else None
    numbers = {"mean_area": mean, "percent_above_average": above.as_dict() if above else None}
    base = {"key": f"A.{name}_above_average", "paper": "A", "claim": _ABOVE_AVERAGE_CLAIMS[name],
            "setting": setting, "runs": names, "numbers": numbers}
    if above is None:
        return Finding(verdict=INCONCLUSIVE, why="every strategy's Pareto area is zero.", **base)
    text = f"{name} {100 * above.value:+.0f}% [{100 * above.low:+.0f}, {100 * above.high:+.0f}] against the average"
    sign = evidence.sign(above)
    if sign == evidence.GREATER:
        return Finding(verdict=HOLDS, why=f"{text}.", **base)
    if sign == evidence.LESS:
        robust_best = {n: _best_robust(arms[n], eps) for n in arms}
        others = [v for n, v in robust_best.items() if n != name and v is not None]
        return Finding(verdict=DOES_NOT_HOLD, why=(
            f"measurably below the average area ({text}): best robust accuracy {name} {pct(robust_best[name])}, "
            f"against {pct(max(others) if others else None)} for the most robust other strategy. Paper A fine-tuned "
            f"ViT-B/16 (ImageNet-21k) on colour CIFAR at 224 px; here {setting}."), **base)
    return Finding(verdict=INCONCLUSIVE, why=f"{text}; the interval includes 0.", **base)


def _best_robust(group: Sequence[StudyRun], eps: float) -> float | None:
    values = [float(_points(run, eps)["robust"].max()) for run in group if not _points(run, eps).empty]
    return max(values) if values else None


def _ood_pairs(runs: Sequence[StudyRun]) -> pd.DataFrame:
    """Each OOD split's clean accuracy beside the run's clean accuracy at the same step (as ``analysis.ood_pairs``,
    on the findings' own split preference): columns split, value_clean, value_ood."""
    frames = []
    for run in runs:
        clean, _ = clean_series(run)
        ood_mask = records.is_clean(run.metrics) & ~records.is_final(run.metrics) & records.is_ood(run.metrics)
        for split in sorted(set(run.metrics.loc[ood_mask, "split"])):
            ood = series(run, ood_mask, split)
            merged = clean.merge(ood, on="step", suffixes=("_clean", "_ood"))
            frames.append(merged[["value_clean", "value_ood"]].assign(split=split))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "value_clean",
                                                                                     "value_ood"])


def _ood_tracks_clean(runs: Sequence[StudyRun], setting: str) -> Finding | None:
    pairs = _ood_pairs(runs)
    if pairs.empty:
        return None
    claim = "OOD accuracy tracks clean accuracy: a strong positive correlation over training, no trade-off (paper A)."
    per_split = {}
    for split, part in pairs.groupby("split"):
        r = evidence.correlation(part["value_clean"].astype(float).tolist(), part["value_ood"].astype(float).tolist())
        per_split[str(split).removeprefix("ood:")] = r
    numbers = {"pearson_r": {s: r.as_dict() if r else None for s, r in per_split.items()}}
    base = {"key": "A.ood_tracks_clean", "paper": "A", "claim": claim, "setting": setting,
            "runs": tuple(run.name for run in runs), "numbers": numbers}
    text = ", ".join(f"{s} r = {r.value:.2f} [{r.low:.2f}, {r.high:.2f}]" if r else f"{s} r undefined"
                     for s, r in per_split.items())
    signs = [evidence.sign(r) if r else evidence.UNRESOLVED for r in per_split.values()]
    if all(s == evidence.GREATER for s in signs):
        return Finding(verdict=HOLDS, why=f"over every evaluation of every strategy: {text}.", **base)
    if any(s == evidence.LESS for s in signs):
        return Finding(verdict=DOES_NOT_HOLD, why=f"OOD accuracy falls as clean accuracy rises on some split: {text}.",
                       **base)
    return Finding(verdict=INCONCLUSIVE, why=f"{text}: an interval includes 0.", **base)
