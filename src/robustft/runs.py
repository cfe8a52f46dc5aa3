"""Run directories: self-describing, append-only, atomic, resumable; DuckDB queries across many runs.

Layout of ``output_dir/name``::

    config.yaml      the resolved config (written once, atomically)
    env.json         python/torch/robustft versions, git sha, device, seed, hostname, start time
    metrics.jsonl    one record per line in long form (METRIC_FIELDS), appended one evaluation point at a time
    checkpoints/     last.pt, best.pt, step_<N>.pt (robustft.checkpoint)
    summary.json     detections and final numbers (robustft.detection.summarize), rewritten atomically

Durability: a batch of records is one ``os.write`` followed by ``fsync``; a crash can at worst leave a torn
last line, which the next writer detects and cuts off. ``truncate_metrics_after(step)`` rewrites the file
(temp + fsync + rename) so a resumed run neither loses nor duplicates records. Non-finite values (a NaN loss)
are written as ``null`` with the original in ``extra.value`` because JSON has no NaN.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import glob as _glob
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from robustft.errors import RobustftError

__all__ = [
    "METRIC_FIELDS",
    "MetricRecordError",
    "MetricsWriter",
    "RunDir",
    "RunExistsError",
    "RunNotFoundError",
    "RunWriteError",
    "find_run_dirs",
    "load_runs",
    "query_runs",
    "read_metrics",
]

CONFIG_FILE, ENV_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINTS_DIR = (
    "config.yaml",
    "env.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoints",
)

# field -> (accepted Python types, required). Order is the column order of every line and DataFrame.
METRIC_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "step": ((int,), True),
    "epoch": ((int, float), True),
    "split": ((str,), True),  # train | val | test | ood:<name> | optim
    "metric": ((str,), True),  # accuracy | robust_accuracy | expected_robustness | loss | eps_train | lr | check:*
    "attack": ((str, type(None)), False),  # null for clean metrics
    "eps": ((int, float, type(None)), False),
    "value": ((int, float, type(None)), True),
    "n": ((int, type(None)), False),
    "ci_low": ((int, float, type(None)), False),
    "ci_high": ((int, float, type(None)), False),
    "time": ((int, float, type(None)), False),  # seconds since the run started
    "extra": ((dict, type(None)), False),
}

_SPLITS = ("train", "val", "test", "optim")

# DuckDB column types for read_json (explicit, so runs with different ``extra`` keys share one schema).
_DUCKDB_COLUMNS = {
    "step": "BIGINT",
    "epoch": "DOUBLE",
    "split": "VARCHAR",
    "metric": "VARCHAR",
    "attack": "VARCHAR",
    "eps": "DOUBLE",
    "value": "DOUBLE",
    "n": "BIGINT",
    "ci_low": "DOUBLE",
    "ci_high": "DOUBLE",
    "time": "DOUBLE",
    "extra": "JSON",
}


class RunExistsError(RobustftError, FileExistsError):
    """The run directory exists already (resume it or pick another name)."""


class RunNotFoundError(RobustftError, FileNotFoundError):
    """The path is not a run directory."""


class RunWriteError(RobustftError, OSError):
    """Writing into a run directory failed (disk full, permissions); what was written before is intact."""


class MetricRecordError(RobustftError, ValueError):
    """A metrics record that does not follow METRIC_FIELDS (a bug in the code writing it)."""


def _write_error(path: Path, error: OSError) -> RunWriteError:
    if error.errno == errno.ENOSPC:
        fix = "free disk space (or set output_dir to another disk) and resume with `robustft train --resume RUN_DIR`"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the directory writable or choose another output_dir"
    else:
        fix = "check the disk and the path, then resume with `robustft train --resume RUN_DIR`"
    return RunWriteError(f"cannot write {path}: {error.strerror or error}. Records written before are intact; {fix}.")


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` via a temp file in the same directory, fsync and rename."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, error) from None


def _json_default(value: Any) -> Any:
    # numpy scalars, tensors with one element, paths
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    """Validates a record against METRIC_FIELDS and returns it with every field, in order.

    numpy/torch scalars become Python numbers; a non-finite value becomes null with ``extra.value`` = "nan",
    "inf" or "-inf".

    Raises:
        MetricRecordError: unknown or missing field, or a value of the wrong type.
    """
    unknown = set(record) - set(METRIC_FIELDS)
    if unknown:
        raise MetricRecordError(f"metric record has unknown fields {sorted(unknown)}; valid: {list(METRIC_FIELDS)}.")
    out: dict[str, Any] = {}
    for name, (accepted, required) in METRIC_FIELDS.items():
        if name not in record:
            if required:
                raise MetricRecordError(f"metric record {record!r} lacks the required field {name!r}.")
            out[name] = None
            continue
        value = record[name]
        if hasattr(value, "item") and not isinstance(value, (dict, str)):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise MetricRecordError(
                f"metric record field {name}={value!r} has type {type(value).__name__}; expected "
                f"{' or '.join(t.__name__ for t in accepted)}."
            )
        out[name] = value
    if out["step"] < 0:
        raise MetricRecordError(f"metric record step={out['step']} is negative.")
    split = out["split"]
    if split not in _SPLITS and not (split.startswith("ood:") and len(split) > 4):
        raise MetricRecordError(f"metric record split={split!r}; valid: {', '.join(_SPLITS)} or ood:<name>.")
    if not out["metric"]:
        raise MetricRecordError("metric record has an empty metric name.")
    for name in ("value", "eps", "ci_low", "ci_high"):
        value = out[name]
        if isinstance(value, float) and not math.isfinite(value):
            extra = dict(out["extra"] or {})
            extra[name] = "nan" if value != value else ("inf" if value > 0 else "-inf")
            out["extra"], out[name] = extra, None
    return out


class MetricsWriter:
    """Appends metric records to ``metrics.jsonl``: one ``write`` call per evaluation point, then fsync.

    Opening repairs a torn last line (a crash mid-write) by truncating the file to its last complete line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.repaired_bytes = repair_jsonl(self.path)

    def write(self, records: Iterable[dict[str, Any]]) -> int:
        """Validates and appends ``records`` durably; returns how many were written.

        Raises:
            MetricRecordError: a malformed record (nothing of the batch is written).
            RunWriteError: disk full / permission denied; the file is cut back to its previous length.
        """
        lines = [json.dumps(normalize_record(dict(r)), default=_json_default, allow_nan=False) for r in records]
        if not lines:
            return 0
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise _write_error(self.path, error) from None
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError as error:
                with contextlib.suppress(OSError):  # best effort: leave no partial batch behind
                    os.ftruncate(fd, start)
                raise _write_error(self.path, error) from None
        finally:
            os.close(fd)
        return len(lines)

    def close(self) -> None:
        """Nothing is held open between batches; present so the writer can be used like a file."""

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def repair_jsonl(path: Path) -> int:
    """Cuts a torn (unterminated or unparsable) last line off a JSONL file; returns the bytes removed.

    Reads only the tail of the file (the last line), so opening a writer stays cheap for long runs.
    """
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as handle:
        window = 1 << 16
        while True:  # grow the tail window until it holds the start of the last line
            start = max(0, size - window)
            handle.seek(start)
            tail = handle.read()
            cut = tail.rfind(b"\n", 0, len(tail) - 1)
            if cut >= 0 or start == 0:
                break
            window *= 4
    last_start = start + cut + 1
    last = tail[cut + 1:]
    keep = size
    if not last.endswith(b"\n"):
        keep = last_start
    elif last.strip():
        # A complete-looking last line can still be garbage (a crash after a partial block was flushed).
        try:
            json.loads(last)
        except ValueError:
            keep = last_start
    if keep == size:
        return 0
    try:
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise _write_error(path, error) from None
    return size - keep


