"""scripts/compare_finding_methods.py: each finding's verdict and half-width unpaired and paired, on the same runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.test_findings_paired import schedules
from tests.test_report_findings import write_study

import robustft.analysis

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_finding_methods.py"


def test_the_script_prints_both_methods_half_widths_for_the_same_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("compare_finding_methods", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    study = write_study(schedules(), tmp_path / "study")
    assert script.main([str(study), "--n-boot", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line.split() for line in lines if line.startswith("B.clean ")]
    before = robustft.analysis.findings(study, method="unpaired")[0]
    after = robustft.analysis.findings(study)[0]
    half = lambda f: (f.interval["high"] - f.interval["low"]) / 2  # noqa: E731
    assert row[-5:] == ["inconclusive", f"{half(before):.4f}", "holds", f"{half(after):.4f}",
                        f"{half(after) / half(before):.2f}"]
    assert "B.clean: paired (Newcombe), n=500; n=500" in lines
