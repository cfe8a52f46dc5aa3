"""Runs forked from the preloaded server: a process of their own, the command's exit status, its output in the log,
the thread count asked for, signals delivered, and a server that holds no thread pool when it forks."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from robustft.sweep import forked_runs
from robustft.sweep.forked_runs import ForkedRun, fork_runs_available

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")


def test_a_forked_command_exits_with_its_status_and_writes_its_log(tmp_path):
    log = tmp_path / "list.log"
    run = ForkedRun(["list", "attacks"], log, {})
    assert run.pid != os.getpid()
    assert run.wait() == 0 and run.poll() == 0
    assert "pgd" in log.read_text()
    bad = ForkedRun(["train", str(tmp_path / "missing.yaml"), "--quiet"], log, {})
    assert bad.wait() == 2  # robustft's error status, as the command line gives it
    assert "robustft: error:" in log.read_text() and "pgd" in log.read_text()  # appended, not overwritten


def test_a_forked_run_trains_with_the_threads_asked_for_and_records_the_command_line(tmp_path):
    pytest.importorskip("sklearn")  # the digits dataset is scikit-learn's copy
    config = {"name": "forked", "output_dir": str(tmp_path), "device": "cpu",
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 8},
              "data": {"name": "digits", "image_size": 8, "limit_train": 64, "limit_test": 16, "ood": []},
              "optim": {"batch_size": 16}, "train": {"steps": 2, "epochs": None},
              "eval": {"schedule": "every:2", "subset": 8, "final": None, "eps": [], "splits": ["test"]}}
    path = tmp_path / "forked.yaml"
    path.write_text(yaml.safe_dump(config))
    run = ForkedRun(["train", str(path), "--quiet"], tmp_path / "forked.log", {"OMP_NUM_THREADS": "1"})
    assert run.wait() == 0, (tmp_path / "forked.log").read_text()[-2000:]
    environment = json.loads((tmp_path / "forked" / "env.json").read_text())
    assert environment["torch_threads"] == 1
    assert environment["argv"][1:] == ["train", str(path), "--quiet"]
    assert environment["argv"][0].endswith(os.path.join("robustft", "__main__.py"))
    assert (tmp_path / "forked" / "summary.json").is_file()


class _Sleeper(ForkedRun):
    """A forked child that sleeps: the handle's waiting and signalling, without a run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.process = forked_runs._context().Process(target=time.sleep, args=(60,))
        self.process.start()
        self.pid = self.process.pid


def test_a_signal_reaches_the_forked_child_and_its_status_says_so(tmp_path):
    run = ForkedRun(["list", "attacks"], tmp_path / "log", {})
    run.wait()
    run.send_signal(signal.SIGTERM)  # after it exited: nothing to signal, no error
    sleeper = _Sleeper()
    assert sleeper.poll() is None
    sleeper.send_signal(signal.SIGKILL)
    assert sleeper.wait() == -signal.SIGKILL  # as subprocess.Popen: minus the signal that killed it


def test_the_server_holds_no_thread_pool_when_it_forks(tmp_path):
    """No OpenMP / MKL pool exists in the server (forking one would leave the children a broken pool): it imports,
    it never computes. Its threads are its main thread and, where pandas loads pyarrow, jemalloc's background thread
    (named ``jemalloc_bg_thd``; jemalloc's own fork handlers make forking beside it safe). A pool's workers would
    be more threads named after the process."""
    ForkedRun(["list", "attacks"], tmp_path / "log", {}).wait()
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    assert server is not None and Path(f"/proc/{server}/task").is_dir()
    names = [(task / "comm").read_text().strip() for task in Path(f"/proc/{server}/task").iterdir()]
    assert set(names) <= {"python", "python3", "jemalloc_bg_thd"}, names
    assert sum(name != "jemalloc_bg_thd" for name in names) == 1, names


def test_the_fork_server_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("ROBUSTFT_FORK_RUNS", "0")
    assert not fork_runs_available()
    monkeypatch.setenv("ROBUSTFT_FORK_RUNS", "1")
    assert fork_runs_available()
