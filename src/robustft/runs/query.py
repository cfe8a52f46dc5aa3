"""Queries across many run directories: find them, load their metrics with config columns, or run DuckDB SQL.

Split from ``runs.py`` (one run directory) because this half is about analysis, not about writing safely.
"""

from __future__ import annotations

import glob as _glob
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robustft.config.coerce import parse_eps_text
from robustft.errors import RobustftError
from robustft.runs.outcomes import LONG_COLUMNS, outcome_rows
from robustft.runs.records import METRIC_FIELDS, sql_type
from robustft.runs.run_dir import CONFIG_FILE, RunDir, RunNotFoundError, read_metrics

# The DuckDB types of the record's fields, derived from the one schema (robustft.runs.records).
_DUCKDB_COLUMNS = {name: sql_type(name) for name in METRIC_FIELDS}


def find_run_dirs(paths_or_glob: str | Path | Sequence[str | Path]) -> list[Path]:
    """Run directories named by paths, globs, or parents of runs (searched recursively), sorted, unique.

    Raises:
        RunNotFoundError: nothing matched.
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, Path)) else list(paths_or_glob)
    found: dict[Path, None] = {}
    for item in items:
        text = str(item)
        candidates = [Path(p) for p in sorted(_glob.glob(text, recursive=True))] if _glob.has_magic(text) else [
            Path(text)
        ]
        for candidate in candidates:
            if (candidate / CONFIG_FILE).is_file():
                found[candidate] = None
            elif candidate.is_dir():
                for config in sorted(candidate.rglob(CONFIG_FILE)):
                    found[config.parent] = None
    if not found:
        raise RunNotFoundError(
            f"no run directories (folders with {CONFIG_FILE}) match {paths_or_glob!r}; pass run directories, "
            "their parent (e.g. runs/) or a glob like 'runs/*'."
        )
    return list(found)


def run_columns(run: RunDir) -> dict[str, Any]:
    """One row describing a run from its config: what the analysis groups by."""
    config = run.config
    section = lambda key: config.get(key) if isinstance(config.get(key), dict) else {}  # noqa: E731
    eps, objective = section("eps"), section("objective")
    eps_value = eps.get("value")
    try:
        eps_float = parse_eps_text(eps_value, "eps.value") if eps_value is not None else None
    except RobustftError:
        eps_float = None
    if objective.get("name", "standard") == "standard" or eps.get("schedule") == "zero":
        # eps.value is only eps_g of an adversarial objective: a standard run (or the zero schedule) trains at 0.
        eps_float = 0.0
    return {
        "run": run.name,
        "path": str(run.path),
        "model": section("model").get("name"),
        "dataset": section("data").get("name"),
        "strategy": section("strategy").get("name"),
        "objective": objective.get("name"),
        "eps_schedule": eps.get("schedule"),
        "eps_train": eps_float,
        "lr": section("optim").get("lr"),
        "seed": config.get("seed"),
    }


def load_runs(paths_or_glob: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Every run's metrics joined with its config columns (run, model, dataset, strategy, objective, ...)."""
    frames = []
    for path in find_run_dirs(paths_or_glob):
        run = RunDir(path)
        metrics = read_metrics(run.path)
        for key, value in run_columns(run).items():
            metrics.insert(len(metrics.columns), key, [value] * len(metrics))
        frames.append(metrics)
    return pd.concat(frames, ignore_index=True)


def query_runs(paths_or_glob: str | Path | Sequence[str | Path], sql: str) -> pd.DataFrame:
    """Runs ``sql`` in DuckDB over the runs' metrics.

    Two views are defined: ``metrics`` (METRIC_FIELDS + ``run`` and ``path``, read with DuckDB's read_json
    straight from each metrics.jsonl; ``extra`` is JSON) and ``runs`` (one row per run: run, path, model,
    dataset, strategy, objective, eps_schedule, eps_train (eps_g, the largest training eps; 0 for a standard
    run or the zero schedule), lr, seed). A third, ``outcomes`` (run, path, step, split, metric, attack, eps,
    image_id, correct: one row per evaluated image, from each outcomes.bin), is materialised only when ``sql``
    names it, as it holds one row per image. Example::

        query_runs("runs/*", "SELECT run, max(value) FROM metrics WHERE metric = 'robust_accuracy' GROUP BY run")
        query_runs("runs/*", "SELECT image_id, count(*) FROM outcomes WHERE NOT correct GROUP BY image_id")

    Raises:
        RunNotFoundError: no run matched.
        RobustftError: the SQL failed (the message has DuckDB's explanation).
    """
    import duckdb

    dirs = find_run_dirs(paths_or_glob)
    runs = pd.DataFrame([run_columns(RunDir(p)) for p in dirs])
    connection = duckdb.connect()
    try:
        connection.register("runs_frame", runs)
        connection.execute("CREATE VIEW runs AS SELECT * FROM runs_frame")
        files = [str(RunDir(p).metrics_path) for p in dirs if RunDir(p).metrics_path.is_file()]
        if files:
            struct = "{" + ", ".join(f"'{n}': '{k}'" for n, k in _DUCKDB_COLUMNS.items()) + "}"
            file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
            # ignore_errors skips a torn last line of a crashed (or still running) writer without touching it.
            connection.execute(
                f"CREATE VIEW metrics AS SELECT {', '.join(_DUCKDB_COLUMNS)}, "
                "regexp_extract(filename, '([^/\\\\]+)[/\\\\]metrics\\.jsonl$', 1) AS run, "
                "regexp_replace(filename, '[/\\\\]metrics\\.jsonl$', '') AS path "
                f"FROM read_json({file_list}, format='newline_delimited', columns={struct}, filename=true, "
                "ignore_errors=true) WHERE step IS NOT NULL AND metric IS NOT NULL"
            )
        else:
            empty = ", ".join(f"NULL::{kind} AS {name}" for name, kind in _DUCKDB_COLUMNS.items())
            connection.execute(f"CREATE VIEW metrics AS SELECT {empty}, NULL::VARCHAR AS run, "
                               "NULL::VARCHAR AS path WHERE false")
        if re.search(r"\boutcomes\b", sql, flags=re.IGNORECASE):
            connection.register("outcomes_frame", outcome_frame(dirs))
            connection.execute("CREATE VIEW outcomes AS SELECT * FROM outcomes_frame")
        try:
            return connection.execute(sql).df()
        except duckdb.Error as error:
            raise RobustftError(
                f"the query failed: {error}. Tables: metrics({', '.join(METRIC_FIELDS)}, run, path), "
                "runs(run, path, model, dataset, strategy, objective, eps_schedule, eps_train, lr, seed) and "
                f"outcomes(run, path, {', '.join(LONG_COLUMNS)})."
            ) from None
    finally:
        connection.close()


def outcome_frame(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """The per-image outcomes of the runs in ``dirs``: columns run, path and ``outcomes.LONG_COLUMNS``, one row per
    evaluated image (runs written before outcomes were recorded contribute none)."""
    frames = []
    for path in dirs:
        run = RunDir(path)
        rows = outcome_rows(run.read_outcomes())
        rows.insert(0, "path", str(run.path))
        rows.insert(0, "run", run.name)
        frames.append(rows)
    if not frames:
        return outcome_rows([]).assign(run=pd.Series(dtype=object), path=pd.Series(dtype=object))[
            ["run", "path", *LONG_COLUMNS]]
    return pd.concat(frames, ignore_index=True)
