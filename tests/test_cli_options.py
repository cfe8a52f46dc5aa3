"""One vocabulary across sub-commands: --output-dir, key=value / --set, --group-by, --json / --csv."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pandas as pd
import pytest

import robustft.report
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


def test_overrides_after_an_option_are_taken_in_the_order_written(fake_train, tmp_path):
    """``robustft train cfg.yaml --quiet optim.lr=1e-3`` was a bare argparse error: argparse takes a command's
    positionals in one run, and the override after ``--quiet`` came too late for it."""
    assert main(["train", "c.yaml", "seed=1", "--quiet", "optim.lr=1e-3", "--set", "train.steps=2",
                 "optim.lr=2e-3"]) == 0
    assert fake_train == {"config": "c.yaml", "resume": None,
                          "overrides": ["seed=1", "optim.lr=1e-3", "optim.lr=2e-3", "train.steps=2"]}
    assert main(["train", "--resume", "r", "--quiet", "optim.lr=1e-3", "seed=2"]) == 0  # the resume's overrides too
    assert fake_train["resume"] == "r" and fake_train["overrides"] == ["optim.lr=1e-3", "seed=2"]


@pytest.mark.parametrize("command", ["train", "demo", "sweep", "reproduce"])
def test_every_config_command_takes_overrides_after_options(command):
    from robustft.cli.options import parse_command_line

    argv = [command, *FIRST[command], "optim.lr=1", "--output-dir", "o", "seed=3", "--set", "train.steps=2"]
    args = parse_command_line(build_parser(), argv)
    assert args.overrides == ["optim.lr=1", "seed=3"] and args.set_overrides == ["train.steps=2"]


@pytest.mark.parametrize("argv, fix", [
    (["train", "c.yaml", "--device", "cpu", "optim.lr=1e-3"], "has no option --device: device is a config key, "
                                                               "set like any other with an override: device=cpu"),
    (["train", "c.yaml", "--optim.lr=3e-4"], "optim.lr=3e-4 (anywhere after the config file) or --set optim.lr=3e-4"),
    (["tune", "c.yaml", "--trials", "2", "optim.lr=3"], "takes no positional key=value (optim.lr=3); write --set "
                                                         "optim.lr=3"),
])
def test_what_is_still_left_over_is_an_error_naming_the_fix(fake_train, capsys, argv, fix):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert fix in err and "unrecognized arguments" in err
    assert "optim.lr=1e-3" not in err.split("unrecognized arguments:")[1].split(".")[0]  # it was accepted
    assert fake_train == {}  # nothing ran


def test_sweep_overrides_and_group_by_are_checked(monkeypatch, tmp_path, capsys):
    import robustft.sweep.study_pipeline

    seen = {}

    def resolve_points(config, grid, fixed, output_dir):
        seen["fixed"] = list(fixed)
        return [], [], tmp_path

    monkeypatch.setattr(robustft.sweep.study_pipeline, "resolve_points", resolve_points)
    monkeypatch.setattr(robustft.sweep.study_pipeline, "run_sweep", lambda *a, **k: [])
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


def test_report_takes_output_dir_and_the_removed_out_is_refused_not_read_as_a_prefix(monkeypatch, tmp_path, capsys):
    written = {}
    monkeypatch.setattr(robustft.runs, "load_runs", lambda runs: [types.SimpleNamespace(path=tmp_path)])
    monkeypatch.setattr(robustft.report, "build_report",
                        lambda records, out, **k: written.setdefault("out", Path(out)) / "index.html")
    assert main(["report", str(tmp_path), "--output-dir", str(tmp_path / "r")]) == 0
    assert written.pop("out") == tmp_path / "r"
    with pytest.raises(SystemExit) as exited:
        main(["report", str(tmp_path), "--out", str(tmp_path / "r")])
    assert exited.value.code == 2
    assert "unrecognized arguments: --out" in capsys.readouterr().err and not written


def test_query_writes_csv_and_json(monkeypatch, tmp_path):
    frame = pd.DataFrame({"run": ["a", "b"], "value": [0.5, 0.25]})
    monkeypatch.setattr(robustft.runs.query, "query_runs", lambda runs, sql: frame)
    files = ["--csv", str(tmp_path / "q.csv"), "--json", str(tmp_path / "q.json")]
    assert main(["query", "SELECT 1", "runs/", *files]) == 0
    assert (tmp_path / "q.csv").read_text().splitlines() == ["run,value", "a,0.5", "b,0.25"]
    assert json.loads((tmp_path / "q.json").read_text()) == [{"run": "a", "value": 0.5}, {"run": "b", "value": 0.25}]


def test_query_prints_null_as_null_not_nan(monkeypatch, capsys):
    # a newcomer read NaN where the README says the optim records' attack is NULL (kills: na_rep dropped)
    frame = pd.DataFrame({"run": ["a", "b"], "attack": ["pgd", None], "value": [0.5, float("nan")]})
    monkeypatch.setattr(robustft.runs.query, "query_runs", lambda runs, sql: frame)
    assert main(["query", "SELECT 1", "runs/"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[2].split() == ["b", "NULL", "NULL"] and "NaN" not in "".join(printed)


def test_query_prints_eps_as_users_write_it_and_files_keep_the_numbers(monkeypatch, tmp_path, capsys):
    frame = pd.DataFrame({"run": ["a", "b", "c"], "eps": [4 / 255, 0.25 / 255, None], "value": [0.5, 0.25, 0.75]})
    monkeypatch.setattr(robustft.runs.query, "query_runs", lambda runs, sql: frame)
    assert main(["query", "SELECT 1", "runs/", "--csv", str(tmp_path / "q.csv")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["a", "4/255", "0.50"] and printed[2].split() == ["b", "0.25/255", "0.25"]
    assert printed[3].split() == ["c", "NULL", "0.75"]  # no eps: SQL's NULL, as in the query that found it
    rows = (tmp_path / "q.csv").read_text().splitlines()
    assert float(rows[1].split(",")[1]) == 4 / 255 and float(rows[2].split(",")[1]) == 0.25 / 255
