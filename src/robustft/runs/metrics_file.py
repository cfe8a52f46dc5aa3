"""The append-only ``metrics.jsonl`` of a run: record validation, durable appends, torn-line repair, atomic writes.

Durability: a batch of records is one ``os.write`` followed by ``fsync``; a crash can at worst leave a torn
last line, which the next writer detects and cuts off. Non-finite values (a NaN loss) are written as ``null``
with the original in ``extra`` because JSON has no NaN. Its own module so that ``run_dir.py`` is about the
directory layout; ``robustft.runs`` re-exports everything here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robustft.errors import RobustftError
from robustft.runs.records import METRIC_FIELDS

# The record's fields are defined with their meaning in robustft.runs.records (the one description of a record).
_SPLITS = ("train", "val", "test", "optim")


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


def file_mode() -> int:
    """The mode of every file in a run directory: what ``open()`` gives a new file (0o666 minus the umask).

    Atomic writes go through ``mkstemp``, which creates 0o600; without this they would sit beside 0o644 files
    (metrics.jsonl) in the same run directory.
    """
    mask = os.umask(0o022)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` via a temp file in the same directory, fsync and rename (mode: file_mode())."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temp file in the same directory, fsync and rename (mode: file_mode())."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
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
        append_durably(self.path, ("\n".join(lines) + "\n").encode("utf-8"))
        return len(lines)

    def close(self) -> None:
        """Nothing is held open between batches; present so the writer can be used like a file."""

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def append_durably(path: Path, payload: bytes) -> None:
    """Appends ``payload`` to ``path`` (created if missing) with one ``write`` loop and ``fsync``; all or nothing.

    Raises:
        RunWriteError: disk full / permission denied; the file is cut back to its previous length.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # umask applies: file_mode()
    except OSError as error:
        raise _write_error(path, error) from None
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
            raise _write_error(path, error) from None
    finally:
        os.close(fd)


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


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, complete lines only (a torn last line of a crashed writer is left out)."""
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


def last_record(path: Path, key: str = "step") -> dict[str, Any] | None:
    """The last complete record of a JSONL file that has ``key`` (None when there is none), read from the tail.

    The tail counterpart of :func:`read_records` for a progress line or status table polling a long run: it reads
    the end of the file only (growing the window until a record is found), and like ``read_records`` it leaves out
    a torn last line of a writer still appending or killed mid-line.
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            window = 1 << 12
            while True:
                start = max(0, size - window)
                handle.seek(start)
                lines = handle.read(size - start).split(b"\n")
                # the piece after the last newline is torn (or empty); the first is cut by the window unless at 0
                for line in reversed(lines[:-1] if start == 0 else lines[1:-1]):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and key in record:
                        return record
                if start == 0:
                    return None
                window *= 4
    except OSError:  # no file yet (the run has not started) or unreadable: nothing to show
        return None
