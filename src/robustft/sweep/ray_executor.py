"""The sweep's Ray executor: points as Ray tasks, cancelled when the sweep is stopped; the only code that needs Ray."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from robustft.errors import RobustftError
from robustft.runs.lock import lock_touched_since
from robustft.sweep.grid import SweepPoint
from robustft.sweep.interrupt import GRACE_SECONDS, KILL_SECONDS, POLL_SECONDS, StopSignals
from robustft.sweep.manifest import STATUS_FAILED, STATUS_INTERRUPTED, STATUS_PENDING, PointResult


def ray_remote(run_point: Callable[[dict[str, Any], Path], PointResult], address: str | None, cpus: float,
               gpus: float) -> Any:
    """Ray's remote ``run_point`` (``runner.run_point_inprocess``), Ray started or joined. Called before
    ``StopSignals`` takes the signals: ``ray.init`` installs a SIGTERM handler of its own in the driver
    (``sys.exit``), which would otherwise replace the sweep's and skip cancelling the tasks."""
    try:
        import ray
    except ImportError:
        raise RobustftError("the ray executor needs Ray: pip install 'robustft[ray]' (or use --executor local).") \
            from None
    if not ray.is_initialized():
        # A local Ray instance's processes inherit an ignored SIGINT (a script's `robustft sweep ... &` starts the
        # sweep so), and ray.cancel interrupts a running task by a simulated SIGINT in its worker, which an ignored
        # SIGINT turns into nothing: the default is set first (StopSignals takes SIGINT next in any case).
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    return ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_point)


def run_with_ray(remote: Any, points: list[SweepPoint], configs: list[dict[str, Any]], out: Path,
                  signals: StopSignals) -> Iterator[tuple[PointResult, SweepPoint]]:
    import ray

    since = time.time()
    pending = {remote.remote(cfg, out / p.name): p for p, cfg in zip(points, configs, strict=True)}
    while pending:
        if signals.requested:
            yield from _cancel_ray(ray, pending, out, since, signals)
            return
        # A timeout, so that a recorded signal is seen: ray.wait runs Python's signal handlers while it waits,
        # but StopSignals' handler only records, so without one it would wait on for a run to end.
        done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
        if not done:
            continue
        point = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as error:  # noqa: BLE001 - a worker crash surfaces here; the other runs go on
            # unless the sweep is being stopped: a terminal's Ctrl-C may reach the workers too
            status = STATUS_INTERRUPTED if signals.requested else STATUS_FAILED
            result = PointResult(point.name, [], str(out / point.name), status, "start", repr(error))
        yield result, point


def _cancel_ray(ray: Any, pending: dict[Any, SweepPoint], out: Path, since: float,
                signals: StopSignals) -> Iterator[tuple[PointResult, SweepPoint]]:
    """Cancels the sweep's unfinished Ray tasks and yields what became of each.

    ``ray.cancel`` (force=False) drops a task not started yet and raises ``KeyboardInterrupt`` in a running one,
    which stops ``train`` as Ctrl-C does (its ``finally`` releases the run's lock); a task still running after
    ``GRACE_SECONDS`` is cancelled with ``force=True``, which kills its worker process (the kernel then releases
    the lock). A task that finished before the cancel keeps its result. ``ray.get`` of a cancelled task raises
    (``TaskCancelledError``, ``WorkerCrashedError`` after force): the point is ``interrupted`` if its task took
    the run's lock during this sweep, else ``pending``. The lock file's time says so, not its holder details
    (``runs.lock.lock_touched_since``): an interrupted training clears those when it lets go of the lock.
    """
    refs = list(pending)
    for ref in refs:
        ray.cancel(ref)
    deadline = time.monotonic() + GRACE_SECONDS
    ready: list[Any] = []
    while len(ready) < len(refs) and time.monotonic() < deadline and not signals.hurried:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=POLL_SECONDS)
    for ref in refs:
        if ref not in ready:
            ray.cancel(ref, force=True)
    for ref in refs:
        point = pending[ref]
        try:
            result = ray.get(ref, timeout=KILL_SECONDS)
        except Exception:  # noqa: BLE001 - cancelled, killed, or not gone after KILL_SECONDS
            status = STATUS_INTERRUPTED if lock_touched_since(out / point.name, since) else STATUS_PENDING
            result = PointResult(point.name, [], str(out / point.name), status, "cancelled")
        yield result, point
