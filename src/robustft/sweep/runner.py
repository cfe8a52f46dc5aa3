"""Sweeps: a grid of config overrides -> many runs, on one machine or a Ray cluster; resumable.

``robustft sweep configs/paper_a_embedded/full.yaml --grid strategy.name=full,linear,bitfit,lora`` expands the
grid (cartesian product, in the order given), checks every point completely before anything runs (its config,
and its objective, model structure and strategy options as the trainer builds them: ``robustft.sweep.check``;
one bad point fails the sweep with nothing started), then runs each point:

- a point whose run directory has ``summary.json`` is finished and skipped;
- a point whose run directory is locked by a live process (another sweep invocation, or a ``robustft train``) is
  reported as ``running`` and left alone: a run directory has one writer (``robustft.runs.lock``);
- a point with a checkpoint but no summary (killed, crashed) is resumed with ``robustft train --resume``;
- a point whose directory exists without a checkpoint (died before its first evaluation) is moved aside to
  ``<name>.incomplete-<time>`` (nothing is deleted) and started again;
- a failing point does not stop the others; the sweep exits non-zero and the manifest says why;
- SIGINT / SIGTERM / SIGHUP stop the whole sweep (``robustft.sweep.interrupt``): queued points are not started,
  running ones are stopped (``interrupted``: resumed from their last checkpoint by the next invocation), the
  manifest is written and ``SweepInterrupted`` raised.

The grid and its run names are ``robustft.sweep.grid``'s (its names are re-exported here).

The local executor runs every point in its own ``robustft train`` subprocess (isolation: a crash or an OOM
kills one run, not the sweep; the CLI path users run is the one exercised), ``jobs`` at a time with the CPU
threads divided between them. The Ray executor (``robustft.sweep.ray_executor``) sends the resolved config to a
Ray task that runs the same logic in the worker: into the output directory, which must then be on storage every
node sees, or, with ``storage`` (an fsspec URI), into a store the runs are synced to at every checkpoint and
resumed from on another node when theirs dies (``robustft.sweep.store_run``).
Ray is used because it is the maintained way to spread Python work over a cluster; the local executor needs
nothing beyond the standard library. ``output_dir/sweep.json`` (rewritten atomically after each point;
``robustft.sweep.manifest``) records every point's status.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from robustft.config.files import load_config
from robustft.config.schema import from_dict, to_dict
from robustft.errors import ConfigError, RobustftError
from robustft.runs.lock import RunLock, RunLockedError, describe_holder, lock_holder
from robustft.runs.remote_store import RunStore
from robustft.sweep.check import PointChecker, carry_strategy_options
from robustft.sweep.grid import SweepPoint, add_seed_axis, expand_grid, parse_grid, split_values
from robustft.sweep.interrupt import CHILDREN, POLL_SECONDS, StopSignals, SweepInterrupted
from robustft.sweep.manifest import (
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_PENDING,
    STATUS_RUNNING,
    STATUS_SKIPPED,
    PointResult,
    write_manifest,
)
from robustft.sweep.ray_executor import ray_remote, run_with_ray
from robustft.sweep.store_run import ray_placement, run_point_stored, task_device

# Re-exported: the grid's names, the statuses and PointResult were defined here before robustft.sweep.grid and
# robustft.sweep.manifest, and are imported from here.
__all__ = [
    "STATUS_FAILED", "STATUS_FINISHED", "STATUS_INTERRUPTED", "STATUS_PENDING", "STATUS_RUNNING", "STATUS_SKIPPED",
    "PointResult", "SweepInterrupted", "SweepPoint", "add_seed_axis", "expand_grid", "parse_grid", "prepare_run_dir",
    "resolve_points", "run_point_inprocess", "run_point_subprocess", "run_points", "run_sweep", "split_values",
]


def resolve_points(config: str | Path, grid: dict[str, list[str]], fixed: Sequence[str] = (),
                   output_dir: str | Path | None = None) -> tuple[list[SweepPoint], list[dict[str, Any]], Path]:
    """Expands the grid and resolves + checks every point completely before anything runs.

    Each point's config is loaded and validated, the base file's strategy options are dropped from points that
    choose another strategy (``sweep_check.carry_strategy_options``; the point's ``note`` says so), and the
    objective, model structure and strategy are built as the trainer would (``sweep_check.PointChecker``).

    Returns:
        (points, config dicts with name/output_dir set, the sweep's output directory).

    Raises:
        ConfigError: one or more bad points; the message names each point, its overrides and its error.
    """
    base = load_config(config, list(fixed))
    try:
        own = load_config(config)  # the file's own strategy, before --set and the grid
    except ConfigError:
        own = base  # a file that only validates with its --set values: those define the base
    out = Path(output_dir) if output_dir is not None else Path(base.output_dir) / base.name
    points = expand_grid(base.name, grid)
    check = PointChecker()
    resolved, configs, errors = [], [], []
    for point in points:
        chosen = [*fixed, *point.overrides]
        try:
            tree = to_dict(load_config(config, [*chosen, f"name={point.name}", f"output_dir={out}"]))
            tree, note = carry_strategy_options(tree, own.strategy.name, dict(own.strategy.options or {}), chosen)
            check(tree)
        except RobustftError as error:
            shown = " ".join(point.overrides) or "the base config"
            errors.append(f"  {point.name} ({shown}): {error}")
            continue
        resolved.append(SweepPoint(point.name, point.overrides, note))
        configs.append(tree)
    if errors:
        raise ConfigError(f"{len(errors)} of {len(points)} sweep point(s) are invalid, so nothing was started; fix "
                          "the grid, the --set values or the base config:\n" + "\n".join(errors))
    return resolved, configs, out


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


def _running(name: str, run_dir: Path, action: str) -> PointResult:
    holder = lock_holder(run_dir)
    detail = f"trained by {describe_holder(holder)}" if holder is not None else "trained by another process"
    return PointResult(name, [], str(run_dir), STATUS_RUNNING, action, None, {"holder": holder or {},
                                                                            "detail": detail})


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
        return _running(name, run_dir, action)
    logs = run_dir.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
        config_file = handle.name
    try:
        if action == "resume":
            command = [sys.executable, "-m", "robustft", "train", "--resume", str(run_dir), "--quiet"]
        else:
            command = [sys.executable, "-m", "robustft", "train", config_file, "--quiet"]
        with open(logs / f"{name}.log", "a", encoding="utf-8") as log:
            returncode = CHILDREN.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        Path(config_file).unlink(missing_ok=True)
    if returncode is None:  # the sweep was stopped before this child could start
        result.status = STATUS_PENDING
    elif returncode == 0:
        result.status = STATUS_FINISHED
    elif CHILDREN.stopping:  # stopped by the sweep (or by the same signal sent to it): resumes next time,
        # unless it had written its summary (it had finished; the signal caught it exiting)
        result.status = STATUS_FINISHED if (run_dir / "summary.json").is_file() else STATUS_INTERRUPTED
    elif _lock_taken(run_dir):  # refused: another invocation took the directory between our check and start
        return _running(name, run_dir, "running")
    else:
        result.status = STATUS_FAILED
        tail = (logs / f"{name}.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        result.error = f"exit status {returncode}: " + " | ".join(tail)
    return result


def _lock_taken(run_dir: Path) -> bool:
    return lock_holder(run_dir) is not None


def run_point_inprocess(config: dict[str, Any], run_dir: Path) -> PointResult:
    """Runs one point in this process (what a Ray worker does), on the GPU Ray gave it (``task_device``)."""
    import torch

    from robustft.training.trainer import train  # torch loads here: `robustft sweep` itself runs points apart

    action = prepare_run_dir(run_dir)
    result = PointResult(str(config["name"]), [], str(run_dir), STATUS_SKIPPED, action)
    if action == "skip":
        return result
    if action == "running":
        return _running(result.name, run_dir, action)
    try:
        placement = ray_placement()
        device = task_device(str(config.get("device", "auto")), None if placement is None else placement["gpu_ids"],
                             torch.cuda.is_available())
        train(from_dict(config), resume=run_dir if action == "resume" else None, quiet=True, device=device)
        result.status = STATUS_FINISHED
    except RunLockedError:
        return _running(result.name, run_dir, "running")
    except RobustftError as error:
        result.status, result.error = STATUS_FAILED, str(error)
    return result


def run_sweep(config: str | Path, grid: dict[str, list[str]], *, fixed: Sequence[str] = (),
              output_dir: str | Path | None = None, executor: str = "local", jobs: int = 1,
              ray_address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
              on_result: Callable[[PointResult], None] | None = None,
              resolved: tuple[list[SweepPoint], list[dict[str, Any]], Path] | None = None,
              storage: str | None = None, lease_seconds: float = 60.0, retries: int = 3) -> list[PointResult]:
    """Runs every point of the grid; returns one result per point, in grid order.

    Args:
        config: the base YAML config.
        grid: ``{dotted key: [values]}`` (see ``parse_grid``).
        fixed: overrides applied to every point.
        output_dir: where the runs go (default ``<config output_dir>/<config name>``).
        executor: ``local`` (subprocesses, ``jobs`` at a time) or ``ray``.
        jobs: local executor's parallel runs (CPU threads are divided between them).
        ray_address: Ray cluster address (None: start or join a local instance).
        cpus_per_run, gpus_per_run: Ray resources per run.
        on_result: called as each point completes (progress reporting).
        resolved: ``resolve_points(config, grid, fixed, output_dir)`` when the caller has it already (the CLI
            prints the plan first), so the points are not checked twice.
        storage, lease_seconds, retries: see ``run_points``.

    Returns:
        One ``PointResult`` per point: finished, skipped (finished before), running (another live process
        trains it: not started again) or failed (``error`` says why).

    Raises:
        ConfigError: a bad grid or a point that does not check out (before anything runs).
    """
    if executor not in ("local", "ray"):
        raise ConfigError(f"executor {executor!r} is unknown; use local or ray.")
    if jobs < 1:
        raise ConfigError(f"jobs={jobs} must be at least 1.")
    points, configs, out = resolved if resolved is not None else resolve_points(config, grid, fixed, output_dir)
    return run_points(points, configs, out, executor=executor, jobs=jobs, ray_address=ray_address,
                      cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, on_result=on_result,
                      manifest={"config": str(config), "grid": grid, "fixed": list(fixed)}, storage=storage,
                      lease_seconds=lease_seconds, retries=retries)


def run_points(points: Sequence[SweepPoint], configs: Sequence[dict[str, Any]], out: Path, *,
               executor: str = "local", jobs: int = 1, ray_address: str | None = None, cpus_per_run: float = 1,
               gpus_per_run: float = 0, on_result: Callable[[PointResult], None] | None = None,
               on_start: Callable[[SweepPoint], None] | None = None,
               manifest: dict[str, Any] | None = None, storage: str | None = None, lease_seconds: float = 60.0,
               retries: int = 3) -> list[PointResult]:
    """Runs already resolved points (each its own full config, e.g. one per config file of a study).

    ``run_sweep`` is this after expanding a grid; ``robustft demo`` / ``reproduce`` call it with one config file per
    strategy or schedule. ``on_start`` is called when a point begins (local executor; Ray: when submitted).
    ``manifest`` entries are written into ``out/sweep.json`` beside the points' statuses.

    Ray only: ``storage`` is a store URI (``s3://bucket/sweep``, ``file:///shared/sweep``) the runs are written to
    instead of ``out`` (``robustft.sweep.store_run``; finished ones are copied back into ``out``), ``lease_seconds``
    how long a run's owner may go silent before another node takes the run over, ``retries`` how many times Ray
    retries a run whose worker or node died.

    Returns:
        One result per point, in the order given.

    Raises:
        SweepInterrupted: SIGINT, SIGTERM or SIGHUP arrived (``robustft.sweep.interrupt``): no point was started
            after it, the running ones were stopped (local: SIGINT, then SIGTERM and SIGKILL if they linger; Ray:
            ``ray.cancel``), and ``sweep.json`` records every point's state (``interrupted`` / ``pending`` for
            those the next invocation runs); the exception carries the results.
    """
    if executor not in ("local", "ray"):
        raise ConfigError(f"executor {executor!r} is unknown; use local or ray.")
    if jobs < 1:
        raise ConfigError(f"jobs={jobs} must be at least 1.")
    if storage is not None and executor != "ray":
        raise ConfigError(f"storage={storage!r} is for runs spread over a Ray cluster; add --executor ray, or drop "
                          "--storage and write the runs into --output-dir.")
    store = None if storage is None else {"uri": storage, "lease_seconds": float(lease_seconds)}
    if store is not None:
        RunStore(storage)  # a bad URI or a missing fsspec implementation fails before Ray starts
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, PointResult] = {}
    path = out / "sweep.json"
    meta = dict(manifest or {})

    def record(result: PointResult, point: SweepPoint, report: bool = True) -> None:
        result.overrides = list(point.overrides)
        results[point.name] = result
        write_manifest(path, meta, [results.get(p.name) for p in points], points, out)
        if on_result is not None and report:
            on_result(result)

    def interrupted(signals: StopSignals) -> SweepInterrupted:
        for point in points:  # never reached: pending (not passed to on_result: nothing ran)
            if point.name not in results:
                results[point.name] = PointResult(point.name, list(point.overrides), str(out / point.name),
                                                  STATUS_PENDING)
        write_manifest(path, meta, [results[p.name] for p in points], points, out)
        return SweepInterrupted(signals.signum or 0, [results[p.name] for p in points], path, executor)

    def start_local(cfg: dict[str, Any], point: SweepPoint, threads: int | None) -> PointResult:
        if CHILDREN.stopping:
            return PointResult(point.name, [], str(out / point.name), STATUS_PENDING)
        if on_start is not None:
            on_start(point)
        return run_point_subprocess(cfg, out / point.name, threads)

    write_manifest(path, meta, [None] * len(points), points, out)
    if executor == "local":
        threads = max(1, (os.cpu_count() or 1) // jobs)
        CHILDREN.reset()
        try:
            # StopSignals outermost: its handlers stay until the pool has shut down.
            with StopSignals(on_signal=CHILDREN.refuse) as signals, ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(start_local, cfg, p, threads if jobs > 1 else None): p
                           for p, cfg in zip(points, configs, strict=True)}
                waiting: set[Future] = set(futures)
                while waiting and not signals.requested:
                    done, waiting = wait(waiting, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=list(futures).index):
                        record(future.result(), futures[future])
                if signals.requested:
                    for future in waiting:
                        future.cancel()  # queued: never started; running: cannot be cancelled, stopped below
                    CHILDREN.stop(hurried=lambda: signals.hurried)
                    for future in [f for f in futures if f in waiting and not f.cancelled()]:
                        result = future.result()  # returns promptly: its child has exited or never started
                        record(result, futures[future], report=result.status != STATUS_PENDING)
                    raise interrupted(signals)
        finally:
            CHILDREN.reset()
    else:
        # before StopSignals: see ray_remote
        remote = ray_remote(run_point_inprocess if store is None else run_point_stored, ray_address, cpus_per_run,
                            gpus_per_run, retries)
        with StopSignals() as signals:
            if on_start is not None:
                for point in points:
                    on_start(point)
            for result, point in run_with_ray(remote, list(points), list(configs), out, signals, store):
                record(result, point, report=result.status != STATUS_PENDING)
            if signals.requested:
                raise interrupted(signals)
    return [results[p.name] for p in points]
