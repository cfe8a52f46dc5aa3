"""Many run directories read together, for the report and the findings: config, summary and metrics of each, under
a readable name unique among them (``robustft.runs.query.unique_names``) and a stable id (the resolved directory).
``robustft report`` and ``analysis.findings`` read runs with :func:`read_runs`, so both take the same arguments (run
directories, a study's folder, ``runs/``, globs) and name the runs the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from robustft.runs.query import find_run_dirs, unique_names
from robustft.runs.run_dir import RunDir, read_metrics


@dataclass
class LoadedRun:
    """One run as analysis and the report read it.

    Attributes:
        name: readable and unique among the runs read together (:func:`unique_names`).
        path: the directory as found; run_id: its resolved path (stable, unique).
        config: the resolved config; summary: summary.json ({} before the run wrote one); metrics: the long-form
            records (``robustft.runs.records.METRIC_FIELDS`` columns).
    """

    name: str
    path: Path
    run_id: str
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: pd.DataFrame


def read_runs(paths_or_glob: str | Path | Sequence[str | Path]) -> list[LoadedRun]:
    """Every run under the given run directories, parents (a study's folder, ``runs/``) or globs, in the order of
    :func:`robustft.runs.query.find_run_dirs`.

    Raises:
        RunNotFoundError: nothing matched (the message says what to pass).
    """
    dirs = find_run_dirs(paths_or_glob)
    out = []
    for path, name in zip(dirs, unique_names(dirs), strict=True):
        run = RunDir(path)
        out.append(LoadedRun(name, path, str(path.resolve()), _config(run), run.read_summary() or {},
                             read_metrics(run.path)))
    return out


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
