"""Run directories: the one record schema, the append-only metrics and per-sample outcome files, checkpoints, the
one-writer lock, and DuckDB queries across runs."""

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
from robustft.runs.query import find_run_dirs, load_runs, query_runs, run_columns
from robustft.runs.records import METRIC_FIELDS
from robustft.runs.run_dir import RunDir, RunExistsError, RunNotFoundError, read_metrics, read_outcomes

__all__ = [
    "METRIC_FIELDS", "MetricRecordError", "MetricsWriter", "OutcomeBlock", "OutcomesWriter", "RunDir",
    "RunExistsError", "RunLockedError", "RunNotFoundError", "RunWriteError", "atomic_write_text", "find_run_dirs",
    "load_runs", "normalize_record", "query_runs", "read_metrics", "read_outcomes", "read_records", "repair_jsonl",
    "run_columns",
]
