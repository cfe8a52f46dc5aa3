"""Queries across many run directories: find them, name them, load their metrics with config columns, or run SQL.

Split from ``runs.py`` (one run directory) because this half is about analysis, not about writing safely.

A run's folder name is what a reader knows it by (``a-full``), but two studies have runs of the same name (two
demos' ``a-full``): grouped by folder name, their metrics would merge. :func:`unique_names` keeps the folder name
where it is unique and prefixes as many parent folders as it takes to tell the others apart (``demo1/a-full``,
``demo2/a-full``); the resolved directory is the run's stable id (the ``path`` column).
"""

from __future__ import annotations

import glob as _glob
import re
from collections import Counter
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
    """Run directories named by paths, globs, or parents of runs (searched recursively), sorted, unique (one
    directory named twice, however spelt, is listed once, as first found).

    Raises:
        RunNotFoundError: nothing matched.
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, Path)) else list(paths_or_glob)
    found: dict[Path, Path] = {}  # resolved -> as found
    for item in items:
        text = str(item)
        candidates = [Path(p) for p in sorted(_glob.glob(text, recursive=True))] if _glob.has_magic(text) else [
            Path(text)
        ]
        for candidate in candidates:
            if (candidate / CONFIG_FILE).is_file():
                found.setdefault(candidate.resolve(), candidate)
            elif candidate.is_dir():
                for config in sorted(candidate.rglob(CONFIG_FILE)):
                    found.setdefault(config.parent.resolve(), config.parent)
    if not found:
        raise RunNotFoundError(
            f"no run directories (folders with {CONFIG_FILE}) match {paths_or_glob!r}; pass run directories, "
            "their parent (e.g. runs/) or a glob like 'runs/*'."
        )
    return list(found.values())


def unique_names(paths: Sequence[str | Path]) -> list[str]:
    """For run directories (distinct once resolved), the shortest trailing part of each resolved path, in whole
    folders joined by ``/``, that no other of them shares: the folder name when it is unique, else
    ``<parent>/<name>`` (and further up as needed). In the order given."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        counts = Counter(names)
        clashing = [i for i, name in enumerate(names) if counts[name] > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return names
        for i in clashing:
            depth[i] += 1


def run_columns(run: RunDir, name: str | None = None) -> dict[str, Any]:
    """One row describing a run from its config: what the analysis groups by. ``run`` is ``name`` (default: the
    folder name; :func:`unique_names` when runs are read together), ``path`` the resolved directory (its id)."""
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
        "run": name or run.name,
        "path": str(run.path.resolve()),
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
    dirs = find_run_dirs(paths_or_glob)
    for path, name in zip(dirs, unique_names(dirs), strict=True):
        run = RunDir(path)
        metrics = read_metrics(run.path)
        for key, value in run_columns(run, name).items():
            metrics.insert(len(metrics.columns), key, [value] * len(metrics))
        frames.append(metrics)
    return pd.concat(frames, ignore_index=True)


def query_runs(paths_or_glob: str | Path | Sequence[str | Path], sql: str) -> pd.DataFrame:
    """Runs ``sql`` in DuckDB over the runs' metrics.

    Two views are defined: ``metrics`` (METRIC_FIELDS + ``run`` and ``path``, read with DuckDB's read_json
    straight from each metrics.jsonl; ``extra`` is JSON) and ``runs`` (one row per run: run, path, model,
    dataset, strategy, objective, eps_schedule, eps_train (eps_g, the largest training eps; 0 for a standard
    run or the zero schedule), lr, seed). ``run`` is the folder name, with as many parent folders as it takes to
    tell runs of the same name apart (:func:`unique_names`: two studies' ``a-full`` are ``demo1/a-full`` and
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

    dirs = find_run_dirs(paths_or_glob)
    runs = pd.DataFrame([run_columns(RunDir(p), name) for p, name in zip(dirs, unique_names(dirs), strict=True)])
    connection = duckdb.connect()
    try:
        connection.register("runs_frame", runs)
        connection.execute("CREATE VIEW runs AS SELECT * FROM runs_frame")
        # Each metrics file's run and path come from the runs view (not from the file's folder name, which two
        # studies' runs can share).
        owners = pd.DataFrame([{"file": str(RunDir(p).metrics_path), "run": row["run"], "path": row["path"]}
                               for p, row in zip(dirs, runs.to_dict("records"), strict=True)
                               if RunDir(p).metrics_path.is_file()], columns=["file", "run", "path"])
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
