"""Stopping a sweep by a signal (``robustft.sweep.interrupt``): no point starts after it, the running children
are stopped, ``sweep.json`` tells the truth, the exit status is 128 + signal, and running it again resumes.

The fast tests run ``run_points`` in this process with stand-in children (a few lines of Python that wait for a
signal) and send the signal to this process, whose main thread runs the sweep as the CLI's does. The slow one
runs a real ``robustft sweep`` of two tiny trainings and sends SIGINT to the sweep process alone (not its group),
which is what ``kill -INT PID`` does and what the old code ignored: its thread pool started the next point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml

import robustft
from robustft.cli import main
from robustft.sweep import (
    STATUS_INTERRUPTED,
    STATUS_PENDING,
    SweepInterrupted,
    SweepPoint,
    forked_runs,
    local_executor,
    run_points,
)
from robustft.sweep import interrupt as interrupt_module
from robustft.sweep.interrupt import ChildProcesses, StopSignals, exit_status
from robustft.sweep.manifest import PointResult

# A stand-in `robustft train`: says it started, then waits; SIGINT -> exit 130 (as the trainer's KeyboardInterrupt);
# with IGNORE set it ignores SIGINT, so that only the SIGTERM that follows stops it.
CHILD = """
import os, signal, sys, time
from pathlib import Path
marks = Path(sys.argv[1])
if os.environ.get("IGNORE") == "1":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
else:
    def stop(signum, frame):
        (marks / "got-sigint").write_text("yes")
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
(marks / f"started-{os.getpid()}").write_text("yes")
time.sleep(60)
"""


def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_exit_status_follows_the_shell_convention_and_the_message_counts_the_points(tmp_path):
    assert exit_status(signal.SIGINT) == 130 and exit_status(signal.SIGTERM) == 143
    results = [PointResult("a", [], "a", "finished"), PointResult("b", [], "b", STATUS_INTERRUPTED),
               PointResult("c", [], "c", STATUS_PENDING), PointResult("d", [], "d", STATUS_PENDING)]
    stop = SweepInterrupted(signal.SIGTERM, results, tmp_path / "sweep.json")
    assert isinstance(stop, KeyboardInterrupt) and stop.exit_status == 143
    assert str(stop) == (f"stopped by SIGTERM: 1 of 4 run(s) finished, 1 interrupted (stopped; they resume from "
                         f"their last checkpoint), 2 not started; {tmp_path / 'sweep.json'} records each")
    ray = SweepInterrupted(signal.SIGINT, results[2:], tmp_path / "sweep.json", executor="ray")
    assert "2 not started (Ray tasks cancelled)" in str(ray) and ray.exit_status == 130


def test_children_get_sigint_then_sigterm_and_none_starts_after_stop(tmp_path):
    children, codes = ChildProcesses(), {}
    command = [sys.executable, "-c", CHILD, str(tmp_path)]

    def run(name: str, ignore: str) -> None:
        codes[name] = children.run(command, env={**os.environ, "IGNORE": ignore})

    threads = [threading.Thread(target=run, args=(name, ignore)) for name, ignore in (("polite", "0"),
                                                                                     ("stubborn", "1"))]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(list(tmp_path.glob("started-*"))) == 2)
    children.stop(grace=0.5, kill_after=5)
    for thread in threads:
        thread.join(timeout=10)
    assert codes == {"polite": 130, "stubborn": -signal.SIGTERM}  # SIGINT first, SIGTERM for the one ignoring it
    assert children.run(command) is None and len(list(tmp_path.glob("started-*"))) == 2  # refused, not started
    children.reset()
    assert children.run([sys.executable, "-c", "pass"]) == 0


def test_a_second_signal_skips_the_grace_period(tmp_path):
    children, codes = ChildProcesses(), []
    thread = threading.Thread(target=lambda: codes.append(children.run([sys.executable, "-c", CHILD, str(tmp_path)],
                                                                        env={**os.environ, "IGNORE": "1"})))
    thread.start()
    wait_until(lambda: any(tmp_path.glob("started-*")))
    children.stop(hurried=lambda: True, grace=600, kill_after=600)  # would wait 10 minutes for a SIGINT it ignores
    thread.join(timeout=10)
    assert codes == [-signal.SIGTERM]


def _points(n: int) -> tuple[list[SweepPoint], list[dict]]:
    points = [SweepPoint(f"p{i}", (f"seed={i}",)) for i in range(n)]
    return points, [{"name": p.name} for p in points]


def stand_in_child(marks: str) -> None:
    """CHILD as a forked child (the fork server runs this function, not a command)."""
    os.setsid()

    def stop(signum, frame):
        (Path(marks) / "got-sigint").write_text("yes")
        sys.exit(130)

    signal.signal(signal.SIGINT, stop)
    (Path(marks) / f"started-{os.getpid()}").write_text("yes")
    time.sleep(60)


class StandInRun(forked_runs.ForkedRun):
    """A ForkedRun whose child is the stand-in instead of `robustft train`."""

    def __init__(self, marks: Path) -> None:
        self._lock = threading.Lock()
        self.process = forked_runs._context().Process(target=stand_in_child, args=(str(marks),))
        self.process.start()
        self.pid = self.process.pid


@pytest.mark.parametrize("launch", ["forked", "subprocess"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_local_sweep_starts_nothing_more_and_records_every_point(tmp_path, monkeypatch, signum,
                                                                                     launch):
    marks = tmp_path / "marks"
    marks.mkdir()
    real_popen, commands = subprocess.Popen, []

    def popen(command, **options):  # the points' `robustft train` replaced by the stand-in
        commands.append(command)
        return real_popen([sys.executable, "-c", CHILD, str(marks)], **options)

    def forked(arguments, log, env):  # the same, forked from the preloaded server (robustft.sweep.forked_runs)
        commands.append(arguments)
        return StandInRun(marks)

    if launch == "forked":
        if not forked_runs.fork_runs_available():
            pytest.skip("no fork server on this platform")
        monkeypatch.setattr(local_executor, "ForkedRun", forked)
    else:
        monkeypatch.setenv("ROBUSTFT_FORK_RUNS", "0")
        monkeypatch.setattr(interrupt_module.subprocess, "Popen", popen)
    started: list[str] = []
    sender = threading.Thread(target=lambda: (wait_until(lambda: any(marks.glob("started-*"))),
                                              os.kill(os.getpid(), signum)))
    sender.start()
    points, configs = _points(3)
    out = tmp_path / "sweep"
    before = signal.getsignal(signum)
    with pytest.raises(SweepInterrupted) as stopped:
        run_points(points, configs, out, jobs=1, on_start=lambda p: started.append(p.name))
    sender.join()
    assert stopped.value.exit_status == exit_status(signum)
    assert len(commands) == 1 and started == ["p0"]  # the queued points never started
    assert (marks / "got-sigint").read_text() == "yes"  # SIGINT forwarded to the child, for SIGTERM too
    assert [r.status for r in stopped.value.results] == [STATUS_INTERRUPTED, STATUS_PENDING, STATUS_PENDING]
    manifest = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["interrupted", "pending", "pending"]
    assert signal.getsignal(signum) is before  # the handlers are given back
    assert not interrupt_module.CHILDREN.stopping  # the next sweep in this process may start children


def test_a_signal_cancels_the_ray_tasks(tmp_path, monkeypatch):
    """The Ray executor with a stand-in ``ray`` module (a real Ray instance takes ~10 s to start): both tasks are
    cancelled with ray.cancel; the one whose training had taken its run lock is interrupted, the other pending."""
    calls: list[tuple] = []

    class TaskCancelledError(Exception):
        pass

    def wait(refs, num_returns=1, timeout=None):
        if not calls:  # the signal arrives while the sweep waits for its tasks, p0's training having started
            calls.append(("signal",))
            (out / "p0").mkdir()
            (out / "p0" / "lock").write_text("")  # taken, then let go of (cleared) when the task was cancelled
            os.kill(os.getpid(), signal.SIGINT)
            return [], list(refs)
        return (list(refs), []) if any(c[0] == "cancel" for c in calls) else ([], list(refs))

    def get(ref, timeout=None):
        raise TaskCancelledError(ref)

    def remote(**resources):
        return lambda function: types.SimpleNamespace(remote=lambda cfg, run_dir: f"ref-{cfg['name']}")

    fake = types.SimpleNamespace(is_initialized=lambda: True, remote=remote, wait=wait, get=get,
                                 cancel=lambda ref, force=False: calls.append(("cancel", ref, force)))
    monkeypatch.setitem(sys.modules, "ray", fake)
    points, configs = _points(2)
    out = tmp_path / "sweep"
    with pytest.raises(SweepInterrupted) as stopped:
        run_points(points, configs, out, executor="ray")
    assert calls[1:] == [("cancel", "ref-p0", False), ("cancel", "ref-p1", False)]  # no force: they ended
    assert [r.status for r in stopped.value.results] == [STATUS_INTERRUPTED, STATUS_PENDING]
    assert "Ray tasks cancelled" in str(stopped.value)
    assert [p["status"] for p in json.loads((out / "sweep.json").read_text())["points"]] == ["interrupted",
                                                                                             "pending"]


def test_stop_signals_leave_nohup_alone_but_take_an_ignored_sigint(monkeypatch):
    """``nohup`` ignores SIGHUP: it stays ignored. A script's ``cmd &`` ignores SIGINT: it is taken all the same
    (``kill -INT PID`` means stop), which also gives the children the default SIGINT instead of an ignored one."""
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.SIG_IGN)
    installed = []
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append(signum))
    with StopSignals():
        pass
    assert signal.SIGHUP not in installed and signal.SIGINT in installed and signal.SIGTERM in installed


TINY = {"name": "tiny", "seed": 0, "device": "cpu",
        "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
        "data": {"name": "digits", "image_size": 16, "limit_train": 128, "limit_val": 32, "limit_test": 64},
        "strategy": {"name": "full"}, "objective": {"name": "standard"}, "eps": {"schedule": "zero"},
        "optim": {"batch_size": 64, "lr": 3.0e-3}, "train": {"steps": 60},
        "eval": {"schedule": "every:10", "subset": 32, "batch_size": 64, "splits": ["test"], "eps": [],
                 "final": None, "ood": False},
        "logging": {"progress": False}}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_sigint_to_a_real_sweep_stops_it_and_the_same_command_resumes_it(tmp_path, capsys, monkeypatch):
    """About 30 s: two tiny trainings, each a `robustft train` subprocess (most of it is Python and torch
    starting up on a loaded 2-core machine)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "runs")}))
    out = tmp_path / "sweep"
    argv = ["sweep", str(config), "--grid", "optim.lr=0.003,0.002", "--jobs", "1", "--output-dir", str(out)]
    source = str(Path(robustft.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    first, second = out / "tiny-optim.lr-0.003", out / "tiny-optim.lr-0.002"
    # Started with SIGINT ignored, as a shell script's `robustft sweep ... &` starts it (the harder case: Python
    # leaves SIGINT ignored then, and children would inherit that), in its own session so that a signal meant for
    # it reaches nothing else.
    ignoring = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "os.execv(sys.executable, [sys.executable, '-m', 'robustft', *sys.argv[1:]])")
    with open(tmp_path / "err", "w") as err:
        sweep = subprocess.Popen([sys.executable, "-c", ignoring, *argv], stdout=err, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
    child = None
    try:
        # the first point trains and has a checkpoint (written at its first evaluation) to resume from
        wait_until(lambda: (first / "checkpoints" / "last.pt").is_file() or sweep.poll() is not None, 180)
        assert sweep.poll() is None, (tmp_path / "err").read_text()
        child = json.loads((first / "lock").read_text())["pid"]
        os.kill(sweep.pid, signal.SIGINT)  # the sweep alone, not its group
        assert sweep.wait(timeout=60) == 130
        wait_until(lambda: not _alive(child), 5)  # the training child stopped too
        with pytest.raises(ProcessLookupError):
            os.killpg(child, 0)  # nor anything of its process group
    finally:
        for pid in (sweep.pid, child):
            if pid is not None and _alive(pid):
                os.killpg(pid, signal.SIGKILL)
    text = (tmp_path / "err").read_text()
    assert "stopped by SIGINT: 0 of 2 run(s) finished, 1 interrupted" in text and "Traceback" not in text
    assert f"to resume, run: robustft {' '.join(argv)}" in text
    assert not second.exists()  # never started
    assert not (first / "summary.json").exists()
    manifest = json.loads((out / "sweep.json").read_text())
    assert [(p["name"], p["status"]) for p in manifest["points"]] == [(first.name, "interrupted"),
                                                                      (second.name, "pending")]
    assert main(["sweep", "--status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"pending  {first.name}  interrupted at step" in shown and "0 done, 0 running, 0 failed, 2 pending" in shown

    # The same command again (here in this process): the interrupted point resumes from its checkpoint, the
    # other starts; both finish.
    for key in ("PYTHONPATH", "OMP_NUM_THREADS"):
        monkeypatch.setenv(key, env[key])
    assert main(argv) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert [(p["status"], p["action"]) for p in manifest["points"]] == [("finished", "resume"), ("finished", "start")]
    assert (first / "summary.json").is_file() and (second / "summary.json").is_file()


def test_an_interrupted_demo_says_to_resume_it_with_resume_dir_which_continues_that_study(tmp_path, monkeypatch,
                                                                                           capsys):
    """``robustft demo`` starts a new study directory each time, so its resume command names the interrupted one."""
    import robustft.cli.study_run as study_run

    used: list[Path] = []

    def interrupted(study, out, **options):
        used.append(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps({"study": study.name, "points": []}))
        raise SweepInterrupted(signal.SIGINT, [PointResult("a-full", [], str(out / "a-full"), STATUS_INTERRUPTED)],
                               out / "sweep.json")

    monkeypatch.setattr(study_run, "execute", interrupted)
    argv = ["demo", "--quick", "--output-dir", str(tmp_path)]
    assert main(argv) == 130
    study = used[0]
    err = capsys.readouterr().err
    assert "robustft: stopped by SIGINT: 0 of 1 run(s) finished, 1 interrupted" in err and "Traceback" not in err
    assert f"to resume, run: robustft demo --quick --output-dir {tmp_path} --resume {study}" in err
    assert main([*argv, "--resume", str(study)]) == 130 and used[1] == study  # the same study directory
    # interrupted again: the same command resumes it (--resume not added twice)
    assert capsys.readouterr().err.endswith(f"to resume, run: robustft demo --quick --output-dir {tmp_path} "
                                            f"--resume {study}\n")
    assert main(["demo", "--resume", str(study)]) == 2  # a --quick study resumed without --quick
    assert "holds the study 'demo-quick', not 'demo'; add --quick" in capsys.readouterr().err
    assert main(["demo", "--quick", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no readable sweep.json there" in capsys.readouterr().err and len(used) == 2
