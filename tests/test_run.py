"""The one run type and its one loader: a loaded run reads each file when first asked and keeps it, a broken file is
named with its run, and the report, the findings and queries see the same runs under the same names."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.test_findings_paired import schedules
from tests.test_report_findings import write_study
from tests.test_runs import make_config, rec

from robustft.analysis.findings import findings
from robustft.cli import main
from robustft.errors import RobustftError
from robustft.runs import METRIC_FIELDS, OutcomeBlock, Run, RunNotFoundError, load_runs, query_runs
from robustft.runs.outcomes import TABLE_COLUMNS


def one_run(root: Path, name: str = "r") -> Run:
    run = Run.create(root / name, make_config(name=name))
    run.metrics_writer().write([rec(0), rec(10)])
    run.write_summary({"value": 0.5})
    return run


def block(step: int) -> OutcomeBlock:
    return OutcomeBlock(step, "test", "accuracy", ("clean",), (0.0,), np.arange(4), np.ones((1, 4), dtype=bool))


def test_a_loaded_run_reads_its_files_when_first_asked_and_keeps_them(tmp_path: Path) -> None:
    one_run(tmp_path / "study")
    (run,) = load_runs(tmp_path / "study")
    on_disk = Run(run.path)
    # written after loading: seen, as the loader read nothing
    on_disk.metrics_writer().write([rec(20)])
    with on_disk.outcomes_writer() as writer:
        writer.write([block(20)])
    on_disk.write_summary({"value": 0.75})
    assert list(run.metrics["step"]) == [0, 10, 20] and list(run.outcomes["step"]) == [20]
    assert run.summary == {"value": 0.75}
    # written after the first read: kept as read until refresh()
    on_disk.metrics_writer().write([rec(30)])
    with on_disk.outcomes_writer() as writer:
        writer.write([block(30)])
    on_disk.write_summary({"value": 0.9})
    assert list(run.metrics["step"]) == [0, 10, 20] and list(run.outcomes["step"]) == [20]
    assert run.summary == {"value": 0.75} and run.metrics is run.metrics
    run.refresh()
    assert list(run.metrics["step"]) == [0, 10, 20, 30] and list(run.outcomes["step"]) == [20, 30]
    assert run.summary == {"value": 0.9}


def test_loading_reads_no_file_of_a_run(tmp_path: Path) -> None:
    one_run(tmp_path / "study")
    (tmp_path / "study" / "r" / "summary.json").write_text("{broken")
    (run,) = load_runs(tmp_path / "study")  # no error yet: the summary is not read by the loader
    with pytest.raises(RunNotFoundError, match="summary"):
        _ = run.summary


def test_a_bad_summary_names_its_run_and_the_fix(tmp_path: Path) -> None:
    run = one_run(tmp_path / "study")
    run.summary_path.write_text("{broken")
    with pytest.raises(RunNotFoundError, match=re.escape(str(run.path)) + r".*not valid JSON.*restore it, or delete"):
        _ = Run(run.path).summary
    run.summary_path.write_text("[1, 2]")
    with pytest.raises(RunNotFoundError, match=re.escape(str(run.path)) + r".*is not a JSON object"):
        _ = Run(run.path).summary
    run.summary_path.unlink()
    assert Run(run.path).summary == {}  # not written yet (still training): the report shows the run without one


def test_a_missing_or_bad_config_names_its_run(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match=re.escape(str(tmp_path / "gone")) + ".*robustft run"):
        _ = Run(tmp_path / "gone").config
    run = one_run(tmp_path / "study")
    run.config_path.write_text("a: [unclosed")
    with pytest.raises(RunNotFoundError, match=re.escape(str(run.config_path))):
        _ = Run(run.path).config


def test_a_run_held_in_memory_has_its_values_and_no_directory() -> None:
    run = Run(name="x", config={"seed": 1}, metrics=[rec(0, value=0.25)])
    assert list(run.metrics.columns) == list(METRIC_FIELDS) and run.metrics["value"].tolist() == [0.25]
    assert run.summary == {} and list(run.outcomes.columns) == list(TABLE_COLUMNS) and run.outcomes.empty
    assert run.config == {"seed": 1} and run.refresh().config == {"seed": 1}  # nothing to read again
    with pytest.raises(RobustftError, match="x is held in memory"):
        _ = run.metrics_path
    with pytest.raises(RobustftError, match="needs a name"):
        Run()
    with pytest.raises(TypeError, match="robustft.runs.Run objects, not dict"):
        findings([{"name": "x", "config": {}, "metrics": pd.DataFrame()}])


def test_report_findings_and_queries_see_the_runs_the_loader_loads(tmp_path: Path, capsys) -> None:
    """Two studies of the same runs: every reader names them as ``load_runs`` does (``one/b-fix-0``), the outcomes
    view too; findings read from the folders equal those of the loaded runs."""
    studies = [write_study(schedules(), tmp_path / study) for study in ("one", "two")]
    names = [run.name for run in load_runs(studies)]
    assert len(names) == 4 and all(name.startswith(("one/", "two/")) for name in names)
    assert sorted(query_runs(studies, "SELECT run FROM runs")["run"]) == sorted(names)
    assert sorted(query_runs(studies, "SELECT DISTINCT run FROM metrics")["run"]) == sorted(names)
    assert sorted(query_runs(studies, "SELECT DISTINCT run FROM outcomes")["run"]) == sorted(names)
    found = findings(studies[0])
    assert [f.as_dict() for f in found] == [f.as_dict() for f in findings(load_runs(studies[0]))]
    assert set().union(*(f.runs for f in findings(studies))) == set(names)
    assert main(["report", *map(str, studies), "--output-dir", str(tmp_path / "report")]) == 0
    assert "(4 run(s))" in capsys.readouterr().out
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert all(f"<td>{name}</td>" in page for name in names)
