"""``robustft.study``: a study from Python, as the README shows it, and what it refuses before anything runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.test_sweep_run import write_config

from robustft.errors import ConfigError
from robustft.sweep import local_executor, run_point_inprocess
from robustft.sweep.study_pipeline import STUDIES, plan_study

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_study_lines() -> str:
    """The README's Python block that calls ``robustft.study``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    (block,) = [b for b in blocks if "robustft.study(" in b]
    return block


def test_the_readmes_three_lines_run_a_study_with_findings_and_a_report(tmp_path, monkeypatch, capsys):
    code = readme_study_lines()
    assert len(code.strip().splitlines()) == 3
    # The README's lines as written, on the tiny CNN and 8x8 digits instead of the embedded backbone, each run in
    # this process instead of a `robustft train` subprocess (seconds, not minutes).
    config, out = write_config(tmp_path), tmp_path / "study"
    code = code.replace('"configs/demo.yaml"', repr(str(config))).replace('"runs/lora-vs-full"', repr(str(out)))
    assert str(config) in code and str(out) in code
    monkeypatch.setattr(local_executor, "run_point_subprocess", lambda cfg, run_dir, threads=None:
                        run_point_inprocess(cfg, run_dir))
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own example
    result = namespace["result"]
    names = [f"tiny-strategy-{s}-seed-{i}" for s in ("full", "lora") for i in (0, 1)]
    assert [r.status for r in result.results] == ["finished"] * 4 and not result.failed
    assert sorted(run.name for run in result.runs) == sorted(names)
    assert {run.config["seed"] for run in result.runs} == {0, 1}  # seeds=2 reached every run's config
    keys = [f.key for f in result.findings]
    assert keys and all(key.startswith("A.") for key in keys)  # full vs lora: paper A's claims
    assert result.report == out / "report" / "index.html" and result.report.is_file()
    saved = json.loads((out / "findings.json").read_text())
    assert result.findings_file == out / "findings.json"
    assert [f["key"] for f in saved["findings"]] == keys and saved["cpu_seconds"] > 0
    printed = capsys.readouterr().out
    assert str(result.report) in printed and names[0] in printed


def test_a_shipped_study_with_seeds_replicates_every_arm(tmp_path):
    plan = plan_study("paper-b", tmp_path, seeds=2, overrides=["train.epochs=1"], jobs=1)
    arms = [arm.name for arm in STUDIES["paper-b"]().arms]
    assert [p.name for p in plan.points] == [f"{a}-seed-{s}" for a in arms for s in (0, 1)]
    assert [c["seed"] for c in plan.configs] == [0, 1] * len(arms)
    assert {c["train"]["epochs"] for c in plan.configs} == {1}
    labels = [arm.label for arm in plan.study.arms]
    assert labels[:2] == [STUDIES["paper-b"]().arms[0].label] * 2  # an arm's seeds share its label
    assert not any(tmp_path.iterdir())  # planned only: nothing ran


@pytest.mark.parametrize("spec, kwargs, message", [
    ("paper-c", {}, "neither a shipped study nor a config file; pass one of demo, demo-quick, paper-a, paper-b"),
    ("paper-a", {"grid": {"optim.lr": ["1e-3"]}}, "is a set of arms"),
    ("paper-a", {"seeds": 0}, "--seeds must be a positive number"),
])
def test_a_bad_study_is_refused_before_anything_runs(tmp_path, spec, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_study(spec, tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()
