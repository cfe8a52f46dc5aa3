"""Turns run directories (``runs.py`` layout) into the ``RunRecord``s the report draws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from robustft.report.html import RunRecord
from robustft.runs import METRIC_FIELDS, RunDir, find_run_dirs


def collect_runs(paths_or_glob: str | Path | Sequence[str | Path]) -> list[RunRecord]:
    """Loads every run under the given paths / globs (config, summary, metrics), sorted by path.

    Raises:
        RunNotFoundError: nothing matched (the message says what to pass).
    """
    records = []
    for path in find_run_dirs(paths_or_glob):
        run = RunDir(path)
        metrics = pd.DataFrame(run.read_records(), columns=list(METRIC_FIELDS))
        records.append(RunRecord(run.name, run.config, run.read_summary() or {}, metrics, path=run.path))
    return records
