"""Turns run directories (``robustft.runs`` layout) into the ``RunRecord``s the report draws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from robustft.report.html import RunRecord
from robustft.runs.query import find_run_dirs
from robustft.runs.run_dir import RunDir, read_metrics


def collect_runs(paths_or_glob: str | Path | Sequence[str | Path]) -> list[RunRecord]:
    """Loads every run under the given paths / globs (config, summary, metrics), sorted by path.

    Raises:
        RunNotFoundError: nothing matched (the message says what to pass).
    """
    records = []
    for path in find_run_dirs(paths_or_glob):
        run = RunDir(path)
        metrics = read_metrics(run.path)
        records.append(RunRecord(run.name, _config(run), run.read_summary() or {}, metrics, path=run.path))
    return records


# libyaml's safe loader when PyYAML has it: the pure-Python one spent 40 ms per resolved config, most of a
# 1,000-run report's loading time (bench/bench_report.py). Both are safe loaders: no object construction.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _config(run: RunDir) -> dict[str, Any]:
    """``run.config``, parsed with the fastest safe YAML loader available."""
    try:
        loaded = yaml.load(run.config_path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return run.config  # raises RunDir's error, which says what is wrong
    return loaded if isinstance(loaded, dict) else {}
