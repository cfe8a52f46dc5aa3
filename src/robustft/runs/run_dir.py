"""A run (:class:`Run`): its directory, self-describing, append-only, atomic, resumable, and what it holds.

Layout of ``output_dir/name``::

    config.yaml      the resolved config (written once, atomically)
    env.json         python/torch/robustft versions, git sha, device, seed, hostname, start time
    metrics.jsonl    one record per line in long form (METRIC_FIELDS), appended one evaluation point at a time
    outcomes.bin     per-image verdicts behind the accuracy records, bit-packed (robustft.runs.outcomes)
    checkpoints/     last.pt, best.pt, step_<N>.pt (robustft.runs.checkpoints)
    summary.json     detections and final numbers (robustft.analysis.diagnostics.summarize), rewritten atomically
    lock             held (flock) by the one process training the run; holds its pid/host/start while held

One writer: a training process holds ``lock`` (robustft.runs.lock) from before its first write until it returns, so
a second ``train``/``--resume``/sweep point on the same directory is refused at once, naming the holder. The kernel
releases the lock when the holder dies (kill -9), so a killed run resumes without clean-up.

Durability: a batch of records is one ``os.write`` followed by ``fsync``; a crash can at worst leave a torn
last line, which the next writer detects and cuts off. ``truncate_metrics_after(step)`` rewrites the file
(temp + fsync + rename) so a resumed run neither loses nor duplicates records; outcomes.bin follows the same rules
(``outcomes_writer``, ``truncate_outcomes_after``). Non-finite values (a NaN loss) are written as ``null`` with the
original in ``extra.value`` because JSON has no NaN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from robustft.errors import RobustftError
from robustft.runs.environment import environment
from robustft.runs.lock import LOCK_FILE, RunLock, lock_holder
from robustft.runs.metrics_file import (
    METRIC_FIELDS,
    MetricsWriter,
    _json_default,
    _write_error,
    atomic_write_text,
    read_records,
)
from robustft.runs.outcomes import (
    OUTCOMES_FILE,
    TABLE_COLUMNS,
    OutcomeBlock,
    OutcomesWriter,
    outcome_table,
    read_outcome_blocks,
    truncate_outcomes_after,
)

# libyaml's safe loader when there: the pure-Python one took most of a 1,000-run report's loading (bench_report.py).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONFIG_FILE, ENV_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINTS_DIR = (
    "config.yaml", "env.json", "metrics.jsonl", "summary.json", "checkpoints")


class RunExistsError(RobustftError, FileExistsError):
    """The run directory exists already (resume it or pick another name)."""


class RunNotFoundError(RobustftError, FileNotFoundError):
    """The path is not a run directory."""


class Run:
    """One run: its directory, resolved config, summary, metrics and per-image outcomes, each read from the directory
    on first use and kept (findings read outcomes.bin only for the runs they pair). The one type of a run: the trainer
    writes through it (:meth:`create`, the writers, :meth:`write_summary`); analysis, the report and queries read
    through it, loaded together by :func:`robustft.runs.load_runs`. Held in memory (tests, other tools): give
    ``name`` and the values, no ``path``; a value given (or set) is used instead of the file.

    Attributes:
        path: the directory (None for a run held in memory).
        name: readable and unique among runs loaded together (``load_runs``: the folder name, with parent folders
            where two runs share one); default: the folder name.
        labels: short labels the report shows (``report.html.describe`` when empty), set by who groups the runs.
        memo: values derived from the run by its readers (``analysis.findings_base``), kept with it; readers key
            them by what they depend on.
    """

    def __init__(self, path: str | Path | None = None, *, name: str | None = None,
                 config: Mapping[str, Any] | None = None, summary: Mapping[str, Any] | None = None,
                 metrics: pd.DataFrame | Iterable[Mapping[str, Any]] | None = None,
                 outcomes: pd.DataFrame | None = None, labels: Mapping[str, str] | None = None) -> None:
        if path is None and name is None:
            raise RobustftError("a run held in memory needs a name: Run(name=..., config=..., metrics=...); a run "
                                "on disk needs its directory: Run(path).")
        self.path = Path(path) if path is not None else None
        self.name = str(name) if name is not None else self.path.name  # type: ignore[union-attr]
        self.labels: dict[str, str] = dict(labels or {})
        self.memo: dict[tuple[Any, ...], Any] = {}
        self._lock: RunLock | None = None  # below: what was given or read from the directory; None: not read yet
        self._config = dict(config) if config is not None else None
        self._summary = dict(summary) if summary is not None else None
        self._metrics = None if metrics is None else (
            metrics if isinstance(metrics, pd.DataFrame) else pd.DataFrame(list(metrics), columns=list(METRIC_FIELDS)))
        self._outcomes = outcomes
        if self.path is None:  # nothing to read: what was not given is empty
            self._config = {} if self._config is None else self._config
            self._summary = {} if self._summary is None else self._summary
            self._metrics = pd.DataFrame(columns=list(METRIC_FIELDS)) if self._metrics is None else self._metrics
            self._outcomes = pd.DataFrame(columns=list(TABLE_COLUMNS)) if self._outcomes is None else self._outcomes

    @property
    def config_path(self) -> Path:
        return self._dir / CONFIG_FILE

    @property
    def env_path(self) -> Path:
        return self._dir / ENV_FILE

    @property
    def metrics_path(self) -> Path:
        return self._dir / METRICS_FILE

    @property
    def outcomes_path(self) -> Path:
        return self._dir / OUTCOMES_FILE

    @property
    def summary_path(self) -> Path:
        return self._dir / SUMMARY_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self._dir / CHECKPOINTS_DIR

    @property
    def _dir(self) -> Path:
        if self.path is None:
            raise RobustftError(f"run {self.name} is held in memory: it has no directory (Run.create writes one).")
        return self.path

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config as a plain dict (``robustft.config.from_dict`` makes it a Config), read once.

        Raises:
            RunNotFoundError: config.yaml is missing or not YAML (the message names the directory).
        """
        if self._config is None:
            try:
                loaded = yaml.load(self.config_path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
            except (OSError, yaml.YAMLError) as error:
                raise RunNotFoundError(f"cannot read {self.config_path}: {error}. Is {self.path} a robustft run?"
                                       ) from None
            self._config = loaded if isinstance(loaded, dict) else {}
        return self._config

    @config.setter
    def config(self, value: dict[str, Any]) -> None:  # setters: a run held in memory, changed (tests, other tools)
        self._config = value

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json, read once; {} while the run has not written one (it is still training, or was killed).

        Raises:
            RunNotFoundError: summary.json exists but is not a JSON object (the message names the run directory).
        """
        if self._summary is None:
            try:
                loaded = json.loads(self.summary_path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                loaded = {}
            except (OSError, ValueError) as error:  # ValueError: not JSON (UnicodeDecodeError is one too)
                loaded = error
            if not isinstance(loaded, dict):
                what = (f"is not valid JSON ({loaded})" if isinstance(loaded, ValueError)
                        else f"cannot be read ({loaded})" if isinstance(loaded, OSError) else "is not a JSON object")
                raise RunNotFoundError(
                    f"the summary of run {self.path} ({SUMMARY_FILE}) {what}. The trainer writes it whole "
                    "(atomically), so it was changed by hand or by another tool: restore it, or delete it to read "
                    "the run without its summary.")
            self._summary = loaded
        return self._summary

    @summary.setter
    def summary(self, value: dict[str, Any]) -> None:
        self._summary = value

    @property
    def metrics(self) -> pd.DataFrame:
        """metrics.jsonl as a DataFrame with the METRIC_FIELDS columns (:func:`read_metrics`), read on first use and
        kept: later appends are seen after :meth:`refresh`. Callers must not modify it."""
        if self._metrics is None:
            self._metrics = read_metrics(self._dir)
        return self._metrics

    @metrics.setter
    def metrics(self, value: pd.DataFrame) -> None:
        self._metrics = value

    @property
    def outcomes(self) -> pd.DataFrame:
        """The per-image outcomes as :func:`read_outcomes` returns them (empty for a run written before outcomes
        were recorded), read on first use and kept."""
        if self._outcomes is None:
            self._outcomes = read_outcomes(self._dir)
        return self._outcomes

    @outcomes.setter
    def outcomes(self, value: pd.DataFrame) -> None:
        self._outcomes = value

    def refresh(self) -> Run:
        """Forgets what was read from the directory, so the next use reads it anew (a run held in memory keeps its
        values)."""
        if self.path is not None:
            self._config = self._summary = self._metrics = self._outcomes = None
            self.memo.clear()
        return self

    @property
    def env(self) -> dict[str, Any]:  # env.json ({} when unreadable)
        try:
            return json.loads(self.env_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @classmethod
    def create(
        cls, path: str | Path, config: dict[str, Any], exist_ok: bool = False, device: str | None = None,
        lock: bool = False,
    ) -> Run:
        """Creates the run directory with its config.yaml, env.json and checkpoints/.

        Args:
            path: ``output_dir / name``.
            config: the resolved config as a plain dict (``robustft.config.to_dict``).
            exist_ok: allow an existing directory (its metrics, summary and checkpoints are kept).
            device: the resolved device, recorded in env.json.
            lock: take the run's lock (:meth:`lock`) before writing anything; the caller releases it
                (:meth:`unlock`) when it stops writing. Two processes creating the same run: one is refused.

        Raises:
            RunExistsError: the directory exists and is not empty, and ``exist_ok`` is false.
            RunLockedError: ``lock`` and another live process holds the directory.
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
                if not exist_ok:
                    run._refuse_if_used()
            if lock:
                run.lock()
                if not exist_ok:  # written by another process between the check above and the lock
                    run._refuse_if_used()
            run.checkpoints_dir.mkdir(exist_ok=True)
        except OSError as error:
            run.unlock()
            if isinstance(error, RobustftError):
                raise
            raise _write_error(run.path, error) from None
        except RobustftError:
            run.unlock()
            raise
        try:
            text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
        except yaml.YAMLError as error:
            raise RobustftError(
                f"the config for {run.path} is not plain YAML data ({error}); pass robustft.config.to_dict(cfg)."
            ) from None
        atomic_write_text(run.config_path, text)
        env = environment(config, device)
        atomic_write_text(run.env_path, json.dumps(env, indent=2, default=_json_default) + "\n")
        return run

    def _refuse_if_used(self) -> None:
        if any(p.name != LOCK_FILE for p in self.path.iterdir()):
            self.unlock()
            raise RunExistsError(
                f"run directory {self.path} exists already. Continue it with `robustft train --resume "
                f"{self.path}`, or choose another name (name=... ) or output_dir."
            ) from None

    def lock(self) -> RunLock:
        """Takes the directory's one-writer lock for this process (idempotent); see ``robustft.runs.lock``.

        Raises:
            RunLockedError: another live process holds it; the message names it (pid, host, start) and the fix.
        """
        if self._lock is None:
            self._lock = RunLock(self.path).acquire()
        return self._lock

    def unlock(self) -> None:
        """Releases the lock taken by :meth:`lock` (nothing when not held)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def lock_holder(self) -> dict[str, Any] | None:
        """The live process holding this directory's lock (pid, host, start_time, argv), or None."""
        return lock_holder(self.path)

    @classmethod
    def open(cls, path: str | Path) -> Run:
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
        return read_records(self.metrics_path)

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
        self._metrics = None
        return len(records) - len(kept)

    def outcomes_writer(self) -> OutcomesWriter:
        """An appending writer for outcomes.bin (repairs a torn last record first)."""
        return OutcomesWriter(self.outcomes_path)

    def read_outcomes(self) -> list[OutcomeBlock]:
        """Every complete block of outcomes.bin, in file order (``robustft.runs.outcomes``; none: [])."""
        return read_outcome_blocks(self.outcomes_path)

    def truncate_outcomes_after(self, step: int) -> int:
        """Drops outcome blocks with ``step > step``, as :meth:`truncate_metrics_after` does records."""
        self._outcomes = None
        return truncate_outcomes_after(self.outcomes_path, step)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Writes summary.json atomically (temp + fsync + rename)."""
        text = json.dumps(summary, indent=2, default=_json_default, allow_nan=False) + "\n"
        atomic_write_text(self.summary_path, text)
        self._summary = json.loads(text)
        return self.summary_path

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})" if self.path is not None else f"Run(name={self.name!r})"


def read_metrics(run_path: str | Path) -> pd.DataFrame:
    """One run's metrics.jsonl as a DataFrame with the METRIC_FIELDS columns (empty when nothing was written).

    The one reader of metrics as a table (the trainer's summary, queries, the report): complete lines only, so a
    torn last line left by a killed writer is not read (:func:`robustft.runs.metrics_file.read_records`).

    Raises:
        RunNotFoundError: ``run_path`` is not a directory.
    """
    path = Path(run_path)
    if not path.is_dir():
        raise RunNotFoundError(f"run directory {path} does not exist; pass the directory a run wrote.")
    return pd.DataFrame(read_records(path / METRICS_FILE), columns=list(METRIC_FIELDS))


def read_outcomes(run_path: str | Path) -> pd.DataFrame:
    """One run's per-image outcomes: a row per evaluated (step, split, metric, attack, eps) with the images as arrays.

    Columns: step, split, metric, attack, eps, n, image_ids (int64 array: each image's index in its split's source
    order) and correct (bool array aligned with image_ids). Empty (with the columns) for a run written before
    outcomes were recorded. See ``robustft.runs.outcomes`` for the file and ``robustft.analysis.paired`` for its use.

    Raises:
        RunNotFoundError: ``run_path`` is not a directory.
    """
    path = Path(run_path)
    if not path.is_dir():
        raise RunNotFoundError(f"run directory {path} does not exist; pass the directory a run wrote.")
    return outcome_table(read_outcome_blocks(path / OUTCOMES_FILE))
