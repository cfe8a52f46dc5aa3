"""Where a sweep stands (``robustft sweep --status DIR``): done / running / failed / pending per point.

The points and their last recorded outcome come from the manifest (``DIR/sweep.json``); what is true now comes
from each run directory, which wins over the manifest: ``summary.json`` means done (whoever finished it), a lock
held by a live process means running (``robustft.runs.lock``), a failure recorded in the manifest means failed
(with its error), and anything else is pending (with the step a re-run resumes from when there is a checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robustft.errors import RobustftError
from robustft.runs.lock import describe_holder, lock_holder
from robustft.runs.metrics_file import last_record

DONE, RUNNING, FAILED, PENDING = "done", "running", "failed", "pending"


@dataclass(frozen=True)
class PointStatus:
    """One point of a sweep now: its name, run directory, status (done/running/failed/pending) and a detail."""

    name: str
    path: Path
    status: str
    detail: str = ""


def sweep_status(directory: str | Path) -> list[PointStatus]:
    """Status of every point of the sweep whose output directory is ``directory``, in grid order.

    Raises:
        RobustftError: ``directory`` has no readable ``sweep.json``.
    """
    out = Path(directory)
    manifest = out / "sweep.json"
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["points"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = "it does not exist" if not manifest.exists() else f"it cannot be read ({error})"
        raise RobustftError(f"{manifest}: {reason}. Pass the output directory of a sweep (its --output-dir, by "
                            "default output_dir/name of its config), the directory that holds sweep.json.") from None
    rows = []
    for entry in entries:
        name = str(entry.get("name"))
        path = out / name  # runs live beside the manifest, wherever the sweep was started from
        holder = lock_holder(path)
        if (path / "summary.json").is_file():
            rows.append(PointStatus(name, path, DONE))
        elif holder is not None:
            rows.append(PointStatus(name, path, RUNNING, f"trained by {describe_holder(holder)}"))
        elif entry.get("status") == "failed":
            rows.append(PointStatus(name, path, FAILED, str(entry.get("error") or "no error recorded")))
        else:
            rows.append(PointStatus(name, path, PENDING, _resume_point(path)))
    return rows


def _resume_point(path: Path) -> str:
    if (path / "checkpoints" / "last.pt").is_file():
        steps = _last_step(path / "metrics.jsonl")
        at = f" at step {steps}" if steps is not None else ""
        return f"interrupted{at}; re-running the sweep resumes it"
    if path.is_dir():
        return "started, no checkpoint yet; re-running the sweep starts it again (the directory is kept aside)"
    return ""


def _last_step(metrics: Path) -> int | None:
    record = last_record(metrics)  # the tail only: a status table must not read a long run's whole file
    step = record.get("step") if record else None
    return step if isinstance(step, int) else None
