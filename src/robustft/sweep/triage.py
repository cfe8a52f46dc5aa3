"""What to do with a point's run directory before running it: skip, leave to its writer, resume, start or restart.

Both executors ask the same question of a directory (``robustft.sweep.local_executor`` before starting a
``robustft train`` subprocess, a Ray worker before training in-process), so a sweep is resumable the same way
whichever runs it:

- ``summary.json`` present: finished, skipped;
- locked by a live process (another sweep invocation, or a ``robustft train``): ``running``, left alone, since a
  run directory has one writer (``robustft.runs.lock``);
- a checkpoint but no summary (killed, crashed): resumed;
- a directory without a checkpoint (died before its first evaluation): moved aside to
  ``<name>.incomplete-<time>`` (nothing is deleted) and started again.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from robustft.runs.lock import RunLock, RunLockedError, describe_holder, lock_holder
from robustft.sweep.manifest import STATUS_RUNNING, PointResult


def prepare_run_dir(run_dir: Path) -> str:
    """Decides how to run a point: ``skip`` (finished), ``running`` (another live process holds the directory's
    lock: left alone), ``resume`` (has a checkpoint), ``start`` (new), or ``restart`` (a directory without a
    checkpoint, moved aside first so no file is lost).

    The decision is taken under the run's lock, so a directory is never moved aside under a process writing it.
    """
    if (run_dir / "summary.json").is_file():
        return "skip"
    if not run_dir.exists():
        return "start"
    lock = None
    if run_dir.is_dir():
        try:
            lock = RunLock(run_dir).acquire()
        except RunLockedError:
            return "running"
    try:
        if (run_dir / "summary.json").is_file():  # finished while we waited for the lock
            return "skip"
        if (run_dir / "checkpoints" / "last.pt").is_file():
            return "resume"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.incomplete-{stamp}"))
        return "restart"
    finally:
        if lock is not None:
            lock.release()


def running_result(name: str, run_dir: Path, action: str) -> PointResult:
    """The result of a point another live process trains: ``running``, with who holds its lock (``detail``)."""
    holder = lock_holder(run_dir)
    detail = f"trained by {describe_holder(holder)}" if holder is not None else "trained by another process"
    return PointResult(name, [], str(run_dir), STATUS_RUNNING, action, None, {"holder": holder or {},
                                                                            "detail": detail})


def lock_taken(run_dir: Path) -> bool:
    """Whether a live process holds the run directory's lock now."""
    return lock_holder(run_dir) is not None
