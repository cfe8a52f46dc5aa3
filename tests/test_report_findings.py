"""The report's Findings table: per finding the interval its verdict rests on, the method and n behind it, and for an
inconclusive one the sample size that would resolve it; run directories' outcomes.bin read on the way."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from tests.test_findings_paired import schedules

from robustft.analysis.findings import INCONCLUSIVE, SKIPPED, findings
from robustft.analysis.findings_claims import CLAIM_KEYS
from robustft.report import build_report
from robustft.report.findings_table import findings_table
from robustft.runs import OutcomeBlock, Run, load_runs


def write_study(runs: list[Run], folder: Path) -> Path:
    """The in-memory runs as run directories: metrics.jsonl and outcomes.bin, as a trainer writes them."""
    for run in runs:
        directory = Run.create(folder / run.name, run.config)
        directory.metrics_writer().write(run.metrics.to_dict("records"))
        with directory.outcomes_writer() as writer:
            writer.write([OutcomeBlock(int(row.step), row.split, row.metric, (row.attack,), (float(row.eps),),
                                       np.asarray(row.image_ids), np.asarray(row.correct)[None])
                          for row in run.outcomes.itertuples(index=False)])
    return folder


def test_the_findings_of_run_directories_are_paired_through_their_outcome_files(tmp_path):
    study = write_study(schedules(), tmp_path / "study")
    records = load_runs(study)
    (row,) = [r for r in findings_table(records) if r["verdict"] != SKIPPED]
    assert row["verdict"] == "holds" and row["method"] == "paired (Newcombe), n=500" and row["n"] == "n = 500"
    assert row["interval"].startswith("clean accuracy: scheduled - fix: 3.") and row["resolve"] == ""
    page = build_report(records, tmp_path / "report").read_text(encoding="utf-8")
    assert "<th>interval (method, n)</th><th>to resolve</th>" in page
    assert html.escape(row["interval"]) in page and "paired (Newcombe), n=500; n = 500" in page


def test_an_inconclusive_finding_says_what_sample_size_would_resolve_it(tmp_path):
    runs = schedules()
    (found,) = [f for f in findings(runs, method="unpaired") if f.key not in CLAIM_KEYS]
    assert found.verdict == INCONCLUSIVE
    (row,) = findings_table(runs, [found])
    count = found.resolve["count"]
    assert count > 500 and row["resolve"] == f"about {count:,} images per run (80% power at the observed effect)"
    assert row["method"] == "unpaired: Wilson, n=500"
    records = load_runs(write_study(runs, tmp_path / "study"))
    page = build_report(records, tmp_path / "report", found=[found]).read_text(encoding="utf-8")
    assert row["resolve"] in page
    # no effect at all: no sample size resolves it, and the row says so rather than printing infinity
    (tie,) = [f for f in findings(schedules(0.6, 0.6, flip=0.0), method="unpaired") if f.key not in CLAIM_KEYS]
    (row,) = findings_table([], [tie])
    assert tie.resolve == {"count": None, "unit": "images"} and row["resolve"].startswith("no effect observed")
