"""One sweep point run against a store (``robustft sweep --executor ray --storage URI``): what a Ray task does.

The point's run trains in a node-local working directory and is copied into the store at each evaluation point
(``robustft.runs.remote_store``); the store's copy is the run. When a node dies mid-run, Ray retries the task
(``max_retries``) on another node, and the retry:

1. skips the run if the store has its ``summary.json`` (finished);
2. takes the run's lease (``robustft.runs.lease``): the dead attempt stops renewing it and the retry takes over
   after one lease period; a live attempt (another sweep invocation, or a node Ray only lost sight of) keeps it,
   and the retry reports the point as ``running`` without training, so two attempts never train one run;
3. downloads the store's config, metrics and ``last.pt`` and resumes with the trainer's own resume
   (``training.state.resume_from_last`` truncates ``metrics.jsonl`` to the checkpoint's step: no duplicated
   record); with no checkpoint in the store, files left by an attempt that died before its first checkpoint are
   moved aside (``<name>.incomplete-<time>``) and the run starts from step 0;
4. appends a line to the store's ``attempts.jsonl`` (node, host, pid, device, GPU ids and resources Ray gave it,
   the step it starts from): the record that a run resumed rather than restarted;
5. trains, syncing after every evaluation (after its checkpoint) and at the end (``summary.json`` last), checking
   before each sync that it still holds the lease; then releases the lease and deletes the working directory.

Devices (:func:`task_device`): Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it gave a task (a fractional share
is one GPU shared with other tasks), so ``cuda`` inside the task is the assigned GPU. A task given no GPU trains
on the CPU even with ``device: auto`` (Ray does not hide a node's GPUs from a task that asked for none, and
taking one would oversubscribe a GPU given to another task); a task given a GPU on a node without CUDA (Ray's
simulated nodes declare GPUs they do not have) falls back to the CPU and says so. The config is not changed:
the device is the trainer's ``device`` argument, so the run can resume on a node with another device.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from robustft.config.schema import from_dict
from robustft.errors import ConfigError, RobustftError
from robustft.runs.lease import LeaseLostError, StoreLease
from robustft.runs.lock import RunLockedError
from robustft.runs.remote_store import ATTEMPTS_FILE, LEASE_FILE, RunStore, RunSync, record_attempt, restore
from robustft.sweep.manifest import STATUS_FAILED, STATUS_FINISHED, STATUS_RUNNING, STATUS_SKIPPED, PointResult

log = logging.getLogger("robustft.sweep.store_run")


def task_device(spec: str, gpu_ids: list[Any] | None, cuda_available: bool) -> str:
    """The device a run trains on in a Ray task.

    Args:
        spec: the config's ``device`` (auto, cpu, cuda, cuda:N).
        gpu_ids: ``ray.get_gpu_ids()`` in the task (empty: Ray gave it no GPU), or None outside Ray (``spec``
            is returned unchanged).
        cuda_available: ``torch.cuda.is_available()`` in the task.

    Returns:
        ``cuda`` (the first GPU Ray gave the task: Ray numbers the visible ones from 0, so a ``cuda:N`` of the
        config, an index into the whole machine, is replaced by it), or ``cpu``.

    Raises:
        ConfigError: the config asks for CUDA and Ray gave the task no GPU.
    """
    text = str(spec).strip().lower()
    if gpu_ids is None:
        return text
    if text == "cpu":
        return "cpu"
    if not gpu_ids:
        if text.startswith("cuda"):
            raise ConfigError(f"device={spec!r} but Ray reserved no GPU for this run (--gpus-per-run 0); pass "
                              "--gpus-per-run 1 (or a fraction such as 0.5 to share a GPU), or device=auto.")
        return "cpu"
    if not cuda_available:
        log.warning("Ray gave this run GPU(s) %s but CUDA is not available on this node; training on the CPU",
                    gpu_ids)
        return "cpu"
    return "cuda"


def ray_placement() -> dict[str, Any] | None:
    """Where Ray runs this task and what it reserved for it (None outside a Ray worker)."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    try:
        resources = dict(context.get_assigned_resources())
    except Exception:  # noqa: BLE001 - only in a task; the driver (tests calling in-process) has none
        resources = {}
    return {"node_id": context.get_node_id(), "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
            "resources": resources}


def run_point_stored(config: dict[str, Any], storage: dict[str, Any]) -> PointResult:
    """Runs (or resumes, or skips) one point whose run lives in the store ``storage["uri"]``.

    Args:
        config: the point's resolved config (its ``name`` is the run's folder in the store; ``output_dir`` is
            replaced by the node-local working directory).
        storage: ``{"uri": store URI, "lease_seconds": float, "local_dir": str | None}`` (``local_dir``: where
            working directories go on the node, default the system temporary directory).

    Returns:
        The point's result; ``path`` is the run's URI in the store, ``extra`` holds this attempt's record.
    """
    from robustft.training.trainer import build_trainer  # torch loads here, in the worker

    store = RunStore(str(storage["uri"]))
    name = str(config["name"])
    result = PointResult(name, [], store.run_uri(name), STATUS_SKIPPED, "skip")
    if store.finished(name):
        return result
    placement = ray_placement()
    lease = StoreLease(store, name, float(storage.get("lease_seconds", 60.0)),
                       holder={"node_id": (placement or {}).get("node_id")})
    try:
        lease.acquire()
    except RunLockedError as error:  # a LeaseHeldError: another live attempt trains it
        result.status, result.action = STATUS_RUNNING, "running"
        result.extra = {"holder": error.holder, "detail": str(error).split(";")[0]}
        return result
    except RobustftError as error:  # the store cannot be reached
        result.status, result.error = STATUS_FAILED, str(error)
        return result
    work = Path(tempfile.mkdtemp(prefix=f"robustft-{name}-", dir=storage.get("local_dir")))
    try:
        if store.finished(name):  # finished by the attempt whose lease lapsed just now
            return result
        local = work / name
        got = restore(store, name, local)
        if got is None:
            result.action = "restart" if store.move_aside(name, keep=(LEASE_FILE, ATTEMPTS_FILE)) else "start"
        else:
            result.action = "resume"
        import torch

        device = task_device(str(config.get("device", "auto")), None if placement is None else
                             placement["gpu_ids"], torch.cuda.is_available())
        trainer = build_trainer(from_dict({**config, "output_dir": str(work)}),
                                resume=local if got is not None else None, quiet=True, device=device)
        attempt = {"token": lease.token, "action": result.action, "start_step": None, "device": str(trainer.device),
                   "started_at": time.time(), **lease.holder, **(placement or {})}
        sync = RunSync(store, name, local, before=lease.check)
        trainer.on_evaluation = lambda step, epoch, values: sync.push()

        def started(step: int, resumed: bool) -> None:  # the checkpoint is loaded: its step is known
            lease.check()
            attempt["start_step"] = step
            record_attempt(store, name, attempt)

        trainer.on_start = started
        trainer.execute()
        sync.push()  # summary.json, last
        result.status, result.extra = STATUS_FINISHED, {"attempt": attempt}
    except LeaseLostError as error:
        result.status, result.action, result.extra = STATUS_RUNNING, "running", {"detail": str(error)}
    except RunLockedError as error:
        result.status, result.action, result.extra = STATUS_RUNNING, "running", {"detail": str(error)}
    except RobustftError as error:
        result.status, result.error = STATUS_FAILED, str(error)
    finally:
        lease.release()
        shutil.rmtree(work, ignore_errors=True)
    return result
