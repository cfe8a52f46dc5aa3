"""One progress display for a study: runs done / total, the runs in progress, elapsed time and an estimate.

Runs execute in subprocesses, so their progress is read from what they write: the last step in each running
run's ``metrics.jsonl`` (records are appended at every evaluation) against the run's planned steps. The estimate
weights each run by its expected cost (``relative_cost``: the updates as the strategy prices them, the training
attack steps, the evaluation), so that a slow adversarial run left for last does not make the estimate jump. On a
terminal the line is redrawn in place every second; otherwise one line is printed per started and finished run, and
the progress line every 30 seconds.

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

from robustft.config.units import eps_grid, parse_eps
from robustft.errors import ConfigError
from robustft.runs.lock import lock_touched_since
from robustft.runs.metrics_file import last_record
from robustft.sweep.cost_model import Throughput, run_cost
from robustft.sweep.cost_tables import dataset_size

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


# What a run's parts cost, in units of one full fine-tuning update on one image (a training forward+backward),
# measured with `bench train` on the embedded MobileNetV2 at 32 px, one thread, training fast paths on (2026-12-07):
# - an update with a parameter-efficient strategy, relative to full fine-tuning (part 4's standard steps: full
#   219 ms, linear 52, bitfit 106, lora 139, ia3 102, adapter 113, compacter 103); others (and unknown ones) 1.0;
UPDATE_COST = {"linear": 0.25, "bitfit": 0.5, "lora": 0.65, "ia3": 0.5, "adapter": 0.5, "compacter": 0.5}
# - one attack step (forward + input gradient on the frozen prepared copy): an adversarial step with APGD-CE-7 took
#   682 ms against a standard step's 219 (part 4), i.e. (682 / 219 - 1) / 7 = 0.3 of an update per attack step;
ATTACK_STEP_COST = 0.3
# - an evaluation forward pass; and the share of an evaluation attack's nominal passes that run (robustft attacks
#   only the images still correct, and stops each early when it is fooled: the demo's paper A runs measured ~0.5;
#   a robust curve attacks at each eps only what survived the smaller ones, so most of its grid runs on few
#   images: the demo's paper B curves, 0..32/255, cost 1-10 s where their nominal passes would take ~70).
FORWARD_COST = 0.1
EVALUATION_ATTACK_SHARE = 0.5
CURVE_ATTACK_SHARE = 0.1


def relative_cost(config: dict[str, Any]) -> float:
    """Expected cost of a run, in full fine-tuning standard steps: its updates (weighted by the strategy's
    ``UPDATE_COST``), its training attack steps and its evaluation (``robustft.sweep.cost_model``'s passes, priced as
    above). Orders a study's runs longest first and weights the progress estimate; a config whose data size the
    cost model does not know is estimated from its steps alone."""
    objective = config.get("objective", {})
    name = objective.get("name", "standard")
    k = 0 if name == "standard" else int(objective.get("steps", 7)) + (1 if name == "trades" else 0)
    update = UPDATE_COST.get(str((config.get("strategy") or {}).get("name", "full")), 1.0)
    optim = config.get("optim", {})
    batch = max(1, int(optim.get("batch_size", 128))) * max(1, int(optim.get("accumulate", 1)))
    try:
        cost = run_cost(config, Throughput(1.0, 1.0))
        steps, attacked = cost.steps, cost.attacked_steps
        curve = _curve_passes(config, cost.evaluations)
        evaluation = (((cost.eval_passes - curve) * EVALUATION_ATTACK_SHARE + curve * CURVE_ATTACK_SHARE)
                      * ATTACK_STEP_COST + cost.eval_forward * FORWARD_COST) / batch
    except (ConfigError, KeyError, TypeError, ValueError):  # e.g. a dataset of unknown size: steps alone
        steps = planned_steps(config)
        attacked, evaluation = (0 if k == 0 else steps), 0.0
    return steps * update + attacked * k * ATTACK_STEP_COST + evaluation


def _curve_passes(config: dict[str, Any], evaluations: int) -> float:
    """The nominal attack passes of a run's robust curve (what ``cost_model.run_cost`` counts for it)."""
    evaluation, data = config.get("eval", {}), config.get("data", {})
    if not evaluation.get("curve") or parse_eps(evaluation["curve"]) <= 0:
        return 0.0
    test = min(dataset_size(str(data.get("name")), data.get("limit_train"), data.get("limit_test"))[1],
               data.get("limit_test") or 10**9)
    seen = min(int(evaluation["subset"]), test) if evaluation.get("subset") else test
    steps = int((evaluation.get("attack") or {}).get("steps") or 0) * max(1, int((evaluation.get("attack") or {})
                                                                                  .get("restarts") or 1))
    grid = sum(1 for e in eps_grid(parse_eps(evaluation["curve"])) if e > 0)
    return float(seen * grid * steps * (evaluations if evaluation.get("curve_at", "every") == "every" else 1))


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
