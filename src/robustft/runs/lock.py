"""One writer per run directory: an exclusive lock held by the training process for its whole life.

Two processes appending to the same ``metrics.jsonl`` (two ``train --resume`` of one killed run, or two sweep
invocations starting the same point) would each truncate and append, leaving duplicated records. So a training
process takes ``RUN_DIR/lock`` before it writes anything and keeps it until it returns.

The lock is a BSD ``flock`` on that file, not a "file exists" marker, because the kernel releases it when the
holder dies in any way (kill -9, OOM, power loss of a node): a killed run never leaves a stale lock behind, and
``train --resume`` needs no manual clean-up. ``flock`` locks belong to an open file description, so a second
attempt in the same process is refused too (unlike POSIX ``lockf`` locks, which a process shares with itself and
loses when it closes any descriptor of the file). On Linux NFS clients ``flock`` is mapped to NFS byte-range
locks, so the Ray executor's shared output directory is covered across nodes. A ``fork`` of the holder shares the
lock (robustft's data loaders run in-process, so the trainer forks no workers).

The holder writes who it is (pid, host, start time, command) into the lock file, so a refused process can say
whom it is waiting for. The file is never deleted: deleting a lock file lets a third process lock a new file
while a second still holds the unlinked one. An empty file, or one whose writer is gone, means "not held".

Platforms without ``fcntl`` (Windows) use ``filelock`` (installed with torch) on ``lock.filelock``; the message
then has no holder details.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from robustft.errors import RobustftError
from robustft.runs.metrics_file import _write_error

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "lock"
# A process probing the lock (``robustft sweep --status``) holds it for microseconds; a trainer that meets such a
# probe retries for this long before concluding that another trainer holds the run.
_RETRY_SECONDS = 0.5


class RunLockedError(RobustftError):
    """Another live process holds the run directory's lock (it is training that run)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


def holder_info() -> dict[str, Any]:
    """Who this process is: written into the lock file while it holds the lock."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2024-...`` (or a neutral phrase when the holder has not written its details)."""
    if not holder.get("pid"):
        return "another process (it has not written its details yet)"
    return f"pid {holder['pid']} on host {holder.get('host', '?')} since {holder.get('start_time', '?')}"


def _is_contended(error: OSError) -> bool:
    return error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 1 << 16, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """The exclusive lock of one run directory.

    Example:
        >>> with RunLock("runs/demo"):  # raises RunLockedError if another process trains runs/demo
        ...     ...
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._fallback: Any = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None or self._fallback is not None

    def acquire(self) -> RunLock:
        """Takes the lock without waiting (beyond a moment for a status probe to let go) and records the holder.

        Raises:
            RunLockedError: another live process holds it; the message names the holder and what to do.
            RunWriteError: the lock file cannot be created (unwritable or missing directory).
        """
        if self.held:
            return self
        if fcntl is None:  # pragma: no cover - Windows
            return self._acquire_fallback()

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise _write_error(self.path, error) from None
        deadline = time.monotonic() + _RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if not _is_contended(error):
                    os.close(fd)
                    raise _write_error(self.path, error) from None
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise self._locked_error(holder) from None
                time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode("utf-8"), 0)
            os.fsync(fd)
        except OSError:
            pass  # the details only improve another process's message; the lock itself is held
        self._fd = fd
        return self

    def release(self) -> None:
        """Clears the holder details and lets go (also done by the kernel if the process dies)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
            self._fallback = None

    def _locked_error(self, holder: dict[str, Any]) -> RunLockedError:
        return RunLockedError(
            f"run directory {self.run_dir} is being written by {describe_holder(holder)}; a run directory has one "
            "writer at a time. Wait for that process to finish (it resumes and completes the run), stop it and then "
            f"`robustft train --resume {self.run_dir}`, or train under another name (name=...) or output_dir.",
            holder)

    def _acquire_fallback(self) -> RunLock:  # pragma: no cover - Windows
        import filelock

        lock = filelock.FileLock(str(self.path) + ".filelock", timeout=_RETRY_SECONDS)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise self._locked_error({}) from None
        self._fallback = lock
        return self

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:  # a lock object dropped without release (an exception mid-build) lets go too
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)  # closing the only descriptor releases a flock
            except OSError:
                pass


def lock_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The holder of ``run_dir``'s lock if a live process holds it, else None.

    Probes by taking a shared lock for an instant (a trainer that meets the probe retries, see ``_RETRY_SECONDS``).
    Returns ``{}`` for a holder that has not written its details yet.
    """
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():  # pragma: no cover - Windows: no probe without taking the lock
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            return _read_holder(fd) if _is_contended(error) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def lock_touched_since(run_dir: str | Path, since: float, *, held: bool = False) -> bool:
    """Whether a process took (or let go of) ``run_dir``'s lock at or after ``since`` (a ``time.time()`` value).

    Taking the lock writes the holder's details into the lock file and letting go clears them, so the file's
    modification time says when it last changed hands (one second of slack for file systems that store times
    coarsely). With ``held``, only a file that still names a holder counts: the lock was taken since then and not
    let go (or its holder was killed). Unlike :func:`lock_holder` this never probes the lock, so a trainer starting
    at that moment is not made to wait.
    """
    try:
        stat = (Path(run_dir) / LOCK_FILE).stat()
    except OSError:
        return False
    return stat.st_mtime >= since - 1.0 and (stat.st_size > 0 or not held)


class locked_file:  # noqa: N801 - used like a function: ``with locked_file(path): ...``
    """Blocking exclusive ``flock`` on ``path`` for a short read-modify-write (a sweep's shared manifest).

    Unlike :class:`RunLock` it waits: the holder keeps it for milliseconds. A no-op where ``fcntl`` is missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> locked_file:
        if fcntl is not None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise _write_error(self.path, error) from None
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
