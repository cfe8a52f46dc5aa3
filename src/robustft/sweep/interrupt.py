"""Stopping a sweep (and ``robustft demo`` / ``reproduce``, which run through it) on SIGINT, SIGTERM or SIGHUP.

Without this, Ctrl-C in the sweep's main thread raised ``KeyboardInterrupt``, which left the ``ThreadPoolExecutor``
block, whose shutdown waits for every queued point: the running ``robustft train`` children (which had seen no
signal when it was sent to the sweep alone, ``kill -INT PID``) went on, and each queued point was started after
them. A scheduler's SIGTERM killed the sweep and left its children training as orphans.

Now, while :func:`robustft.sweep.run_points` runs, :class:`StopSignals` only records a stop signal; the sweep's loop
sees it within :data:`POLL_SECONDS`, cancels the queued points, and :class:`ChildProcesses` forwards SIGINT to each
running child (the trainer stops as on Ctrl-C: it finishes the step in progress, or abandons an evaluation at
once, writes a checkpoint at that step and releases its run lock), waits :data:`GRACE_SECONDS`, then sends SIGTERM
(a second signal to the trainer: it stops at once and resumes from its last evaluation point's checkpoint), and
SIGKILL :data:`KILL_SECONDS` later. A second stop signal skips the waiting. A stopped run resumes from its last
checkpoint when the sweep is run again.
The sweep then raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``, so code that is unaware of it unwinds as
on Ctrl-C); the CLI prints its message and how to resume, and exits ``128 + signal`` (130 for SIGINT, 143 for
SIGTERM), the shells' convention.

The children run in their own sessions (``start_new_session``): a terminal's Ctrl-C then reaches the sweep only,
which forwards it once. In the sweep's process group they would get the terminal's SIGINT and the forwarded one a
moment later, the second landing in the trainer's clean-up. The cost: the terminal's Ctrl-Z and hang-up no longer
reach them; the hang-up is handled here (SIGHUP stops the sweep and so its children), Ctrl-Z suspends the sweep only.

SIGHUP stays ignored when the sweep was started with it ignored (``nohup``). SIGINT and SIGTERM are always
taken, although a shell script's ``cmd &`` starts its command with SIGINT ignored (and Python leaves it so): an
explicit ``kill -INT PID`` is meant to stop the sweep, and its children must not inherit the ignored SIGINT (an
ignored disposition survives ``exec``; a handled one is reset to the default, which Python makes
``KeyboardInterrupt``), or the forwarded SIGINT would not reach the trainer.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
POLL_SECONDS = 0.2  # how soon the sweep's loop notices a recorded signal
GRACE_SECONDS = 10.0  # after the forwarded SIGINT, before SIGTERM (a trainer stops after its current step)
KILL_SECONDS = 5.0  # after SIGTERM, before SIGKILL


def exit_status(signum: int) -> int:
    """The exit status for a process stopped by ``signum``: ``128 + signum`` (SIGINT 130, SIGTERM 143)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """``SIGINT`` for ``signal.SIGINT`` (``signal <n>`` for a number without a name)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by a signal before every point ended.

    Attributes:
        signum: the signal received.
        results: one ``PointResult`` per point in the order given: finished / skipped / failed as they ended,
            ``interrupted`` (started, stopped; resumes from its last checkpoint) or ``pending`` (never started).
        manifest: the sweep's ``sweep.json``, which records the same.
        executor: ``local`` or ``ray`` (Ray: the tasks were cancelled with ``ray.cancel``).
        resume_args: what a command adds to its own arguments to resume (``robustft demo``: ``--resume DIR``,
            as it starts a new study directory each time); empty: the same command resumes.
    """

    def __init__(self, signum: int, results: Sequence[Any], manifest: Path, executor: str = "local") -> None:
        super().__init__(signum)
        self.signum, self.results, self.manifest, self.executor = signum, list(results), manifest, executor
        self.resume_args: list[str] = []

    @property
    def exit_status(self) -> int:
        """``128 + signum``: 130 for SIGINT, 143 for SIGTERM."""
        return exit_status(self.signum)

    def __str__(self) -> str:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        ended = counts.get("finished", 0) + counts.get("skipped", 0)
        parts = [f"{ended} of {len(self.results)} run(s) finished"]
        if counts.get("failed"):
            parts.append(f"{counts['failed']} failed")
        if counts.get("interrupted"):
            how = "Ray tasks cancelled" if self.executor == "ray" else "stopped"
            parts.append(f"{counts['interrupted']} interrupted ({how}; they resume from their last checkpoint)")
        if counts.get("pending"):
            parts.append(f"{counts['pending']} not started" + (" (Ray tasks cancelled)" if self.executor == "ray"
                                                                 and not counts.get("interrupted") else ""))
        return f"stopped by {signal_name(self.signum)}: {', '.join(parts)}; {self.manifest} records each"


