"""A run's per-sample outcomes, ``outcomes.bin``: which evaluated image was classified correctly, at every evaluation.

Each evaluation of a split (clean + every eps of one nested robust evaluation, a robust curve, an OOD split, the final
strong attack) is one :class:`OutcomeBlock`: the verdicts of its ``n`` images, one row per (attack, eps), keyed by
a stable image id (the image's index in the split's source order, ``robustft.data`` ``indices``), so two runs
with the same data settings share ids and can be compared image by image (``robustft.analysis.paired``).

File format: a sequence of records, each

    magic b"RFO1" | header length (u32 LE) | payload length (u32 LE) | header (JSON, UTF-8) | payload | CRC-32 (u32 LE)

where the CRC covers header and payload. A record is either

- ``{"kind": "ids", "step", "split", "n", "ids": digest, "dtype"}``: the image ids of a subset (payload: the ids as
  little-endian ``dtype``), written once, before the first block that uses it; or
- ``{"kind": "outcomes", "step", "split", "metric", "rows": [[attack, eps], ...], "n", "ids": digest}``: the
  verdicts, one ``numpy.packbits`` row of ``ceil(n / 8)`` bytes per (attack, eps), images in the ids' order.

A subset's ids are stored once rather than with every block: at 256 images they are 1 KiB, the verdicts of one
row 32 bytes. The digest (BLAKE2b of the ids) ties a block to its ids, so a resume that changes ``eval.subset``
writes new ids instead of mislabelling images.

Durability and resume, as for ``metrics.jsonl`` (``robustft.runs.metrics_file``): the one writer (the process holding
the run's lock) appends one evaluation point's records with one ``write`` and ``fsync``; a crash can leave a torn
last record, which the reader ignores and the next writer cuts off; :func:`truncate_outcomes_after` drops the
records of steps after a checkpoint (atomic rewrite), so a resumed run neither loses nor duplicates a block.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustft.errors import RobustftError
from robustft.runs.metrics_file import _write_error, append_durably, atomic_write_bytes

OUTCOMES_FILE = "outcomes.bin"
MAGIC = b"RFO1"
_PREFIX = struct.Struct("<4sII")  # magic, header length, payload length
_CRC = struct.Struct("<I")
# Columns of the tables below: one row per evaluated (split, attack, eps) at a step, or per image of it.
TABLE_COLUMNS = ("step", "split", "metric", "attack", "eps", "n", "image_ids", "correct")
LONG_COLUMNS = ("step", "split", "metric", "attack", "eps", "image_id", "correct")


class OutcomeRecordError(RobustftError, ValueError):
    """An outcome block that does not describe its images consistently (a bug in the code writing it)."""


@dataclass(frozen=True)
class OutcomeBlock:
    """The per-image verdicts of one evaluation of one split at one step.

    Attributes:
        step: optimiser updates before the evaluation (as the metrics records' ``step``).
        split: ``train`` | ``val`` | ``test`` | ``ood:<name>``.
        metric: the records' metric these verdicts are behind: ``accuracy`` or ``curve_accuracy``.
        attacks: per row, the attack as in the records (``clean`` at eps 0, ``<name>``, ``final:<name>``).
        eps: per row, the radius in pixel units (0 for clean); rows nest (a row's correct images are correct in
            every earlier row of a robust evaluation).
        image_ids: int64 (n,), each image's index in its split's source order.
        correct: bool (rows, n), True where the image was classified correctly (the per-sample worst case).
    """

    step: int
    split: str
    metric: str
    attacks: tuple[str, ...]
    eps: tuple[float, ...]
    image_ids: np.ndarray
    correct: np.ndarray

    def __post_init__(self) -> None:
        ids, correct = np.asarray(self.image_ids), np.asarray(self.correct)
        if ids.ndim != 1 or correct.ndim != 2 or correct.shape != (len(self.attacks), ids.shape[0]):
            raise OutcomeRecordError(
                f"outcome block of {self.split} at step {self.step}: correct has shape {correct.shape}, expected "
                f"(rows={len(self.attacks)}, n={ids.shape[0] if ids.ndim == 1 else ids.shape}) for its image ids.")
        if len(self.eps) != len(self.attacks):
            raise OutcomeRecordError(f"outcome block of {self.split} at step {self.step}: {len(self.attacks)} "
                                     f"attacks but {len(self.eps)} eps.")
        object.__setattr__(self, "image_ids", ids.astype(np.int64, copy=False))
        object.__setattr__(self, "correct", correct.astype(bool, copy=False))


def ids_digest(image_ids: np.ndarray) -> str:
    """A 16-hex-digit BLAKE2b digest of the ids (as little-endian int64): what ties a block to its stored ids."""
    return hashlib.blake2b(np.asarray(image_ids, dtype="<i8").tobytes(), digest_size=8).hexdigest()


def _record(header: dict[str, Any], payload: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return _PREFIX.pack(MAGIC, len(head), len(payload)) + head + payload + _CRC.pack(zlib.crc32(head + payload))


def _ids_record(step: int, split: str, ids: np.ndarray, digest: str) -> bytes:
    dtype = "<u4" if ids.size == 0 or (ids.min() >= 0 and ids.max() < 2**32) else "<i8"
    header = {"kind": "ids", "step": int(step), "split": split, "n": int(ids.size), "ids": digest, "dtype": dtype}
    return _record(header, ids.astype(dtype).tobytes())


def _block_record(block: OutcomeBlock, digest: str) -> bytes:
    header = {"kind": "outcomes", "step": int(block.step), "split": block.split, "metric": block.metric,
              "rows": [[a, float(e)] for a, e in zip(block.attacks, block.eps, strict=True)],
              "n": int(block.image_ids.size), "ids": digest}
    return _record(header, np.packbits(block.correct, axis=1).tobytes())


@dataclass(frozen=True)
class _Entry:
    start: int
    end: int
    header: dict[str, Any] | None  # None: complete but unreadable (bad checksum or header)
    payload: bytes


def _scan(data: bytes) -> tuple[list[_Entry], int]:
    """The complete records of ``data`` and where the readable part ends (a torn or foreign tail starts there)."""
    entries, offset = [], 0
    while offset + _PREFIX.size <= len(data):
        magic, head_len, payload_len = _PREFIX.unpack_from(data, offset)
        end = offset + _PREFIX.size + head_len + payload_len + _CRC.size
        if magic != MAGIC or end > len(data):
            break  # torn last record, or bytes that are not records: nothing after it can be located
        body = data[offset + _PREFIX.size:end - _CRC.size]
        header = None
        if _CRC.unpack_from(data, end - _CRC.size)[0] == zlib.crc32(body):
            try:
                header = json.loads(body[:head_len])
            except ValueError:
                header = None
        entries.append(_Entry(offset, end, header if isinstance(header, dict) else None, body[head_len:]))
        offset = end
    return entries, offset


def repair_outcomes(path: Path) -> int:
    """Cuts a torn tail (a crash mid-write) off ``path``: an incomplete last record, or a complete one whose
    checksum fails; returns the bytes removed."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    entries, end = _scan(data)
    while entries and entries[-1].header is None and entries[-1].end == end:
        end = entries.pop().start  # a garbage last record (a partial block flushed before the crash)
    if end == len(data):
        return 0
    try:
        with open(path, "r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise _write_error(path, error) from None
    return len(data) - end


def _decode(entries: Iterable[_Entry]) -> Iterator[OutcomeBlock]:
    ids: dict[str, np.ndarray] = {}
    for entry in entries:
        header = entry.header
        if header is None:
            continue  # never expected mid-file; skipping it keeps every later block
        if header.get("kind") == "ids":
            ids[header["ids"]] = np.frombuffer(entry.payload, dtype=header["dtype"]).astype(np.int64)
        elif header.get("kind") == "outcomes" and header.get("ids") in ids:
            n, rows = int(header["n"]), header["rows"]
            bits = np.frombuffer(entry.payload, dtype=np.uint8).reshape(len(rows), -1)
            yield OutcomeBlock(int(header["step"]), header["split"], header["metric"],
                               tuple(str(a) for a, _ in rows), tuple(float(e) for _, e in rows), ids[header["ids"]],
                               np.unpackbits(bits, axis=1, count=n).astype(bool))


def read_outcome_blocks(path: str | Path) -> list[OutcomeBlock]:
    """Every complete block of an ``outcomes.bin`` in file order (a torn last record is ignored; no file: [])."""
    path = Path(path)
    if not path.is_file():
        return []
    return list(_decode(_scan(path.read_bytes())[0]))


def truncate_outcomes_after(path: str | Path, step: int) -> int:
    """Drops the records of steps after ``step`` (resume from a checkpoint at ``step``); returns blocks dropped.

    The file is rewritten atomically (temp + fsync + rename), so a crash during the rewrite leaves the old file whole.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    entries = _scan(data)[0]
    readable = [e for e in entries if e.header is not None]
    kept = [e for e in readable if int(e.header.get("step", 0)) <= step]
    atomic_write_bytes(path, b"".join(data[e.start:e.end] for e in kept))
    blocks = lambda part: sum(e.header.get("kind") == "outcomes" for e in part)  # noqa: E731
    return blocks(readable) - blocks(kept)


class OutcomesWriter:
    """Appends outcome blocks to ``outcomes.bin``: one ``write`` call per evaluation point, then fsync.

    Opening repairs a torn tail and reads which ids are stored, so each subset's ids are written once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.repaired_bytes = repair_outcomes(self.path)
        entries = _scan(self.path.read_bytes())[0] if self.path.is_file() else []
        self._stored = {e.header["ids"] for e in entries if e.header is not None and e.header.get("kind") == "ids"}

    def write(self, blocks: Iterable[OutcomeBlock]) -> int:
        """Appends ``blocks`` (with the ids not yet stored) durably; returns how many blocks were written.

        Raises:
            RunWriteError: disk full / permission denied; the file is cut back to its previous length.
        """
        parts, count, new = [], 0, set()
        for block in blocks:
            digest = ids_digest(block.image_ids)
            if digest not in self._stored and digest not in new:
                parts.append(_ids_record(block.step, block.split, block.image_ids, digest))
                new.add(digest)
            parts.append(_block_record(block, digest))
            count += 1
        if parts:
            append_durably(self.path, b"".join(parts))
            self._stored |= new
        return count

    def close(self) -> None:
        """Nothing is held open between batches; present so the writer can be used like a file."""

    def __enter__(self) -> OutcomesWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def outcome_table(blocks: Sequence[OutcomeBlock]) -> pd.DataFrame:
    """One row per evaluated (step, split, metric, attack, eps), with the images as arrays.

    Returns:
        DataFrame with columns step, split, metric, attack, eps, n, image_ids (int64 array (n,)) and correct (bool
        array (n,), aligned with image_ids); the accuracy of a row is ``correct.mean()``.
    """
    rows = [(b.step, b.split, b.metric, attack, eps, int(b.image_ids.size), b.image_ids, b.correct[i])
            for b in blocks for i, (attack, eps) in enumerate(zip(b.attacks, b.eps, strict=True))]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def outcome_rows(blocks: Sequence[OutcomeBlock]) -> pd.DataFrame:
    """One row per image of every evaluated (step, split, metric, attack, eps): columns ``LONG_COLUMNS``."""
    parts = []
    for b in blocks:
        rows, n = b.correct.shape
        parts.append(pd.DataFrame({
            "step": np.full(rows * n, b.step, dtype=np.int64), "split": b.split, "metric": b.metric,
            "attack": np.repeat(np.asarray(b.attacks, dtype=object), n),
            "eps": np.repeat(np.asarray(b.eps, dtype=float), n), "image_id": np.tile(b.image_ids, rows),
            "correct": b.correct.reshape(-1)}))
    if not parts:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "split": pd.Series(dtype=object),
                             "metric": pd.Series(dtype=object), "attack": pd.Series(dtype=object),
                             "eps": pd.Series(dtype=float), "image_id": pd.Series(dtype="int64"),
                             "correct": pd.Series(dtype=bool)})
    return pd.concat(parts, ignore_index=True)[list(LONG_COLUMNS)]
