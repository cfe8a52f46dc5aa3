"""The report's Findings section: the papers' claims tested on the reported runs (``robustft.analysis.findings``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, Finding, findings

CSS = """
.verdict{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.75rem;font-weight:600;
white-space:nowrap}.verdict-holds{background:#d8f0dc;color:#1c5d2a}.verdict-no{background:#f8dcdc;color:#7a1f1f}
.verdict-open{background:#eee;color:#555}
"""


def _badge(verdict: str) -> str:
    kind = {HOLDS: "holds", DOES_NOT_HOLD: "no"}.get(verdict, "open")
    return f'<span class="verdict verdict-{kind}">{html.escape(verdict)}</span>'


def findings_section(runs: Sequence[Any], found: Sequence[Finding] | None = None) -> str:
    """HTML for the Findings section ("" when the runs support no finding).

    Args:
        runs: the report's runs (``RunRecord``s).
        found: precomputed findings (default: ``findings(runs)``).
    """
    found = list(findings(runs) if found is None else found)
    if not found:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(f.paper)}</td><td>{html.escape(f.claim)}</td><td>{_badge(f.verdict)}</td>"
        f"<td>{html.escape(f.why)}</td><td class='muted'>{html.escape(f.setting)}</td></tr>" for f in found)
    return (f"<style>{CSS}</style><h2 id='findings'>Findings</h2>"
            "<p class='muted'>Each claim of the two papers tested on these runs. A verdict is decided by the "
            "uncertainty of the numbers (95% Wilson intervals of the evaluated subsets, or the spread of seeds): "
            "<i>holds</i> or <i>does not hold</i> when the interval of the contrast excludes zero, otherwise "
            "<i>inconclusive</i>.</p>"
            "<table><thead><tr><th>paper</th><th>claim</th><th>verdict</th><th>measured</th><th>setting</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")
