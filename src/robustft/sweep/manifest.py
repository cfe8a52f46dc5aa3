"""A point's outcome (``PointResult``, statuses) and the ``sweep.json`` recording them, shared by both executors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robustft.runs.lock import locked_file
from robustft.runs.metrics_file import atomic_write_text
from robustft.sweep.grid import SweepPoint

STATUS_FINISHED = "finished"
STATUS_SKIPPED = "skipped"  # already finished before this sweep started
STATUS_FAILED = "failed"
STATUS_RUNNING = "running"  # another live process holds the point's run directory; not started again
STATUS_PENDING = "pending"
# started by this sweep and stopped by a signal (robustft.sweep.interrupt); like pending, the next invocation
# resumes it (from its last checkpoint), so it is not terminal either
STATUS_INTERRUPTED = "interrupted"
_TERMINAL = (STATUS_FINISHED, STATUS_SKIPPED, STATUS_FAILED)


@dataclass
class PointResult:
    """What happened to one point."""

    name: str
    overrides: list[str]
    path: str
    status: str
    action: str = ""  # start | resume | restart | skip | running ("" for a point never reached)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def write_manifest(path: Path, meta: dict[str, Any], results: list[PointResult | None],
                    points: Sequence[SweepPoint], out: Path) -> None:
    """Writes sweep.json; a point this invocation only saw as pending or running keeps the outcome another
    invocation of the same sweep recorded for it (two invocations may run at once, each rewriting the file)."""
    entries = [asdict(r) if r is not None else {"name": p.name, "overrides": list(p.overrides),
                                                 "path": str(out / p.name), "status": STATUS_PENDING}
               for r, p in zip(results, points, strict=True)]
    for entry, point in zip(entries, points, strict=True):
        if point.note:
            entry["note"] = point.note
    with locked_file(path.with_name(path.name + ".lock")):
        try:
            previous = {e.get("name"): e for e in json.loads(path.read_text(encoding="utf-8")).get("points", [])}
        except (OSError, ValueError, AttributeError):
            previous = {}
        for index, entry in enumerate(entries):
            other = previous.get(entry["name"])
            if entry["status"] not in _TERMINAL and isinstance(other, dict) and other.get("status") in _TERMINAL:
                entries[index] = other
        payload = {**meta, "points": entries}
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
