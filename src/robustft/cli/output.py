"""What every sub-command shares: ``--json FILE`` / ``--csv FILE`` writers, progress lines, the options table.

``--json FILE`` and ``--csv FILE`` mean the same in every command that has them (``eval``, ``query``): write the
printed result to FILE too, atomically (a crash never leaves half a file). Directories are ``--output-dir``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from robustft.runs.metrics_file import file_mode


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Opens a temp file next to ``path``; on success it replaces ``path``, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, newline="" if "b" not in mode else None) as handle:
            yield handle
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; a result file gets the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, payload: Any) -> None:
    """``payload`` as indented JSON at ``path`` (atomic)."""
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A CSV with ``header`` and ``rows`` at ``path`` (atomic)."""
    with atomic_write(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def progress(message: str, *, quiet: bool = False) -> None:
    """One plain progress line on stderr (``robustft: ...``), flushed so ``tail -f`` shows it at once."""
    if not quiet:
        print(f"robustft: {message}", file=sys.stderr, flush=True)
