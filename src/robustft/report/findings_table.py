"""The report's Findings section as rows for the page template: the papers' claims tested on the reported runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, SKIPPED, Finding, findings


def resolve_text(finding: Finding) -> str:
    """What would resolve an inconclusive finding: ``"about 2,400 images per run (80% power)"``, ``"no effect
    observed"``; empty for a resolved verdict or when no estimate exists (the onset's rule)."""
    if finding.verdict != INCONCLUSIVE or not finding.resolve:
        return ""
    count, unit = finding.resolve.get("count"), finding.resolve.get("unit", "images")
    if count is None:
        return "no effect observed: no sample size resolves it"
    per = " per run" if unit == "images" else ""
    return f"about {count:,} {unit}{per} (80% power at the observed effect)"


def findings_table(runs: Sequence[Any], found: Sequence[Finding] | None = None) -> list[dict[str, str]]:
    """One row per finding (paper, claim, verdict and its badge kind, what was measured, setting; the interval the
    verdict rests on, its method and n, and what sample size would resolve an inconclusive one); empty when the runs
    support no finding.

    Args:
        runs: the report's runs (``robustft.runs.Run``).
        found: precomputed findings (default: ``findings(runs)``).
    """
    found = list(findings(runs) if found is None else found)
    rows = []
    for f in found:
        interval = f"{f.interval['what']}: {f.interval['text']}" if f.interval else ""
        rows.append({"paper": f.paper, "claim": f.claim, "verdict": f.verdict,
                     "kind": {HOLDS: "holds", DOES_NOT_HOLD: "no"}.get(f.verdict, "open"), "why": f.why,
                     "setting": f.setting, "interval": interval, "method": f.method,
                     "n": "" if f.n is None else f"n = {f.n}", "resolve": resolve_text(f)})
    return rows


def short_setting(finding: Finding) -> str:
    """The setting's lead ("vit_small_dinov2 on emoji at 56 px, eps_g = 2/255"), without the config keys after ";"."""
    return finding.setting.split(";")[0].strip()


def findings_glance(found: Sequence[Finding]) -> list[dict[str, Any]]:
    """One row per claim tested in more than one setting (an embedded grid tests most claims per backbone x task x
    eps_g): how many settings gave each verdict and in which settings it held or did not hold, so a reader of a
    50-row findings table sees each claim's outcome first. Empty when every claim was tested once.

    Returns:
        rows in first-seen order: key, paper, claim, counts {verdict: n} over HOLDS, DOES_NOT_HOLD, INCONCLUSIVE,
        SKIPPED, and the short settings where it held / did not hold.
    """
    by_key: dict[str, list[Finding]] = {}
    for f in found:
        by_key.setdefault(f.key, []).append(f)
    if all(len(group) == 1 for group in by_key.values()):
        return []
    rows = []
    for key, group in by_key.items():
        counts = {v: sum(f.verdict == v for f in group) for v in (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, SKIPPED)}
        rows.append({"key": key, "paper": group[0].paper, "claim": group[0].claim, "counts": counts,
                     "settings": len(group),
                     "held": [short_setting(f) for f in group if f.verdict == HOLDS],
                     "failed": [short_setting(f) for f in group if f.verdict == DOES_NOT_HOLD]})
    return rows
