"""Sweeps: a grid of overrides -> many runs, locally or on Ray, resumable; checks, status and studies."""

from robustft.sweep.expansion import resolve_points
from robustft.sweep.grid import SweepPoint, add_seed_axis, expand_grid, parse_grid, split_values
from robustft.sweep.interrupt import SweepInterrupted
from robustft.sweep.local_executor import run_point_subprocess
from robustft.sweep.manifest import (
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_PENDING,
    STATUS_RUNNING,
    STATUS_SKIPPED,
    PointResult,
)
from robustft.sweep.ray_executor import run_point_inprocess
from robustft.sweep.runner import run_points, run_sweep
from robustft.sweep.triage import prepare_run_dir

__all__ = [
    "PointResult", "STATUS_FAILED", "STATUS_FINISHED", "STATUS_INTERRUPTED", "STATUS_PENDING", "STATUS_RUNNING",
    "STATUS_SKIPPED", "SweepInterrupted", "SweepPoint", "add_seed_axis", "expand_grid", "parse_grid", "prepare_run_dir",
    "resolve_points", "run_point_inprocess", "run_point_subprocess", "run_points", "run_sweep", "split_values",
]
