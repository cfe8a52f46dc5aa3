"""The report's Findings section as rows for the page template: the papers' claims tested on the reported runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, Finding, findings


def findings_table(runs: Sequence[Any], found: Sequence[Finding] | None = None) -> list[dict[str, str]]:
    """One row per finding (paper, claim, verdict and its badge kind, what was measured, setting); empty when
    the runs support no finding.

    Args:
        runs: the report's runs (``RunRecord``s).
        found: precomputed findings (default: ``findings(runs)``).
    """
    found = list(findings(runs) if found is None else found)
    return [{"paper": f.paper, "claim": f.claim, "verdict": f.verdict,
             "kind": {HOLDS: "holds", DOES_NOT_HOLD: "no"}.get(f.verdict, "open"), "why": f.why, "setting": f.setting}
            for f in found]
