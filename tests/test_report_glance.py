"""The report's "Verdicts at a glance": per claim tested in several settings, how many settings gave each verdict and
where it held or did not (an embedded grid gives ~50 findings; a reader needs each claim's outcome first)."""

from __future__ import annotations

from tests.test_findings_claims_b import _on_task, eps_study

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, findings
from robustft.report.findings_table import findings_glance


def test_a_claim_tested_in_two_settings_is_counted_per_verdict_with_its_settings():
    # kills: counts taken over every finding instead of the claim's own; the settings lists swapped
    found = findings([*eps_study({"1/255": 1, "4/255": 2, "8/255": 3}),
                      *_on_task(eps_study({"1/255": 1, "4/255": 1, "8/255": 1}), "mnist")])
    rows = {row["key"]: row for row in findings_glance(found)}
    delay = rows["B.delay_grows_with_eps"]
    assert delay["settings"] == 2 and delay["counts"][HOLDS] == 1 and delay["counts"][DOES_NOT_HOLD] == 1
    assert len(delay["held"]) == 1 and "on fashion-mnist" in delay["held"][0] and ";" not in delay["held"][0]
    assert len(delay["failed"]) == 1 and "on mnist" in delay["failed"][0]
    assert sum(delay["counts"].values()) == delay["settings"]


def test_claims_tested_once_each_need_no_glance():
    # kills: the glance shown for a single study, where it repeats the findings table
    found = findings(eps_study({"1/255": 1, "4/255": 2, "8/255": 3}))
    assert found and findings_glance(found) == []
