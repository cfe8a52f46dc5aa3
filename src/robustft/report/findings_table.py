"""The report's Findings section as rows for the page template: the papers' claims tested on the reported runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Finding, findings


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
