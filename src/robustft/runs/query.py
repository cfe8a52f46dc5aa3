"""Queries across many runs: their metrics joined with config columns, or SQL (DuckDB) over metrics, runs and outcomes.

Runs are loaded and named by the one loader, :func:`robustft.runs.load_runs` (``runs.collection``): a ``run`` column
is the run's name there (the folder name, with parent folders where two runs share one), ``path`` its resolved
directory (its stable id).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robustft.config.coerce import parse_eps_text
from robustft.errors import RobustftError
from robustft.runs.collection import RunSource, load_runs
from robustft.runs.outcomes import LONG_COLUMNS, outcome_rows
from robustft.runs.records import METRIC_FIELDS, sql_type
from robustft.runs.run_dir import Run

# The DuckDB types of the record's fields, derived from the one schema (robustft.runs.records).
_DUCKDB_COLUMNS = {name: sql_type(name) for name in METRIC_FIELDS}


def run_columns(run: Run) -> dict[str, Any]:
    """One row describing a run from its config: what the analysis groups by. ``run`` is the run's name (unique
    among runs loaded together, ``load_runs``), ``path`` the resolved directory (its id)."""
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
        "path": str(Path(run.path).resolve()),
        "model": section("model").get("name"),
        "dataset": section("data").get("name"),
        "strategy": section("strategy").get("name"),
        "objective": objective.get("name"),
        "eps_schedule": eps.get("schedule"),
        "eps_train": eps_float,
        "lr": section("optim").get("lr"),
        "seed": config.get("seed"),
    }


def metrics_frame(paths_or_glob: RunSource | Sequence[RunSource]) -> pd.DataFrame:
    """Every run's metrics (``load_runs``) joined with its config columns (:func:`run_columns`: run, path, model,
    dataset, strategy, objective, ...).

    Raises:
        RunNotFoundError: no run matched.
    """
    frames = []
    for run in load_runs(paths_or_glob):
        metrics = run.metrics.copy()
        for key, value in run_columns(run).items():
            metrics.insert(len(metrics.columns), key, [value] * len(metrics))
        frames.append(metrics)
    return pd.concat(frames, ignore_index=True)


def query_runs(paths_or_glob: RunSource | Sequence[RunSource], sql: str) -> pd.DataFrame:
    """Runs ``sql`` in DuckDB over the runs' metrics.

    Two views are defined: ``metrics`` (METRIC_FIELDS + ``run`` and ``path``, read with DuckDB's read_json
    straight from each metrics.jsonl; ``extra`` is JSON) and ``runs`` (one row per run: run, path, model,
    dataset, strategy, objective, eps_schedule, eps_train (eps_g, the largest training eps; 0 for a standard
    run or the zero schedule), lr, seed). ``run`` is the folder name, with as many parent folders as it takes to
    tell runs of the same name apart (``collection.unique_names``: two studies' ``a-full`` are ``demo1/a-full`` and
    ``demo2/a-full``, so ``GROUP BY run`` keeps them apart); ``path`` is the resolved run directory. A third view,
    ``outcomes`` (run, path, step, split, metric, attack, eps, image_id, correct: one row per evaluated image, from
    each outcomes.bin), is materialised only when ``sql`` names it, as it holds one row per image. Example::

        query_runs("runs/*", "SELECT run, max(value) FROM metrics WHERE metric = 'robust_accuracy' GROUP BY run")
        query_runs("runs/*", "SELECT image_id, count(*) FROM outcomes WHERE NOT correct GROUP BY image_id")

    Raises:
        RunNotFoundError: no run matched.
        RobustftError: the SQL failed (the message has DuckDB's explanation).
    """
    import duckdb

    loaded = load_runs(paths_or_glob)  # reads configs only: metrics are read by DuckDB, outcomes if asked
    runs = pd.DataFrame([run_columns(run) for run in loaded])
    connection = duckdb.connect()
    try:
        connection.register("runs_frame", runs)
        connection.execute("CREATE VIEW runs AS SELECT * FROM runs_frame")
        # Each metrics file's run and path come from the runs view (not from the file's folder name, which two
        # studies' runs can share).
        owners = pd.DataFrame([{"file": str(run.metrics_path), "run": row["run"], "path": row["path"]}
                               for run, row in zip(loaded, runs.to_dict("records"), strict=True)
                               if run.metrics_path.is_file()], columns=["file", "run", "path"])
        files = list(owners["file"])
        if files:
            connection.register("owners_frame", owners)
            struct = "{" + ", ".join(f"'{n}': '{k}'" for n, k in _DUCKDB_COLUMNS.items()) + "}"
            file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
            # ignore_errors skips a torn last line of a crashed (or still running) writer without touching it.
            connection.execute(
                f"CREATE VIEW metrics AS SELECT {', '.join('m.' + c for c in _DUCKDB_COLUMNS)}, o.run, o.path "
                f"FROM read_json({file_list}, format='newline_delimited', columns={struct}, filename=true, "
                "ignore_errors=true) AS m JOIN owners_frame AS o ON m.filename = o.file "
                "WHERE m.step IS NOT NULL AND m.metric IS NOT NULL"
            )
        else:
            empty = ", ".join(f"NULL::{kind} AS {name}" for name, kind in _DUCKDB_COLUMNS.items())
            connection.execute(f"CREATE VIEW metrics AS SELECT {empty}, NULL::VARCHAR AS run, "
                               "NULL::VARCHAR AS path WHERE false")
        if re.search(r"\boutcomes\b", sql, flags=re.IGNORECASE):
            connection.register("outcomes_frame", outcome_frame(loaded))
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


def outcome_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The per-image outcomes of ``runs``: columns run (the run's name), path (resolved) and ``outcomes.LONG_COLUMNS``,
    one row per evaluated image (runs written before outcomes were recorded contribute none)."""
    frames = []
    for run in runs:
        rows = outcome_rows(run.read_outcomes())
        rows.insert(0, "path", str(Path(run.path).resolve()))
        rows.insert(0, "run", run.name)
        frames.append(rows)
    if not frames:
        return outcome_rows([]).assign(run=pd.Series(dtype=object), path=pd.Series(dtype=object))[
            ["run", "path", *LONG_COLUMNS]]
    return pd.concat(frames, ignore_index=True)
