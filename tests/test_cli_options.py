"""One vocabulary across sub-commands: --output-dir, key=value / --set, --group-by, --json / --csv."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pandas as pd
import pytest

import robustft.report
import robustft.report.collect
import robustft.runs
import robustft.sweep
import robustft.training.trainer
from robustft.cli import build_parser, main


def _options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s for a in sub._actions if a.help != "==SUPPRESS==" for s in a.option_strings}


@pytest.mark.parametrize("command", ["train", "demo", "sweep", "report"])
def test_output_dir_has_one_name(command):
    assert "--output-dir" in _options(command)


FIRST = {"train": ["c.yaml"], "demo": [], "sweep": ["c.yaml"], "reproduce": ["paper-a"]}


@pytest.mark.parametrize("command", ["train", "demo", "sweep", "reproduce"])
def test_overrides_accept_positional_and_set(command):
    assert "--set" in _options(command)
    parser = build_parser()
    argv = [command, *FIRST[command], "optim.lr=1", "--set", "train.steps=2"]
    args = parser.parse_args(argv)
    assert args.overrides == ["optim.lr=1"] and args.set_overrides == ["train.steps=2"]


@pytest.mark.parametrize("command", ["eval", "query"])
def test_json_and_csv_files_mean_the_same_everywhere(command):
    assert {"--json", "--csv"} <= _options(command)


@pytest.fixture
def fake_train(monkeypatch, tmp_path):
    calls = {}

    def train(config, overrides, resume=None, quiet=None):
        calls.update(config=config, overrides=list(overrides), resume=resume)
        return types.SimpleNamespace(path=tmp_path / "run", summary={"final": {"test/clean/accuracy": 0.5}})

    monkeypatch.setattr(robustft.training.trainer, "train", train)
    return calls


def test_train_set_positional_and_output_dir_reach_the_config(fake_train, tmp_path, capsys):
    assert main(["train", "c.yaml", "optim.lr=1", "--set", "train.steps=2", "--output-dir", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert fake_train["overrides"] == ["optim.lr=1", "train.steps=2", f"output_dir={tmp_path / 'o'}"]
    assert main(["train", "--resume", "r", "--output-dir", "o"]) == 2
    assert "does not apply to --resume" in capsys.readouterr().err


def test_sweep_overrides_and_group_by_are_checked(monkeypatch, tmp_path, capsys):
    seen = {}

    def resolve_points(config, grid, fixed, output_dir):
        seen["fixed"] = list(fixed)
        return [], [], tmp_path

    monkeypatch.setattr(robustft.sweep.runner, "resolve_points", resolve_points)
    monkeypatch.setattr(robustft.sweep.runner, "run_sweep", lambda *a, **k: [])
    assert main(["sweep", "c.yaml", "optim.lr=1", "--set", "seed=2", "--grid", "seed=1,2"]) == 0
    assert seen["fixed"] == ["optim.lr=1", "seed=2"]
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "c.yaml", "--report", "--group-by", "strategyy"])
    assert exited.value.code == 2
    assert "invalid choice: 'strategyy'" in capsys.readouterr().err


def test_reproduce_positional_and_set_overrides_reach_the_study_alike(monkeypatch, tmp_path):
    """``reproduce paper-b k=v`` and ``reproduce paper-b --set k=v`` hand the study the same overrides, which
    are checked against every arm's config (no run starts: execute stops after resolving the study)."""
    import robustft.cli.study_run
    from robustft.sweep.study import resolve_study

    seen = []

    def execute(study, out, *, fixed, **options):
        resolve_study(study, out, fixed)  # every arm's config with the overrides: a bad one raises here
        seen.append((study.name, Path(out), list(fixed)))
        return 0

    monkeypatch.setattr(robustft.cli.study_run, "execute", execute)
    out = str(tmp_path / "s")
    overrides = ["train.epochs=1", "optim.batch_size=16"]
    assert main(["reproduce", "paper-b", *overrides, "--output-dir", out]) == 0
    assert main(["reproduce", "paper-b", "--set", overrides[0], "--set", overrides[1], "--output-dir", out]) == 0
    assert main(["reproduce", "paper-b", overrides[0], "--set", overrides[1], "--output-dir", out]) == 0
    assert seen == [("paper-b-embedded", tmp_path / "s", overrides)] * 3
    assert main(["reproduce", "paper-b", "optim.lr=-1", "--output-dir", out]) == 2  # checked like --set ones


@pytest.mark.parametrize("flag, warned", [("--output-dir", False), ("--out", True)])
def test_report_output_dir_and_its_deprecated_alias(monkeypatch, tmp_path, capsys, flag, warned):
    written = {}
    monkeypatch.setattr(robustft.report.collect, "collect_runs", lambda runs: [types.SimpleNamespace(path=tmp_path)])
    monkeypatch.setattr(robustft.report, "build_report",
                        lambda records, out, **k: written.setdefault("out", Path(out)) / "index.html")
    assert main(["report", str(tmp_path), flag, str(tmp_path / "r")]) == 0
    assert written["out"] == tmp_path / "r"
    err = capsys.readouterr().err
    assert ("--out is deprecated" in err and "write --output-dir" in err) is warned


def test_query_writes_csv_and_json(monkeypatch, tmp_path):
    frame = pd.DataFrame({"run": ["a", "b"], "value": [0.5, 0.25]})
    monkeypatch.setattr(robustft.runs.query, "query_runs", lambda runs, sql: frame)
    files = ["--csv", str(tmp_path / "q.csv"), "--json", str(tmp_path / "q.json")]
    assert main(["query", "SELECT 1", "runs/", *files]) == 0
    assert (tmp_path / "q.csv").read_text().splitlines() == ["run,value", "a,0.5", "b,0.25"]
    assert json.loads((tmp_path / "q.json").read_text()) == [{"run": "a", "value": 0.5}, {"run": "b", "value": 0.25}]
