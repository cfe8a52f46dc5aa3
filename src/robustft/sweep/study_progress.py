"""One progress display for a study: runs done / total, the runs in progress, elapsed time and an estimate.

Runs execute in subprocesses, so their progress is read from what they write: the last step in each running
run's ``metrics.jsonl`` (records are appended at every evaluation) against the run's planned steps. The estimate
weights each run by its expected cost (steps x the attack steps of adversarial training, whose step costs about
``1 + 0.25 x attack steps`` standard steps: README, Benchmarks), so that a slow adversarial run left for last does
not make the estimate jump. On a terminal the line is redrawn in place every second; otherwise one line is
printed per started and finished run, and the progress line every 30 seconds.

A run counts as running only once its training process holds the run directory's lock (``runs.lock`` writes the
holder into ``RUN_DIR/lock`` when it takes it and clears it when it lets go); before that it is queued. The Ray
executor submits every run at once and Ray starts as many as the CPUs allow, so "submitted" is not "running".
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from robustft.runs.lock import lock_touched_since
from robustft.runs.metrics_file import last_record

# Statuses of a run that ended without finishing because the study was stopped (robustft.sweep.manifest's names).
_NOT_DONE = ("interrupted", "pending")

# Train-pool size of datasets whose configs leave data.limit_train unset (only used for the estimate).
_DEFAULT_TRAIN_SIZE = 50_000


def planned_steps(config: dict[str, Any]) -> int:
    """Optimiser steps a run will take (from its resolved config; approximate when the data size is not set)."""
    train, data, optim = config.get("train", {}), config.get("data", {}), config.get("optim", {})
    if train.get("steps"):
        return int(train["steps"])
    size = data.get("limit_train") or _DEFAULT_TRAIN_SIZE
    # as the trainer counts them: full batches only (its loader drops the last partial one), then accumulation
    batches = size // max(1, int(optim.get("batch_size", 128)))
    per_epoch = max(1, batches // max(1, int(optim.get("accumulate", 1))))
    return int(train.get("epochs") or 1) * per_epoch


def relative_cost(config: dict[str, Any]) -> float:
    """Expected cost of a run in standard-step units."""
    objective = config.get("objective", {})
    factor = 1.0 if objective.get("name", "standard") == "standard" else 1.0 + 0.25 * int(objective.get("steps", 7))
    return planned_steps(config) * factor


def last_step(run_dir: Path) -> int:
    """The step of the last record in ``run_dir/metrics.jsonl`` (0 when there is none yet)."""
    record = last_record(run_dir / "metrics.jsonl")
    step = record.get("step") if record else None
    return step if isinstance(step, int) else 0


def run_started(run_dir: Path, since: float) -> bool:
    """Whether a training process took ``run_dir``'s lock at or after ``since`` and holds it (``runs.lock``): a
    stale holder left by a killed earlier attempt is older than ``since``, so a queued resume is not mistaken for
    a running one."""
    return lock_touched_since(run_dir, since, held=True)


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class StudyProgress:
    """Tracks and shows a study's progress; pass ``update`` as ``run_study(progress=...)``.

    Args:
        configs: the arms' resolved configs (name, output_dir, train, data, optim, objective).
        stream: where to write (stderr by default).
        live: redraw one line in place (default: when ``stream`` is a terminal).
    """

    def __init__(self, configs: list[dict[str, Any]], stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.start = time.monotonic()
        self.dirs = {c["name"]: Path(c["output_dir"]) / c["name"] for c in configs}
        self.steps = {c["name"]: max(1, planned_steps(c)) for c in configs}
        self.costs = {c["name"]: relative_cost(c) for c in configs}
        self.queued: dict[str, float] = {}  # name -> time.time() it was handed to the executor
        self.running: dict[str, float] = {}
        self.done: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StudyProgress:
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def update(self, event: str, item: Any) -> None:
        """``("start", SweepPoint)`` when a run is handed to the executor, ``("done", PointResult)`` when it ends."""
        with self._lock:
            if event == "start":
                self.queued[item.name] = time.time()
                self._refresh()
            else:
                self._refresh()
                self.queued.pop(item.name, None)
                self.running.pop(item.name, None)
                if item.status not in _NOT_DONE:  # an interrupted run is not done: a re-run resumes it
                    self.done[item.name] = item.status
                if not self.live:
                    note = f" ({item.error})" if getattr(item, "error", None) else ""
                    self._print(f"{item.status} {item.name}{note}")

    def _refresh(self) -> None:
        """Moves queued runs whose process has taken their run directory's lock to running (caller holds _lock)."""
        for name, since in list(self.queued.items()):
            if run_started(self.dirs[name], since):
                del self.queued[name]
                self.running[name] = time.monotonic()
                if not self.live:
                    self._print(f"started {name}")

    def fraction(self) -> float:
        """Share of the study's expected cost done, in [0, 1]."""
        total = sum(self.costs.values()) or 1.0
        done = sum(self.costs[name] for name in self.done)
        for name in self.running:
            done += self.costs[name] * min(1.0, last_step(self.dirs[name]) / self.steps[name])
        return min(1.0, done / total)

    def line(self) -> str:
        """``[3/10 runs] running a-full 120/300, b-fix 40/96 | 1:23 elapsed, ~2:10 left``."""
        elapsed = time.monotonic() - self.start
        fraction = self.fraction()
        running = ", ".join(f"{name} {last_step(self.dirs[name])}/{self.steps[name]}" for name in self.running)
        queued = f"{len(self.queued)} queued | " if self.queued else ""
        estimate = f", ~{_clock(elapsed * (1 - fraction) / fraction)} left" if fraction >= 0.05 else ""
        return (f"[{len(self.done)}/{len(self.costs)} runs] " + (f"running {running} | " if running else "")
                + queued + f"{_clock(elapsed)} elapsed{estimate}")

    def _print(self, text: str) -> None:
        self.stream.write(f"robustft: {text} | {self.line()}\n")
        self.stream.flush()

    def _tick(self) -> None:
        last_print = time.monotonic()
        while not self._stop.wait(1.0):
            with self._lock:
                self._refresh()
                text = self.line()
            if self.live:
                self.stream.write("\r\033[K" + text[:160])
            elif time.monotonic() - last_print >= 30.0:
                self.stream.write(f"robustft: {text}\n")
                last_print = time.monotonic()
            else:
                continue
            self.stream.flush()
