"""What the trainer does at an evaluation point, and what the evaluations cost.

At step s (after s updates): evaluate (through the study's shared step-0 entries: ``training.evaluation_reuse``),
add the optimiser records (eps, lr, mean loss and training accuracy since the last point), mark off-schedule
points, extend the validation history the ``auto`` eps schedule reads, append outcomes then records, save the
checkpoints, put the model back in its training mode, call ``on_evaluation``. The order is what exact resume
relies on (the trainer module's docstring says why).

The evaluation's wall time is summed in ``trainer.eval_seconds`` (kept across resumes); ``evaluation_timing``
turns it into summary.json's ``eval_seconds`` / ``eval_share`` / ``evaluation_points``, and ``study_evaluation_share``
is the share over the runs of a study (``robustft demo`` prints it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from robustft.config.units import canonical_metric_key
from robustft.runs.interrupt import StopNow
from robustft.runs.metrics_file import RunWriteError
from robustft.runs.records import record_key
from robustft.training.evaluator import record
from robustft.training.state import save_checkpoints

if TYPE_CHECKING:  # the trainer imports this module: its type only, not at run time
    from robustft.training.loggers import RunLoggers
    from robustft.training.trainer import Trainer

__all__ = ["append", "evaluate_at", "evaluation_timing", "study_evaluation_share"]


def evaluate_at(trainer: Trainer, step: int, loggers: RunLoggers, started: float, eps: float | None = None) -> None:
    """The evaluation point at ``step`` of ``trainer`` (a ``training.trainer.Trainer``); see the module docstring.

    ``eps``: the eps the last update trained at (None at a run's first evaluation: read from the schedule).
    A stop signal during the evaluation saves ``last.pt`` with this evaluation pending and raises.
    """
    t0 = time.perf_counter()
    epoch = step / trainer.steps_per_epoch
    final = step == trainer.total_steps
    loggers.evaluating(step, final)
    try:
        with trainer.stop.abortable():
            records, outcomes = trainer.shared_evaluations.evaluate(trainer.evaluator, trainer.model, step, epoch,
                                                                    final)
    except StopNow:  # evaluations are long: stop now, evaluate this step when resumed
        trainer.strategy.train_mode(trainer.model)
        trainer._stopped(started, saved=False, pending_evaluation={"eps": eps})
    trainer.eval_seconds += time.perf_counter() - t0
    trainer.evaluation_points += 1
    if eps is None:
        eps = float(trainer.eps_at(min(int(epoch), trainer.total_epochs - 1), step, list(trainer.val_history)))
    records += _optimiser_records(trainer, step, epoch, eps)
    if step in trainer.eval_schedule.extra:
        # Not a point of the named schedule (paper A's grid has no point at the end of training): say so,
        # so that a curve compared with a paper's can leave it out.
        records = [{**r, "extra": {**(r.get("extra") or {}), "off_schedule": True}} for r in records]
    values = {record_key(r): r["value"] for r in records}
    if "val/clean/accuracy" in values and step == (len(trainer.val_history) + 1) * trainer.steps_per_epoch:
        # val_history[i]: validation clean accuracy at the end of epoch i (what the auto schedule reads)
        trainer.val_history.append(values["val/clean/accuracy"])
    append(trainer.run, trainer.run.outcomes_writer, "outcomes.bin", outcomes)
    append(trainer.run, trainer.run.metrics_writer, "metrics.jsonl", records)
    loggers.records(records)
    save_checkpoints(trainer, step, values.get(canonical_metric_key(trainer.cfg.checkpoint.best_metric)), started)
    trainer.strategy.train_mode(trainer.model)
    if trainer.on_evaluation is not None:
        trainer.on_evaluation(step, epoch, values)


def _optimiser_records(trainer: Trainer, step: int, epoch: float, eps: float) -> list[dict]:
    """eps and lr at ``step``; mean loss and training accuracy since the last evaluation (then reset)."""
    sums = trainer.sums
    records = [record(step, epoch, "optim", "eps", eps, None, None),
               record(step, epoch, "optim", "lr", trainer.optimizer.param_groups[0]["lr"], None, None)]
    if sums["batches"]:
        objective = trainer.cfg.objective.name
        records += [record(step, epoch, "optim", "loss", sums["loss"] / sums["batches"], objective, None,
                           sums["seen"]),
                    record(step, epoch, "optim", "train_accuracy", sums["correct"] / sums["seen"], objective, None,
                           sums["seen"], sums["correct"])]
    trainer.sums = {"loss": 0.0, "correct": 0, "seen": 0, "batches": 0}
    return records


def append(run: Any, writer: Callable[[], Any], file: str, items: list) -> None:
    """Appends ``items`` through the run's one writer of ``file`` (opening it may fail too); a full disk or a
    permission error names the fix."""
    try:
        writer().write(items)
    except OSError as error:
        raise RunWriteError(f"cannot append to {run.path}/{file} ({error.strerror or error}). Free disk "
                            "space or fix the directory's permissions, then resume with "
                            f"`robustft train --resume {run.path}`.") from None


def evaluation_timing(eval_seconds: float, wall_seconds: float, points: int | None, reused: bool) -> dict[str, Any]:
    """summary.json's evaluation cost: ``eval_seconds`` (wall time inside evaluations, across resumes),
    ``eval_share`` = eval_seconds / wall_seconds in [0, 1] (None for a zero wall time), ``evaluation_points``
    (evaluations this process ran, None when unknown) and ``evaluation_reused`` (the step-0 evaluation was read
    from the study's shared entry)."""
    share = min(1.0, max(0.0, eval_seconds / wall_seconds)) if wall_seconds > 0 else None
    return {"eval_seconds": eval_seconds, "eval_share": share, "evaluation_points": points,
            "evaluation_reused": reused}


def study_evaluation_share(summaries: Iterable[Mapping[str, Any] | None]) -> tuple[float, float, float | None]:
    """(evaluation seconds, wall seconds, share) summed over runs' summaries; runs without timings are left out.

    The share is the evaluation's part of the runs' own wall time (their sum), in [0, 1]; None when no run has
    a wall time.
    """
    evaluation = wall = 0.0
    for summary in summaries:
        if not summary or summary.get("wall_seconds") is None or summary.get("eval_seconds") is None:
            continue
        evaluation += float(summary["eval_seconds"])
        wall += float(summary["wall_seconds"])
    return evaluation, wall, (min(1.0, evaluation / wall) if wall > 0 else None)
