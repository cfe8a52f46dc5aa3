"""Turns run directories (``robustft.runs`` layout) into the ``RunRecord``s the report draws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from robustft.report.html import RunRecord
from robustft.runs.collection import read_runs


def collect_runs(paths_or_glob: str | Path | Sequence[str | Path]) -> list[RunRecord]:
    """Loads every run under the given paths / globs (config, summary, metrics), sorted by path, each named by
    its folder, with parent folders where two runs share one (``robustft.runs.collection.read_runs``: the loader
    ``analysis.findings`` uses too).

    Raises:
        RunNotFoundError: nothing matched (the message says what to pass).
    """
    return [RunRecord(run.name, run.config, run.summary, run.metrics, path=run.path)
            for run in read_runs(paths_or_glob)]