class StopSignals:
    """While entered (in the main thread), SIGINT, SIGTERM and SIGHUP are recorded instead of acted on.

    Python runs signal handlers in the main thread only, so elsewhere this does nothing (the signals keep their
    handlers). SIGHUP ignored on entry stays ignored (``nohup``; see the module docstring). The previous handlers
    are back on exit.

    Args:
        on_signal: called at the first signal, inside the handler (so it must not take a lock or write a file):
            ``ChildProcesses.refuse``, so that at once no child starts and a child the same signal killed (a
            scheduler signals every process of a job) counts as interrupted, not failed.
    """

    def __init__(self, on_signal: Callable[[], None] | None = None) -> None:
        self.on_signal = on_signal
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """A stop signal arrived."""
        return self.signum is not None

    @property
    def hurried(self) -> bool:
        """A second stop signal arrived: stop the children without waiting."""
        return self.count > 1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Only records: the handler runs between two bytecodes of the main thread, possibly inside a manifest
        # write or while a lock is held, so acting here could leave a half-done write or deadlock.
        if self.signum is None:
            self.signum = signum
            if self.on_signal is not None:
                self.on_signal()
        self.count += 1

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN and signum not in (signal.SIGINT, signal.SIGTERM):
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()


class ChildProcesses:
    """The sweep's live ``robustft train`` processes: started unless the sweep is stopping, stopped together.

    Worker threads call :meth:`run`; the main thread calls :meth:`stop`. Starting and the stopping flag share one
    lock, so a child is either started before ``stop`` looks (and is stopped with the others) or never started.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Any] = set()  # subprocess.Popen or anything with its wait / poll / send_signal
        self.stopping = False

    def reset(self) -> None:
        """Accept new children again (a new sweep in the same process)."""
        with self._lock:
            self.stopping = False

    def refuse(self) -> None:
        """Start no more children (safe in a signal handler: one attribute store, no lock; ``run`` reads the flag
        under its lock, so a child is either registered before this or refused after)."""
        self.stopping = True

    def run(self, command: list[str], **options: Any) -> int | None:
        """Runs ``command`` to its end (``subprocess.Popen`` options, plus its own session) and returns its exit
        status (negative: killed by that signal), or None without starting it when the sweep is stopping."""
        return self.run_started(lambda: subprocess.Popen(command, start_new_session=True, **options))

    def run_started(self, start: Callable[[], Any]) -> int | None:
        """As :meth:`run`, for a child ``start()`` starts in its own session and returns a handle to, with
        ``subprocess.Popen``'s ``wait``, ``poll`` and ``send_signal`` (``robustft.sweep.forked_runs.ForkedRun``)."""
        with self._lock:
            if self.stopping:
                return None
            process = start()
            self._live.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._live.discard(process)

    def stop(self, hurried: Callable[[], bool] = lambda: False, grace: float | None = None,
             kill_after: float | None = None) -> None:
        """Refuses new children, then stops the live ones: SIGINT, ``grace`` seconds (default
        :data:`GRACE_SECONDS`), SIGTERM, ``kill_after`` seconds (default :data:`KILL_SECONDS`), SIGKILL. Returns
        when every one has exited; ``hurried()`` true skips the waiting."""
        with self._lock:
            self.stopping = True
            live = list(self._live)
        grace = GRACE_SECONDS if grace is None else grace
        kill_after = KILL_SECONDS if kill_after is None else kill_after
        for signum, wait in ((signal.SIGINT, grace), (signal.SIGTERM, kill_after), (signal.SIGKILL, None)):
            alive = [p for p in live if p.poll() is None]
            if not alive:
                return
            for process in alive:
                process.send_signal(signum)  # a no-op for a child that has just exited and been reaped
            if wait is not None:
                _wait_for(alive, wait, hurried)
        for process in live:
            process.wait()


def _wait_for(processes: list[subprocess.Popen], seconds: float, hurried: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    # poll(), not wait(): a worker thread is blocked in wait() on the same process; poll() sees the exit status
    # once that thread has reaped it.
    while time.monotonic() < deadline and not hurried() and any(p.poll() is None for p in processes):
        time.sleep(0.05)


# The sweep's children, process-wide: ``run_point_subprocess`` keeps its signature (config, run_dir, threads),
# which tests and callers replace, and a process runs one sweep at a time.
CHILDREN = ChildProcesses()
