"""``robustft tune`` interrupted for real and run again: Ctrl-C (SIGINT to the process group, as a terminal sends
it), then SIGKILL of the whole process group (driver, Ray's processes and trial workers: a crash), then the same
command to the end. The search must be restored, not restarted: the trials that ended before an interruption
are not trained again, the others continue from their checkpoints, no trial is added beyond --trials, and the
finished search writes best.json and a best.yaml that trains.

Each command is a subprocess in its own session with its own local Ray instance (``--cpus 2``); whatever is
left of a session is killed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import robustft
from robustft.config import load_config
from robustft.runs import Run
from test_tune import TINY as TUNE_TINY

pytest.importorskip("ray.tune", reason="Ray Tune is in the dev extra: pip install 'robustft[ray]'")

# test_tune's tiny search config, with a shorter budget: three Ray start-ups share this test's time.
TINY = TUNE_TINY.replace("train: {{steps: 24}}", "train: {{steps: 16}}")
assert TINY != TUNE_TINY
TRIALS = 6


class Search:
    """``robustft tune`` in a subprocess (its own session: one process group with Ray's processes)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.config = tmp_path / "tiny.yaml"
        self.config.write_text(TINY.format(out=tmp_path / "runs"))
        self.out = tmp_path / "search"
        self.sessions: list[subprocess.Popen] = []
        source = str(Path(robustft.__file__).resolve().parents[1])
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
                    "RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
        self.env.pop("RAY_ADDRESS", None)

    def start(self, name: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "robustft", "tune", str(self.config), "--search",
                "optim.lr=loguniform:1e-4:3e-1", "--trials", str(TRIALS), "--grace-period", "4",
                "--reduction-factor", "2", "--output-dir", str(self.out), "--cpus", "2"]
        with open(self.tmp_path / f"{name}.out", "w") as out, open(self.tmp_path / f"{name}.err", "w") as err:
            process = subprocess.Popen(argv, stdout=out, stderr=err, env=self.env, start_new_session=True,
                                       cwd=self.tmp_path)
        self.sessions.append(process)
        return process

    def err(self, name: str) -> str:
        return (self.tmp_path / f"{name}.err").read_text()

    def trial_dirs(self) -> list[Path]:
        return sorted(p for p in (self.out / "trials").glob("*") if p.is_dir())

    def ended(self) -> set[str]:
        """The trials Ray Tune's saved experiment state has as ended (TERMINATED: run to the budget or stopped
        by ASHA), from its newest ``experiment_state-*.json`` (written at a Ctrl-C, else every 10 s or so)."""
        states = sorted((self.out / "ray").glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
        trials = [json.loads(state) for state, _ in json.loads(states[-1].read_text())["trial_data"]]
        return {t["trial_id"] for t in trials if t["status"] == "TERMINATED"}

    def wait_for(self, process: subprocess.Popen, name: str, ready, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"{name} ended early ({process.returncode}):\n{self.err(name)[-3000:]}"
            assert time.monotonic() < deadline, f"{name}: nothing to interrupt after {timeout} s:\n{self.err(name)}"
            time.sleep(0.2)

    def cleanup(self) -> None:
        for process in self.sessions:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the session's process group: Ray's processes too
            except (ProcessLookupError, PermissionError):
                pass
            process.wait(timeout=30)


def _files(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in ("metrics.jsonl", "summary.json")
            if (run_dir / name).is_file()}


def _created(run_dir: Path) -> tuple[int, int] | None:
    """When the run directory was created (config.yaml, env.json): a restarted trial would write them anew.

    None while it is being created: an interrupt can land between the two files (a SIGKILL in CI did), and a trial
    cut there has no creation to keep; the resumed search completes it.
    """
    files = (run_dir / "config.yaml", run_dir / "env.json")
    return tuple(f.stat().st_mtime_ns for f in files) if all(f.is_file() for f in files) else None


def _complete(run_dirs: list[Path], known: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The creation times of the run directories created completely and not recorded yet."""
    times = {p.name: _created(p) for p in run_dirs if p.name not in known}
    return {name: stamp for name, stamp in times.items() if stamp is not None}


def _steps(kept: dict[str, list[dict]]) -> int:
    return sum(max((r["step"] for r in records), default=0) for records in kept.values())


def _checkpointed(run_dir: Path) -> list[dict]:
    """The records up to the run's last checkpoint: what a resumed trial must keep."""
    from robustft.runs.checkpoints import load_checkpoint

    last = run_dir / "checkpoints" / "last.pt"
    step = int(load_checkpoint(last)["step"]) if last.is_file() else -1
    return [r for r in Run(run_dir).read_records() if r["step"] <= step]


@pytest.mark.slow
def test_an_interrupted_search_resumes_where_it_stopped(tmp_path):
    search = Search(tmp_path)
    try:
        # 1. Ctrl-C once three trials have started (two run at a time: one or more has ended).
        first = search.start("first")
        search.wait_for(first, "first", lambda: len(search.trial_dirs()) >= 3)
        os.killpg(first.pid, signal.SIGINT)
        assert first.wait(timeout=60) == 130, search.err("first")
        assert "run the same command again to resume" in search.err("first")
        assert not (search.out / "best.json").exists() and not (search.out / "best.yaml").exists()
        ended = {name: _files(search.out / "trials" / name) for name in search.ended()}
        kept = {p.name: _checkpointed(p) for p in search.trial_dirs()}
        created = _complete(search.trial_dirs(), {})
        measured = [f"Ctrl-C: {len(ended)} ended, {len(kept)} started, {_steps(kept)} steps checkpointed"]
        assert 1 <= len(ended) < len(kept) + 1 and len(kept) < TRIALS, (sorted(ended), sorted(kept))

        # 2. The same command resumes; SIGKILL of everything once two more trials have started.
        second = search.start("second")
        search.wait_for(second, "second", lambda: len(search.trial_dirs()) >= min(TRIALS, len(kept) + 2))
        os.killpg(second.pid, signal.SIGKILL)
        second.wait(timeout=30)
        assert "tune: resuming the search" in search.err("second")
        kept.update({p.name: _checkpointed(p) for p in search.trial_dirs()})
        created.update(_complete(search.trial_dirs(), created))
        measured.append(f"SIGKILL: {len(kept)} started, {_steps(kept)} steps checkpointed")

        # 3. Once more, to the end.
        third = search.start("third")
        assert third.wait(timeout=120) == 0, search.err("third")
        assert "tune: resuming the search" in search.err("third")
    finally:
        search.cleanup()

    trials = pd.read_csv(search.out / "trials.csv")
    dirs = search.trial_dirs()
    assert len(trials) == TRIALS and len(dirs) == TRIALS  # restored, not restarted: no trial beyond --trials
    assert set(trials["trial"]) == {p.name for p in dirs} >= set(kept)  # the same trial ids throughout
    for name, files in ended.items():
        assert _files(search.out / "trials" / name) == files, f"{name} ended before Ctrl-C but ran again"
    assert {name: _created(search.out / "trials" / name) for name in created} == created  # none made anew
    for name, records in kept.items():
        after = Run(search.out / "trials" / name).read_records()
        assert after[:len(records)] == records, f"{name} lost what it had checkpointed"
        steps = [(r["step"], r["split"], r["metric"], r.get("attack"), r.get("eps")) for r in after]
        assert len(steps) == len(set(steps)), f"{name} has a step recorded twice"
    completed = trials[trials["completed"]]
    assert not completed.empty and (completed["last_step"] == 16).all()
    assert all((search.out / "trials" / name / "summary.json").is_file() for name in completed["trial"])

    print("measured:", "; ".join([*measured, f"end: {len(trials)} trials, {int(trials['last_step'].sum())} steps, "
                                              f"{int(trials['completed'].sum())} to the budget"]))
    best = json.loads((search.out / "best.json").read_text())
    assert best["trials"] == TRIALS and best["trial"] in set(trials["trial"])
    tuned = load_config(search.out / "best.yaml")
    assert tuned.optim.lr == pytest.approx(best["values"]["optim.lr"]) and tuned.name == "tiny-tuned"
    from robustft.training.trainer import train

    result = train(search.out / "best.yaml", [f"output_dir={tmp_path / 'final'}", "train.steps=2"], quiet=True)
    assert (result.path / "summary.json").is_file()
