"""The sweep's local executor: each point a ``robustft train`` process, ``jobs`` at a time on this machine.

A process per point isolates the runs (a crash or an OOM kills one run, not the sweep) and runs the CLI path
users run; CPU threads are divided between the parallel runs. On Linux each process is forked from a server that
imported torch and robustft once (``robustft.sweep.forked_runs``: ~5.5 s less per run), elsewhere or with
``ROBUSTFT_FORK_RUNS=0`` it is a ``python -m robustft train`` subprocess. Every child is one of
``robustft.sweep.interrupt.CHILDREN``, so a stop signal keeps queued points from starting and stops the running
ones (``robustft.sweep.runner.run_points`` takes the signals). Only the standard library is needed here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from robustft.sweep.forked_runs import ForkedRun, fork_runs_available
from robustft.sweep.grid import SweepPoint
from robustft.sweep.interrupt import CHILDREN, POLL_SECONDS, StopSignals
from robustft.sweep.manifest import (
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_PENDING,
    STATUS_SKIPPED,
    PointResult,
)
from robustft.sweep.triage import lock_taken, prepare_run_dir, running_result


def run_point_subprocess(config: dict[str, Any], run_dir: Path, threads: int | None = None) -> PointResult:
    """Runs one point as a ``robustft train`` subprocess; its stderr goes to ``<sweep>/logs/<name>.log``.

    The child is one of ``interrupt.CHILDREN``: when the sweep is stopping it is not started (``pending``), and
    one stopped by the sweep is ``interrupted``.
    """
    name = str(config["name"])
    if CHILDREN.stopping:
        return PointResult(name, [], str(run_dir), STATUS_PENDING)
    action = prepare_run_dir(run_dir)
    result = PointResult(name, [], str(run_dir), STATUS_SKIPPED, action)
    if action == "skip":
        return result
    if action == "running":
        return running_result(name, run_dir, action)
    logs = run_dir.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
        config_file = handle.name
    try:
        arguments = ["train", "--resume", str(run_dir)] if action == "resume" else ["train", config_file]
        arguments.append("--quiet")
        if fork_runs_available():  # forked from a server that imported torch and robustft once (forked_runs)
            changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
            returncode = CHILDREN.run_started(lambda: ForkedRun(arguments, logs / f"{name}.log", changed))
        else:
            with open(logs / f"{name}.log", "a", encoding="utf-8") as log:
                returncode = CHILDREN.run([sys.executable, "-m", "robustft", *arguments], stdout=log,
                                          stderr=subprocess.STDOUT, env=env)
    finally:
        Path(config_file).unlink(missing_ok=True)
    if returncode is None:  # the sweep was stopped before this child could start
        result.status = STATUS_PENDING
    elif returncode == 0:
        result.status = STATUS_FINISHED
    elif CHILDREN.stopping:  # stopped by the sweep (or by the same signal sent to it): resumes next time,
        # unless it had written its summary (it had finished; the signal caught it exiting)
        result.status = STATUS_FINISHED if (run_dir / "summary.json").is_file() else STATUS_INTERRUPTED
    elif lock_taken(run_dir):  # refused: another invocation took the directory between our check and start
        return running_result(name, run_dir, "running")
    else:
        result.status = STATUS_FAILED
        tail = (logs / f"{name}.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        result.error = f"exit status {returncode}: " + " | ".join(tail)
    return result


def run_local(points: Sequence[SweepPoint], configs: Sequence[dict[str, Any]], out: Path, signals: StopSignals,
              jobs: int, on_start: Callable[[SweepPoint], None] | None = None) \
        -> Iterator[tuple[PointResult, SweepPoint, bool]]:
    """Runs every point (``run_point_subprocess``, ``jobs`` at a time) and yields ``(result, point, report)`` as
    each ends; ``report`` is false for a point a stop signal kept from starting (nothing ran, nothing to report).

    The caller resets ``interrupt.CHILDREN`` and enters ``signals`` (with ``on_signal=CHILDREN.refuse``) first.
    Once ``signals`` records a stop signal, queued points are cancelled, the running children stopped
    (``ChildProcesses.stop``) and what became of each yielded; the caller then raises ``SweepInterrupted``.
    """
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None

    def start(cfg: dict[str, Any], point: SweepPoint) -> PointResult:
        if CHILDREN.stopping:
            return PointResult(point.name, [], str(out / point.name), STATUS_PENDING)
        if on_start is not None:
            on_start(point)
        return run_point_subprocess(cfg, out / point.name, threads)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(start, cfg, p): p for p, cfg in zip(points, configs, strict=True)}
        waiting: set[Future] = set(futures)
        while waiting and not signals.requested:
            done, waiting = wait(waiting, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=list(futures).index):
                yield future.result(), futures[future], True
        if signals.requested:
            for future in waiting:
                future.cancel()  # queued: never started; running: cannot be cancelled, stopped below
            CHILDREN.stop(hurried=lambda: signals.hurried)
            for future in [f for f in futures if f in waiting and not f.cancelled()]:
                result = future.result()  # returns promptly: its child has exited or never started
                yield result, futures[future], result.status != STATUS_PENDING
