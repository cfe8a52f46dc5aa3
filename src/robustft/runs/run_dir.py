"""Run directories: self-describing, append-only, atomic, resumable; DuckDB queries across many runs.

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
(``outcomes_writer``, ``truncate_outcomes_after``). Non-finite values (a NaN loss)
are written as ``null`` with the original in ``extra.value`` because JSON has no NaN.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from robustft.errors import RobustftError
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
    OutcomeBlock,
    OutcomesWriter,
    outcome_table,
    read_outcome_blocks,
    truncate_outcomes_after,
)

CONFIG_FILE, ENV_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINTS_DIR = (
    "config.yaml",
    "env.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoints",
)


class RunExistsError(RobustftError, FileExistsError):
    """The run directory exists already (resume it or pick another name)."""


class RunNotFoundError(RobustftError, FileNotFoundError):
    """The path is not a run directory."""


















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
        self._lock: RunLock | None = None

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
    def outcomes_path(self) -> Path:
        return self.path / OUTCOMES_FILE

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
        cls, path: str | Path, config: dict[str, Any], exist_ok: bool = False, device: str | None = None,
        lock: bool = False,
    ) -> RunDir:
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
        env = _environment(config, device)
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
        return len(records) - len(kept)

    def outcomes_writer(self) -> OutcomesWriter:
        """An appending writer for outcomes.bin (repairs a torn last record first)."""
        return OutcomesWriter(self.outcomes_path)

    def read_outcomes(self) -> list[OutcomeBlock]:
        """Every complete block of outcomes.bin, in file order (``robustft.runs.outcomes``; none: [])."""
        return read_outcome_blocks(self.outcomes_path)

    def truncate_outcomes_after(self, step: int) -> int:
        """Drops outcome blocks with ``step > step``, as :meth:`truncate_metrics_after` does records."""
        return truncate_outcomes_after(self.outcomes_path, step)

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
