"""Runs: the one run type (:class:`Run`: directory, config, summary, metrics, per-sample outcomes, read lazily) and
its one loader (:func:`load_runs`), the one record schema, the append-only metrics and per-sample outcome files,
checkpoints, the one-writer lock, and DuckDB queries across runs.

Storage only: nothing here imports the models or the strategies (tests/test_layering.py). Rebuilding a trained
model from its checkpoint and exporting it are ``robustft.strategies.restore`` and ``robustft.strategies.export``.

``checkpoints`` needs torch, which ``import robustft.runs`` does not load: a sweep's parent process imports this
package (the lock, the metrics file) and runs no model. It is a submodule like the others all the same:
``robustft.runs.checkpoints.load_checkpoint(...)`` works after ``import robustft`` alone, whatever was imported
before, through the module ``__getattr__`` below, which imports only this named submodule of this package
(PEP 562; it hides no import cycle, tests/test_layering.py).
"""

from robustft.runs.collection import find_run_dirs, load_runs
from robustft.runs.lock import RunLockedError
from robustft.runs.metrics_file import (
    MetricRecordError,
    MetricsWriter,
    RunWriteError,
    atomic_write_text,
    normalize_record,
    read_records,
    repair_jsonl,
)
from robustft.runs.outcomes import OutcomeBlock, OutcomesWriter
from robustft.runs.query import metrics_frame, query_runs, run_columns
from robustft.runs.records import METRIC_FIELDS
from robustft.runs.run_dir import Run, RunExistsError, RunNotFoundError, read_metrics, read_outcomes

__all__ = [
    "METRIC_FIELDS", "MetricRecordError", "MetricsWriter", "OutcomeBlock", "OutcomesWriter", "Run",
    "RunExistsError", "RunLockedError", "RunNotFoundError", "RunWriteError", "atomic_write_text", "find_run_dirs",
    "load_runs", "metrics_frame", "normalize_record", "query_runs", "read_metrics", "read_outcomes", "read_records",
    "repair_jsonl", "run_columns",
]

# Submodules reached as attributes on first use (they import torch); see the module docstring.
LAZY_SUBMODULES: tuple[str, ...] = ("checkpoints",)


def __getattr__(name: str) -> object:
    if name in LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"robustft.runs.{name}")
    raise AttributeError(f"module 'robustft.runs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY_SUBMODULES})
