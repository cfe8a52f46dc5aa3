"""The sweep's Ray executor: points as Ray tasks on one machine or a cluster; the only code that needs Ray.

Each point is a Ray task reserving ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs (a whole number, or a fraction
below 1 that lets several runs share a GPU, as Ray allows); the run trains on the GPU Ray gave it
(``robustft.sweep.store_run.task_device``). Where the runs are written:

- a shared path (``output_dir`` mounted on every node, e.g. NFS): each task trains straight into
  ``output_dir/<name>`` (:func:`run_point_inprocess`), one writer kept by the run directory's ``flock``;
- a store URI (``storage``: ``s3://``, ``gs://``, ``file://`` ... through fsspec, as Ray's ``storage_path``): each
  task trains in a node-local directory synced into the store at every checkpoint, owned through a lease in the
  store (``robustft.sweep.store_run``). Finished runs are copied back into ``output_dir/<name>`` (no
  checkpoints) for the report and ``sweep.json``; the store stays the run's home.

A task whose node dies is retried on another node (``retries``, Ray's ``max_retries``; Ray does not retry a task
it cancelled, so stopping a sweep stops it). With a store, the retry resumes from the store's last checkpoint once
the dead attempt's lease lapses; with a shared path, once the file system releases the dead node's lock (NFS
does so after its lease time), and meanwhile the retry reports the point as running, to be resumed by the next
invocation.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from robustft.config.schema import from_dict
from robustft.errors import ConfigError, RobustftError
from robustft.runs.lock import RunLockedError, lock_touched_since
from robustft.runs.remote_store import RunStore, StoreError, pull, read_attempts
from robustft.sweep.grid import SweepPoint
from robustft.sweep.interrupt import GRACE_SECONDS, KILL_SECONDS, POLL_SECONDS, StopSignals
from robustft.sweep.manifest import (
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_PENDING,
    STATUS_SKIPPED,
    PointResult,
)
from robustft.sweep.store_run import ray_placement, task_device
from robustft.sweep.triage import prepare_run_dir, running_result


def check_resources(cpus: float, gpus: float, retries: int) -> None:
    """Refuses what Ray would refuse later, once the cluster is up: a negative or mixed GPU share.

    Raises:
        ConfigError: ``gpus`` negative, or above 1 and not whole (Ray shares a GPU in fractions, never 1.5 GPUs);
            ``cpus`` not positive; ``retries`` negative.
    """
    if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise ConfigError(f"--gpus-per-run {gpus:g}: a run takes a whole number of GPUs or a fraction below 1 of "
                          "one GPU (0.5: two runs share a GPU); Ray cannot give it 1.5. Pass e.g. 1, 2 or 0.5.")
    if cpus <= 0:
        raise ConfigError(f"--cpus-per-run {cpus:g} must be positive (e.g. 1, or 0.5 to run two per core).")
    if retries < 0:
        raise ConfigError(f"retries={retries} must be 0 or more (Ray's max_retries: attempts after a node dies).")


def run_point_inprocess(config: dict[str, Any], run_dir: Path) -> PointResult:
    """Runs one point in this process (what a Ray worker does), on the GPU Ray gave it (``task_device``)."""
    import torch

    from robustft.training.trainer import train  # torch loads here: `robustft sweep` itself runs points apart

    action = prepare_run_dir(run_dir)
    result = PointResult(str(config["name"]), [], str(run_dir), STATUS_SKIPPED, action)
    if action == "skip":
        return result
    if action == "running":
        return running_result(result.name, run_dir, action)
    try:
        placement = ray_placement()
        device = task_device(str(config.get("device", "auto")), None if placement is None else placement["gpu_ids"],
                             torch.cuda.is_available())
        train(from_dict(config), resume=run_dir if action == "resume" else None, quiet=True, device=device)
        result.status = STATUS_FINISHED
    except RunLockedError:
        return running_result(result.name, run_dir, "running")
    except RobustftError as error:
        result.status, result.error = STATUS_FAILED, str(error)
    return result


def ray_remote(run_point: Callable[[dict[str, Any], Any], PointResult], address: str | None, cpus: float,
               gpus: float, retries: int = 3) -> Any:
    """Ray's remote ``run_point`` (:func:`run_point_inprocess` or ``store_run.run_point_stored``), Ray started or
    joined, retried ``retries`` times when its worker or node dies. Called before ``StopSignals`` takes the
    signals: ``ray.init`` installs a SIGTERM handler of its own in the driver (``sys.exit``), which would otherwise
    replace the sweep's and skip cancelling the tasks."""
    check_resources(cpus, gpus, retries)
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
    # retry_exceptions stays False: a Python error in a run fails the same way on every node; only a lost worker
    # (node death, OOM kill) is retried.
    return ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries)(run_point)


def run_with_ray(remote: Any, points: list[SweepPoint], configs: list[dict[str, Any]], out: Path,
                  signals: StopSignals, storage: dict[str, Any] | None = None) \
        -> Iterator[tuple[PointResult, SweepPoint]]:
    """Submits every point and yields ``(result, point)`` as they complete (or are cancelled by a signal).

    ``storage`` (``store_run.run_point_stored``'s argument) makes each task's second argument the store instead of
    ``out / name``; a finished run is then copied from the store into ``out / name`` (:func:`mirror`).
    """
    import ray

    since = time.time()
    pending = {remote.remote(cfg, storage if storage is not None else out / p.name): p
               for p, cfg in zip(points, configs, strict=True)}
    while pending:
        if signals.requested:
            yield from _cancel_ray(ray, pending, out, since, signals, storage)
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
        if storage is not None:
            result = mirror(result, storage["uri"], out)
        yield result, point


def mirror(result: PointResult, uri: str, out: Path) -> PointResult:
    """A finished (or earlier finished) run copied from the store into ``out / name`` without its checkpoints,
    so the sweep's report and ``sweep.json`` read a local run directory; ``extra["store"]`` keeps its URI."""
    if result.status not in (STATUS_FINISHED, STATUS_SKIPPED):
        return result
    store = RunStore(uri)
    try:
        pull(store, result.name, out / result.name)
    except StoreError as error:
        result.extra = {**result.extra, "detail": f"finished in the store; not copied here: {error}"}
        return result
    result.extra = {**result.extra, "store": store.run_uri(result.name)}
    result.path = str(out / result.name)
    return result


def _touched(point: SweepPoint, out: Path, since: float, storage: dict[str, Any] | None) -> bool:
    """Whether an attempt at ``point`` began during this sweep (a cancelled point is then interrupted, not
    pending): the run directory's lock changed hands since ``since``, or (store) an attempt was recorded."""
    if storage is None:
        return lock_touched_since(out / point.name, since)
    try:
        attempts = read_attempts(RunStore(storage["uri"]), point.name)
    except (StoreError, ValueError):
        return False
    return any(float(a.get("started_at") or 0) >= since - 1.0 for a in attempts)


def _cancel_ray(ray: Any, pending: dict[Any, SweepPoint], out: Path, since: float,
                signals: StopSignals, storage: dict[str, Any] | None = None) \
        -> Iterator[tuple[PointResult, SweepPoint]]:
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
            status = STATUS_INTERRUPTED if _touched(point, out, since, storage) else STATUS_PENDING
            result = PointResult(point.name, [], str(out / point.name), status, "cancelled")
        yield result, point
