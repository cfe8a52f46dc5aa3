"""Run directories in one store every node reaches (an fsspec URI: ``s3://``, ``gs://``, ``file://``, ``memory://``).

Why: on a cluster a run may start on one node and, when that node dies, be resumed on another. A shared POSIX path
mounted on every node (NFS) needs none of this: ``output_dir`` is that path and ``robustft.runs.lock`` keeps one
writer. An object store has no append, no rename and no lock, so a run trains in a node-local working directory
and copies its files into the store at every evaluation point (each one writes a checkpoint), as Ray's own
``storage_path`` syncs a trial's local directory; a run resumed elsewhere first downloads the store's copy.
``robustft.runs.lease`` says which attempt owns a run in the store (a PID means nothing across nodes).

The store holds one folder per run, named as the run::

    <uri>/<name>/config.yaml env.json metrics.jsonl summary.json checkpoints/{best,last,step_<N>}.pt
                 lease.json       who trains the run now (robustft.runs.lease)
                 attempts.jsonl   one line per attempt: where it ran, its device and GPU share, the step it began at

The store's copy is always a valid resume point, whatever moment a node dies at:

- every file is written whole: uploaded beside its destination under a temporary name, then moved onto it (a
  rename on a file system, one PUT on an object store), so a reader never sees half a file;
- within one sync, ``metrics.jsonl`` goes first, the checkpoints next with ``last.pt`` (the resume point) last
  of them, ``summary.json`` (= finished) after everything. A death between two uploads leaves a ``metrics.jsonl``
  whose last records may lie past ``last.pt``'s step: the resumed run cuts them off
  (``training.state.resume_from_last`` -> ``Run.truncate_metrics_after``), as after a local ``kill -9``, so no
  record is duplicated or lost. ``metrics.jsonl`` stays append-only in the working directory; the store gets a
  whole copy each time (objects cannot be appended to), small beside a checkpoint.
- a file unchanged since its last upload (same size and modification time) is not uploaded again.

Storage only: nothing here imports models, strategies or the trainer (``robustft.sweep.store_run`` runs a point
against a store). fsspec is a dependency of torch, so it is always installed; ``s3://`` needs ``s3fs``, ``gs://``
``gcsfs``, as for Ray's ``storage_path``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import posixpath
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustft.errors import ConfigError, RobustftError

log = logging.getLogger("robustft.runs.remote_store")

LEASE_FILE, ATTEMPTS_FILE = "lease.json", "attempts.jsonl"
# What a resumed run needs (the other checkpoints stay in the store; a resumed run keeps its best from last.pt).
RESUME_FILES = ("config.yaml", "env.json", "metrics.jsonl", "checkpoints/last.pt")
# Upload order of one sync (see the module docstring); other checkpoints go between metrics.jsonl and last.pt.
_FIRST, _LAST = ("config.yaml", "env.json", "metrics.jsonl"), ("checkpoints/last.pt", "summary.json")
_LOCAL_ONLY = ("lock",)  # the local flock file means nothing elsewhere


class StoreError(RobustftError):
    """The store cannot be reached or written (credentials, bucket, network); the message names the fix."""


class RunStore:
    """The store at ``uri``: one folder per run (see the module docstring).

    Example:
        >>> store = RunStore("file:///shared/sweep")  # or s3://bucket/sweep, memory://sweep
        >>> store.finished("full")  # summary.json present
        False
    """

    def __init__(self, uri: str) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - torch depends on fsspec
            raise ConfigError("a store URI needs fsspec: pip install fsspec (and s3fs / gcsfs for s3:// / gs://).") \
                from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as error:
            raise ConfigError(f"cannot open the store {uri!r} ({error}). Install the file system its scheme needs "
                              "(s3fs for s3://, gcsfs for gs://) or pass a path every node mounts.") from None
        self.uri = uri
        self.root = self.root.rstrip("/")

    def path(self, name: str, *parts: str) -> str:
        """The store path (no protocol) of ``name``'s folder, or of a file in it."""
        return posixpath.join(self.root, name, *parts)

    def run_uri(self, name: str) -> str:
        """``name``'s folder as a URI another process can open."""
        return self.fs.unstrip_protocol(self.path(name))

    def exists(self, name: str, rel: str) -> bool:
        self.fs.invalidate_cache()  # another node may have written it since this process listed the folder
        return bool(self._call("check", rel, self.fs.exists, self.path(name, rel)))

    def finished(self, name: str) -> bool:
        """Whether the run wrote its summary (it finished)."""
        return self.exists(name, "summary.json")

    def files(self, name: str) -> list[str]:
        """Paths (relative to the run's folder, ``/``-separated) of every file the store holds for ``name``."""
        base = self.path(name)
        self.fs.invalidate_cache()
        if not self._call("list", "", self.fs.isdir, base):
            return []
        found = self._call("list", "", self.fs.find, base)
        return sorted(posixpath.relpath(str(p).rstrip("/"), base) for p in found)

    def read_text(self, name: str, rel: str) -> str | None:
        """A file's text, or None when it does not exist."""
        self.fs.invalidate_cache()
        try:
            with self.fs.open(self.path(name, rel), "rb") as handle:
                return handle.read().decode("utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._error("read", rel, error) from None

    def write_text(self, name: str, rel: str, text: str) -> None:
        """Writes a whole file (temporary name, then moved onto ``rel``)."""
        self._replace(name, rel, lambda tmp: self.fs.pipe_file(tmp, text.encode("utf-8")))

    def put(self, local: Path, name: str, rel: str) -> None:
        """Uploads ``local`` to ``name/rel`` whole (temporary name, then moved onto it)."""
        self._replace(name, rel, lambda tmp: self.fs.put_file(str(local), tmp))

    def get(self, name: str, rel: str, local: Path) -> bool:
        """Downloads ``name/rel`` to ``local`` (its folder created); False when the store has no such file."""
        if not self.exists(name, rel):
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        self._call("download", rel, self.fs.get_file, self.path(name, rel), str(local))
        return True

    def remove(self, name: str, rel: str) -> None:
        """Deletes one file (nothing when it is gone already)."""
        try:
            self.fs.rm_file(self.path(name, rel))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise self._error("delete", rel, error) from None

    def move_aside(self, name: str, keep: Sequence[str] = (LEASE_FILE, ATTEMPTS_FILE)) -> str | None:
        """Moves a run's files except ``keep`` to ``<name>.incomplete-<time>`` (nothing is deleted), as the local
        sweep does with a run directory that died before its first checkpoint. Returns the new folder's name, or
        None when there was nothing to move."""
        moved = [rel for rel in self.files(name) if rel not in keep]
        if not moved:
            return None
        aside = f"{name}.incomplete-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        for rel in moved:
            target = self.path(aside, rel)
            self._call("create", rel, self.fs.makedirs, posixpath.dirname(target), exist_ok=True)
            self._call("move", rel, self.fs.mv, self.path(name, rel), target)
        return aside

    def _replace(self, name: str, rel: str, write: Callable[[str], Any]) -> None:
        target = self.path(name, rel)
        folder, base = posixpath.split(target)
        tmp = posixpath.join(folder, f".{base}.{uuid.uuid4().hex}.tmp")
        self._call("create", rel, self.fs.makedirs, folder, exist_ok=True)
        try:
            write(tmp)
            self.fs.mv(tmp, target)
        except OSError as error:
            try:
                self.fs.rm_file(tmp)
            except OSError:
                pass  # best effort: a stray temporary file is ignored by every reader
            raise self._error("write", rel, error) from None

    def _call(self, what: str, rel: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except OSError as error:
            raise self._error(what, rel, error) from None

    def _error(self, what: str, rel: str, error: OSError) -> StoreError:
        return StoreError(f"cannot {what} {posixpath.join(self.uri, rel)} in the run store ({error}). Check the "
                          "store's credentials, bucket and network; runs resume from the store's last checkpoint "
                          "once it is reachable again.")


class RunSync:
    """Copies a node-local run directory into the store: :meth:`push` at every evaluation point and at the end.

    Args:
        store: the store.
        name: the run's name (its folder in the store).
        local: the node-local run directory (``<working dir>/<name>``).
        before: called before every push; the run's lease check (``StoreLease.check``) goes here, so an attempt
            that lost its lease stops before it writes over its successor's files.
    """

    def __init__(self, store: RunStore, name: str, local: Path, before: Callable[[], None] | None = None) -> None:
        self.store, self.name, self.local, self.before = store, name, Path(local), before
        self._sent: dict[str, tuple[int, int]] = {}

    def push(self) -> list[str]:
        """Uploads every new or changed file, in the order that keeps the store a valid resume point.

        Returns:
            The relative paths uploaded, in upload order.

        Raises:
            StoreError: the store cannot be written.
            Whatever ``before`` raises (a lost lease).
        """
        if self.before is not None:
            self.before()
        present = {p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file()}
        present = {rel for rel in present if rel not in _LOCAL_ONLY and not posixpath.basename(rel).startswith(".")}
        middle = sorted(present - set(_FIRST) - set(_LAST))
        sent = []
        for rel in [*_FIRST, *middle, *_LAST]:
            if rel not in present:
                continue
            stat = (self.local / rel).stat()
            key = (stat.st_size, stat.st_mtime_ns)
            if self._sent.get(rel) == key:
                continue
            self.store.put(self.local / rel, self.name, rel)
            self._sent[rel] = key
            sent.append(rel)
        return sent


def restore(store: RunStore, name: str, local: Path) -> list[str] | None:
    """Downloads what resuming ``name`` needs (``RESUME_FILES``) into the node-local run directory ``local``.

    Returns:
        The files downloaded when the store holds a checkpoint (``last.pt``) to resume from, else None (nothing
        downloaded: the run starts from step 0).
    """
    if not store.exists(name, "checkpoints/last.pt"):
        return None
    got = [rel for rel in RESUME_FILES if store.get(name, rel, local / rel)]
    (local / "checkpoints").mkdir(parents=True, exist_ok=True)
    return got


def record_attempt(store: RunStore, name: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Appends one attempt's line to ``attempts.jsonl`` (the whole file rewritten: stores cannot append; the caller
    holds the run's lease, so there is one writer). Returns every attempt so far, this one last."""
    attempts = read_attempts(store, name)
    attempts.append(dict(entry))
    store.write_text(name, ATTEMPTS_FILE, "".join(json.dumps(a, default=str) + "\n" for a in attempts))
    return attempts


def read_attempts(store: RunStore, name: str) -> list[dict[str, Any]]:
    """The run's attempts, oldest first (empty when none was recorded)."""
    text = store.read_text(name, ATTEMPTS_FILE) or ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def pull(store: RunStore, name: str, local: Path, checkpoints: bool = False) -> list[str]:
    """Copies a run from the store into ``local`` (a plain run directory ``robustft report`` reads), checkpoints
    only when asked. Returns the relative paths copied."""
    copied = []
    for rel in store.files(name):
        if rel == LEASE_FILE or (rel.startswith("checkpoints/") and not checkpoints):
            continue
        if posixpath.basename(rel).startswith("."):  # another writer's temporary file
            continue
        store.get(name, rel, local / rel)
        copied.append(rel)
    return copied
