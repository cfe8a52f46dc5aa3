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

The module per concept: the grid and its run names (``robustft.sweep.grid``), resolving and checking the points
(``robustft.sweep.expansion``), deciding what to do with a run directory (``robustft.sweep.triage``), the local
executor (``robustft.sweep.local_executor``) and the Ray executor (``robustft.sweep.ray_executor``); here, the
driver that validates the options, records ``sweep.json`` and hands the points to one executor.

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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustft.errors import ConfigError
from robustft.runs.remote_store import RunStore

# The executors and the expansion as modules, not their names: this module re-exports nothing (an old
# ``from robustft.sweep.runner import resolve_points`` fails, as the CHANGELOG says).
from robustft.sweep import expansion, local_executor, ray_executor, store_run
from robustft.sweep.grid import SweepPoint
from robustft.sweep.interrupt import CHILDREN, StopSignals, SweepInterrupted
from robustft.sweep.manifest import STATUS_PENDING, PointResult, write_manifest


def run_sweep(config: str | Path, grid: dict[str, list[str]], *, fixed: Sequence[str] = (),
              output_dir: str | Path | None = None, executor: str = "local", jobs: int = 1,
              ray_address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
              on_result: Callable[[PointResult], None] | None = None,
              on_start: Callable[[SweepPoint], None] | None = None,
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
        on_result: called as each point completes (progress reporting); on_start: as each begins (``run_points``).
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
    if resolved is None:
        resolved = expansion.resolve_points(config, grid, fixed, output_dir)
    points, configs, out = resolved
    return run_points(points, configs, out, executor=executor, jobs=jobs, ray_address=ray_address,
                      cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, on_result=on_result, on_start=on_start,
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

    write_manifest(path, meta, [None] * len(points), points, out)
    if executor == "local":
        CHILDREN.reset()  # before StopSignals: a signal between the two would otherwise be forgotten
        try:
            # StopSignals outermost: its handlers stay until the executor's pool has shut down.
            with StopSignals(on_signal=CHILDREN.refuse) as signals:
                for result, point, report in local_executor.run_local(points, configs, out, signals, jobs, on_start):
                    record(result, point, report)
                if signals.requested:
                    raise interrupted(signals)
        finally:
            CHILDREN.reset()
    else:
        # before StopSignals: see ray_remote
        run_point = ray_executor.run_point_inprocess if store is None else store_run.run_point_stored
        remote = ray_executor.ray_remote(run_point, ray_address, cpus_per_run, gpus_per_run, retries)
        with StopSignals() as signals:
            if on_start is not None:
                for point in points:
                    on_start(point)
            for result, point in ray_executor.run_with_ray(remote, list(points), list(configs), out, signals, store):
                record(result, point, report=result.status != STATUS_PENDING)
            if signals.requested:
                raise interrupted(signals)
    return [results[p.name] for p in points]
