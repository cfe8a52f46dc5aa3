"""The onset of task adaptation: one definition (paper B's first crossing after training starts) in summary.json,
the seed tables, the demo table and the findings; the onset-delay finding over seeds and when nothing adapts."""

from __future__ import annotations

from tests.test_findings import paper_b_run

from robustft.analysis.diagnostics import onset_of_adaptation
from robustft.analysis.findings_onset import onset_range
from robustft.analysis.seed_stats import run_summaries
from robustft.runs import Run
from robustft.sweep.study_summary import schedule_rows

CURVE = [0.35, 0.3, 0.2, 0.1, 0.0]


def test_every_onset_is_paper_bs_first_crossing_after_step_0():
    # 50% at step 0 is the untrained head's class skew, not adaptation; the first evaluation after training starts
    # above 20% is epoch 1 (24%), though accuracy falls back before it stays above from epoch 4.
    run = paper_b_run("fix", [0.5, 0.24, 0.08, 0.12, 0.3, 0.35], CURVE)
    record = Run(name=run.name, config=run.config, summary=run.summary, metrics=run.metrics,
                 labels={"label": "RFT-fix"})
    onset = onset_of_adaptation(run.metrics, 10)  # summary.json's detection.onset
    assert (onset["step"], onset["epoch"], onset["value"]) == (10, 1, 0.24)
    assert run_summaries([record])["onset_epoch"].tolist() == [1.0]  # the seed tables and the schedule figure
    assert schedule_rows([record])[0]["onset_epoch"] == 1.0  # the demo's table
    assert onset_range(record, 0.2)["epoch"] == 1.0  # findings
    # the sustained variant stays available, asked for by name
    assert onset_of_adaptation(run.metrics, 10, sustained=True)["epoch"] == 4
