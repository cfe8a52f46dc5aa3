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
