"""One writer per run directory: the lock refuses a second process at once, names the holder, survives kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import robustft
from robustft.runs import Run, RunExistsError
from robustft.runs.lock import LOCK_FILE, RunLock, RunLockedError, lock_holder

SRC = str(Path(robustft.__file__).resolve().parents[1])
HOLD = "import sys, time; from robustft.runs.lock import RunLock; lock = RunLock(sys.argv[1]).acquire(); " \
       "print('held', flush=True); time.sleep(300)"


def hold_in_other_process(run_dir: Path) -> subprocess.Popen:
    """A process that takes ``run_dir``'s lock and keeps it until killed."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": SRC})
    assert child.stdout.readline().strip() == b"held"
    return child


@pytest.fixture
def holder(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    child = hold_in_other_process(run_dir)
    yield run_dir, child
    if child.poll() is None:
        child.kill()
        child.wait()


def tiny_config(output_dir: Path, name: str = "run") -> dict:
    return {"name": name, "output_dir": str(output_dir), "device": "cpu",
            "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
            "data": {"name": "digits", "image_size": 16, "limit_train": 64, "limit_val": 16, "limit_test": 16},
            "train": {"steps": 1, "epochs": None}, "logging": {"progress": False}}


def test_a_second_process_is_refused_with_the_holder_named(holder) -> None:
    run_dir, child = holder
    with pytest.raises(RunLockedError) as caught:
        RunLock(run_dir).acquire()
    message = str(caught.value)
    assert f"pid {child.pid} on host {socket.gethostname()} since 20" in message
    assert "robustft train --resume" in message  # what to do
    assert caught.value.holder["pid"] == child.pid
    assert lock_holder(run_dir)["pid"] == child.pid


def test_a_lock_left_by_a_killed_process_does_not_block(holder) -> None:
    run_dir, child = holder
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == child.pid  # its details are still there
    assert lock_holder(run_dir) is None
    with RunLock(run_dir) as lock:
        assert lock.held and lock_holder(run_dir)["pid"] == os.getpid()
    assert (run_dir / LOCK_FILE).read_text() == ""  # released: no holder recorded


def test_the_same_process_cannot_hold_one_run_twice(tmp_path: Path) -> None:
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    first.release()
    RunLock(tmp_path).acquire().release()


def test_create_with_lock_refuses_a_directory_another_process_holds(holder) -> None:
    run_dir, _ = holder
    with pytest.raises(RunLockedError):
        Run.create(run_dir, tiny_config(run_dir.parent), lock=True)
    assert not (run_dir / "config.yaml").exists()  # nothing written


def test_create_counts_only_real_files_as_an_existing_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    RunLock(run_dir).acquire().release()  # a lock file alone is not a run
    run = Run.create(run_dir, tiny_config(tmp_path), lock=True)
    assert lock_holder(run_dir)["pid"] == os.getpid()
    run.unlock()
    assert lock_holder(run_dir) is None
    with pytest.raises(RunExistsError):
        Run.create(run_dir, tiny_config(tmp_path), lock=True)
    assert lock_holder(run_dir) is None  # a refused create lets go


def test_cli_train_and_resume_of_a_run_being_trained_exit_non_zero_naming_the_holder(tmp_path, capsys) -> None:
    from robustft.cli import main

    run = Run.create(tmp_path / "run", tiny_config(tmp_path))
    child = hold_in_other_process(run.path)
    try:
        assert main(["train", "--resume", str(run.path), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"is being written by pid {child.pid}" in err and "one writer" in err
        config = tmp_path / "same.yaml"
        config.write_text(yaml.safe_dump(tiny_config(tmp_path)))
        assert main(["train", str(config), "--quiet"]) == 2  # a new run into the same directory
        assert f"pid {child.pid}" in capsys.readouterr().err
        assert not (run.path / "metrics.jsonl").exists()  # nothing written by the refused processes
    finally:
        child.kill()
        child.wait()
