"""``robustft --version``, ``list``, ``report`` and ``sweep`` from the command line: output, files, exit status."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

import robustft
import robustft.sweep as sweep_module
from robustft.cli import main
from robustft.cli.list_cmd import REGISTRIES
from robustft.runs import Run
from test_report import frontier_rows, synthetic_run

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    # pyproject.toml's [project] version (tomllib is Python 3.11+; robustft supports 3.10)
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert capsys.readouterr().out == f"robustft {declared}\n" and robustft.__version__ == declared


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_list_prints_every_registered_name(kind, capsys):
    assert main(["list", kind]) == 0
    lines = capsys.readouterr().out.splitlines()
    module_name, attribute = REGISTRIES[kind]
    names = [entry.name for entry in getattr(importlib.import_module(module_name), attribute).entries()]
    assert names and lines[0].split()[0] == "name"
    # Each name opens a row, its description two spaces on; a family used with a suffix shows it ("peft:<type>").
    missing = [n for n in names if not any(line.startswith((n + "  ", n + ":")) for line in lines[1:])]
    assert missing == []


def test_list_of_an_unknown_kind_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "optimisers"])
    assert exit_info.value.code == 2 and "invalid choice: 'optimisers'" in capsys.readouterr().err


def _write_run(path: Path, name: str, strategy: str, peak: float) -> None:
    record = synthetic_run(name, strategy, peak)
    run = Run.create(path / name, record.config)
    with run.metrics_writer() as writer:
        writer.write([{k: v for k, v in row.items() if v == v and v is not None}  # drop NaN / None cells
                      for row in record.metrics.to_dict("records")])
    run.write_summary(record.summary)


def test_report_command_over_run_directories(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    _write_run(runs, "a-bitfit", "bitfit", 0.4)
    _write_run(runs, "b-full", "full", 0.2)
    out = tmp_path / "page"
    assert main(["report", str(runs), "--output-dir", str(out), "--group-by", "strategy", "--title", "T<1>"]) == 0
    assert capsys.readouterr().out == f"report: {out / 'index.html'} (2 run(s))\n"
    text = (out / "index.html").read_text()
    assert "<title>T&lt;1&gt;</title>" in text and "<td>a-bitfit</td>" in text and "<td>b-full</td>" in text
    assert [group for group, _, above in frontier_rows(text)] == ["bitfit", "full"]  # grouped by strategy
    assert (out / "tradeoff.pdf").is_file()

    # One run: the page goes into the run directory; several without --output-dir: ./report.
    assert main(["report", str(runs / "a-bitfit")]) == 0
    assert (runs / "a-bitfit" / "report" / "index.html").is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(runs / "*")]) == 0
    assert "(2 run(s))" in capsys.readouterr().out and (tmp_path / "report" / "index.html").is_file()


def test_report_command_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "no-runs-here")]) == 2
    assert capsys.readouterr().err.startswith("robustft: error: ")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--group-by", "colour"])
    assert exit_info.value.code == 2 and "invalid choice: 'colour'" in capsys.readouterr().err


TINY = {"name": "tiny", "seed": 0, "device": "cpu",
        "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
        "data": {"name": "digits", "image_size": 16, "limit_train": 128, "limit_val": 32, "limit_test": 64},
        "strategy": {"name": "full"}, "objective": {"name": "standard"}, "eps": {"schedule": "zero"},
        "optim": {"batch_size": 64, "lr": 3.0e-3}, "train": {"epochs": 1},
        "eval": {"schedule": "epoch", "subset": 32, "batch_size": 64, "splits": ["test"], "eps": ["1/255"],
                 "final": None, "ood": False},
        "logging": {"progress": False}}


def test_sweep_command_runs_points_in_parallel_sets_overrides_reports_and_exits_1_on_failure(
        tmp_path, monkeypatch, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "runs")}))
    out = tmp_path / "sweep"
    # Each point is a `robustft train` subprocess. With --jobs 2 both must be running at once: once started, each
    # waits at a barrier for the other before the sweep waits for it (with one job at a time the barrier would
    # break and the test fail).
    real_popen, barrier, threads = subprocess.Popen, threading.Barrier(2, timeout=120), []

    def popen(command, **kwargs):
        process = real_popen(command, **kwargs)
        if "train" in command:
            threads.append(kwargs["env"].get("OMP_NUM_THREADS"))
            real_wait = process.wait

            def wait(*args, **options):
                barrier.wait()
                return real_wait(*args, **options)

            process.wait = wait
        return process

    monkeypatch.setattr(sweep_module.interrupt.subprocess, "Popen", popen)
    monkeypatch.setenv("ROBUSTFT_FORK_RUNS", "0")  # the subprocess launcher (the forked one: test_forked_runs.py)
    # lr 1e30 diverges at the second step: a failure no validation can catch before the run.
    argv = ["sweep", str(config), "--grid", "optim.lr=0.003,1e30", "--set", "strategy.name=bitfit",
            "--jobs", "2", "--output-dir", str(out), "--report", "--group-by", "strategy"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    good, bad = "tiny-optim.lr-0.003", "tiny-optim.lr-1e30"
    assert threads == [str(max(1, (os.cpu_count() or 1) // 2))] * 2  # CPU threads divided between the jobs
    assert "1 finished or skipped, 1 failed" in captured.out
    assert f"report: {out / 'report' / 'index.html'}" in captured.out
    assert f"finished  {good}" in captured.err and f"failed    {bad}" in captured.err
    assert "loss became nan" in captured.err  # the failed point's error, from its log
    manifest = json.loads((out / "sweep.json").read_text())
    assert [(p["name"], p["status"]) for p in manifest["points"]] == [(good, "finished"), (bad, "failed")]
    for name, lr in [(good, 0.003), (bad, 1e30)]:  # --set reached every point, the grid value its own
        written = yaml.safe_load((out / name / "config.yaml").read_text())
        assert written["strategy"]["name"] == "bitfit" and float(written["optim"]["lr"]) == lr
    page = (out / "report" / "index.html").read_text()
    assert f"<td>{good}</td>" in page and f"<td>{bad}</td>" not in page  # the report covers finished points
    assert f"<title>robustft sweep {config} over optim.lr (2 runs)</title>" in page  # what was swept

    # Again with the finished point alone: skipped (no subprocess), exit status 0.
    assert main(["sweep", str(config), "--grid", "optim.lr=0.003", "--set", "strategy.name=bitfit",
                 "--output-dir", str(out)]) == 0
    assert f"skipped   {good}" in capsys.readouterr().err and len(threads) == 2


@pytest.mark.parametrize("extra, named", [(["c.yaml"], "the config c.yaml"),
                                          (["--grid", "seed=1,2", "optim.lr=1"], "--grid seed=1,2, optim.lr=1")])
def test_sweep_status_with_a_config_or_run_options_is_refused(tmp_path, capsys, extra, named):
    """``sweep --status DIR CONFIG`` printed DIR's status and ignored CONFIG without a word (the user meant to run
    or continue the sweep, or to see its status: the message gives both commands)."""
    point = {"name": "p", "overrides": [], "path": str(tmp_path / "p"), "status": "pending", "error": None}
    (tmp_path / "sweep.json").write_text(json.dumps({"config": "c.yaml", "grid": {}, "fixed": [], "points": [point]}))
    assert main(["sweep", "--status", str(tmp_path)]) == 0  # alone it shows the status
    capsys.readouterr()
    assert main(["sweep", "--status", str(tmp_path), *extra]) == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert f"{named} would be ignored" in err and captured.out == ""
    assert f"(robustft sweep --status {tmp_path})" in err and "drop --status to run or continue the sweep" in err