def _environment(config: dict[str, Any], device: str | None) -> dict[str, Any]:
    # Package metadata, not imports: importing transformers just to record its version costs seconds.
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("robustft", "torch", "torchvision", "timm", "numpy", "peft", "transformers"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    torch = sys.modules.get("torch")  # the trainer has imported it; analysis tools need not
    return {
        "versions": versions,
        "git_sha": _git_sha(),
        "device": device or config.get("device"),
        "cuda_available": bool(torch.cuda.is_available()) if torch is not None else None,
        "seed": config.get("seed"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _git_sha() -> str | None:
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class RunDir:
    """One run directory. Create with :meth:`create`, reopen (resume, analysis) with :meth:`open`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def env_path(self) -> Path:
        return self.path / ENV_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config as a plain dict (``robustft.config.from_dict`` turns it back into a Config)."""
        try:
            loaded = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise RunNotFoundError(f"cannot read {self.config_path}: {error}. Is {self.path} a robustft run?") from None
        return loaded if isinstance(loaded, dict) else {}

    @property
    def env(self) -> dict[str, Any]:
        try:
            return json.loads(self.env_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @classmethod
    def create(
        cls, path: str | Path, config: dict[str, Any], exist_ok: bool = False, device: str | None = None
    ) -> RunDir:
        """Creates the run directory with its config.yaml, env.json and checkpoints/.

        Args:
            path: ``output_dir / name``.
            config: the resolved config as a plain dict (``robustft.config.to_dict``).
            exist_ok: allow an existing directory (its metrics, summary and checkpoints are kept).
            device: the resolved device, recorded in env.json.

        Raises:
            RunExistsError: the directory exists and is not empty, and ``exist_ok`` is false.
            RunWriteError: the directory cannot be created or written.
        """
        run = cls(path)
        try:
            run.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                run.path.mkdir(exist_ok=False)
            except FileExistsError:
                if not run.path.is_dir():
                    raise RunExistsError(f"{run.path} exists and is a file; choose another run name.") from None
                if not exist_ok and any(run.path.iterdir()):
                    raise RunExistsError(
                        f"run directory {run.path} exists already. Continue it with `robustft train --resume "
                        f"{run.path}`, or choose another name (name=... ) or output_dir."
                    ) from None
            run.checkpoints_dir.mkdir(exist_ok=True)
        except OSError as error:
            if isinstance(error, RobustftError):
                raise
            raise _write_error(run.path, error) from None
        try:
            text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
        except yaml.YAMLError as error:
            raise RobustftError(
                f"the config for {run.path} is not plain YAML data ({error}); pass robustft.config.to_dict(cfg)."
            ) from None
        atomic_write_text(run.config_path, text)
        env = _environment(config, device)
        atomic_write_text(run.env_path, json.dumps(env, indent=2, default=_json_default) + "\n")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Opens an existing run directory (one with config.yaml).

        Raises:
            RunNotFoundError: missing path, or a directory that is not a robustft run.
        """
        run = cls(path)
        if not run.path.exists():
            raise RunNotFoundError(f"run directory {run.path} does not exist; pass the directory a run wrote.")
        if not run.path.is_dir() or not run.config_path.is_file():
            raise RunNotFoundError(
                f"{run.path} is not a robustft run directory (no {CONFIG_FILE}); pass output_dir/name of a run "
                "written by `robustft train`."
            )
        return run

    def metrics_writer(self) -> MetricsWriter:
        """An appending writer for metrics.jsonl (repairs a torn last line first)."""
        return MetricsWriter(self.metrics_path)

    def read_records(self) -> list[dict[str, Any]]:
        """Every complete record of metrics.jsonl, in file order (a torn last line is ignored)."""
        return _read_records(self.metrics_path)

    def truncate_metrics_after(self, step: int) -> int:
        """Drops records with ``step > step`` (resume from a checkpoint at ``step``); returns how many were dropped.

        The file is rewritten atomically, so a crash during the rewrite leaves the old file whole.
        """
        if not self.metrics_path.is_file():
            return 0
        records = self.read_records()
        kept = [r for r in records if r.get("step", 0) <= step]
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept)
        atomic_write_text(self.metrics_path, text)
        return len(records) - len(kept)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Writes summary.json atomically (temp + fsync + rename)."""
        text = json.dumps(summary, indent=2, default=_json_default, allow_nan=False) + "\n"
        atomic_write_text(self.summary_path, text)
        return self.summary_path

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json as a dict, or None when the run has not written one."""
        if not self.summary_path.is_file():
            return None
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn last line of a crashed writer
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # never expected mid-file; skipping it keeps every later record
    return records


def read_metrics(run_path: str | Path) -> pd.DataFrame:
    """One run's metrics.jsonl as a DataFrame with the METRIC_FIELDS columns (empty when nothing was written)."""
    run = RunDir.open(run_path)
    frame = pd.DataFrame(run.read_records(), columns=list(METRIC_FIELDS))
    return frame


# ----------------------------------------------------------------------------------------------------------------
# Many runs


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
        from robustft.config_coerce import parse_eps_text

        eps_float = parse_eps_text(eps_value, "eps.value") if eps_value is not None else None
    except RobustftError:
        eps_float = None
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
        metrics = pd.DataFrame(run.read_records(), columns=list(METRIC_FIELDS))
        for key, value in run_columns(run).items():
            metrics.insert(len(metrics.columns), key, [value] * len(metrics))
        frames.append(metrics)
    return pd.concat(frames, ignore_index=True)


def query_runs(paths_or_glob: str | Path | Sequence[str | Path], sql: str) -> pd.DataFrame:
    """Runs ``sql`` in DuckDB over the runs' metrics.

    Two views are defined: ``metrics`` (METRIC_FIELDS + ``run`` and ``path``, read with DuckDB's read_json
    straight from each metrics.jsonl; ``extra`` is JSON) and ``runs`` (one row per run: run, path, model,
    dataset, strategy, objective, eps_schedule, eps_train, lr, seed). Example::

        query_runs("runs/*", "SELECT run, max(value) FROM metrics WHERE metric = 'robust_accuracy' GROUP BY run")

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
        try:
            return connection.execute(sql).df()
        except duckdb.Error as error:
            raise RobustftError(
                f"the query failed: {error}. Tables: metrics({', '.join(METRIC_FIELDS)}, run, path) and "
                "runs(run, path, model, dataset, strategy, objective, eps_schedule, eps_train, lr, seed)."
            ) from None
    finally:
        connection.close()
