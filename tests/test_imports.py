"""Modules split for size re-export each other's names; each must still import first, on its own."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["config", "config.files", "runs", "runs.query", "runs.metrics_file"])
def test_module_imports_on_its_own(module):
    done = subprocess.run([sys.executable, "-c", f"import robustft.{module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_reexports_resolve():
    from robustft.config import apply_overrides, load_config, merge_trees
    from robustft.runs import find_run_dirs, load_runs, metrics_frame, query_runs, run_columns

    assert all(callable(f) for f in (apply_overrides, load_config, merge_trees, find_run_dirs, load_runs,
                                     metrics_frame, query_runs, run_columns))


# CHANGELOG "Unreleased: moved and removed": the old names fail with ImportError, not only by convention.
MOVED = {"robustft.sweep.runner": ["resolve_points", "prepare_run_dir", "run_point_subprocess", "run_point_inprocess",
                                   "run_local", "run_with_ray"],
         "robustft.sweep.tune": ["Distribution", "check_search", "parse_search", "SCORE", "TuneResult"],
         "robustft.training.schedules": ["evaluation_schedule", "EvaluationSchedule", "evaluation_steps",
                                         "paper_a_evaluates", "PAPER_A_RULES", "parse_evaluation_spec"]}


@pytest.mark.parametrize("module", sorted(MOVED))
def test_the_moved_names_are_no_longer_importable_from_their_old_module(module):
    import importlib

    imported = importlib.import_module(module)
    assert [name for name in MOVED[module] if hasattr(imported, name)] == []
    with pytest.raises(ImportError):
        exec(f"from {module} import {MOVED[module][0]}", {})
