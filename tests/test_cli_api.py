"""The Python API the README shows: ``import robustft`` alone reaches every subpackage, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import robustft


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("name, attribute", [
    ("models", "build"), ("data", "load"), ("strategies", "apply"), ("attacks", "robust_accuracy"),
    ("analysis", "pareto_area"), ("runs", "query_runs"), ("report", "build_report"),
])
def test_subpackages_are_attributes_without_explicit_import(name, attribute):
    # A fresh interpreter: in this one an earlier test may already have imported the submodule.
    done = _run(f"import robustft; assert callable(robustft.{name}.{attribute})")
    assert done.returncode == 0, done.stderr


def test_import_robustft_stays_light():
    done = _run("import sys, robustft; print(sorted(m for m in ('torch', 'numpy', 'pandas', 'robustft.models') "
                "if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'modelz'"):
        robustft.modelz  # noqa: B018


def test_train_and_load_are_callable_at_top_level():
    done = _run("import robustft; import robustft.train as t; assert callable(robustft.train); "
                "assert callable(robustft.load); print(robustft.load.__module__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "robustft.checkpoint"
    assert {"models", "data", "attacks", "load", "train"} <= set(dir(robustft))
