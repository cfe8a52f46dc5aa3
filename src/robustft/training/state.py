"""Resumable state: what a checkpoint must hold, besides the weights, for a resumed run to continue bit-for-bit
on CPU, written at every evaluation and read back on resume.

The training RNG (random starts of the inner attack, dropout), the optimiser and AMP scaler state, the step,
and the trainer's running sums since the last evaluation. The data order needs no state: the loader's
``set_epoch(epoch)`` reproduces an epoch's order, and the trainer skips the batches already consumed.
Everything is tensors and plain values so checkpoints load with ``weights_only=True``.

``save_checkpoints`` and ``resume_from_last`` read and set the attributes of a
``robustft.training.trainer.Trainer`` listed under its "Resumable state", and the resume enters the strategy's
phase through the trainer's ``_on_progress`` (the trainer is not imported here: it imports this module).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from robustft.runs.checkpoints import RESUME_KEYS, load_checkpoint, load_weights, save_checkpoint
from robustft.runs.metrics_file import RunWriteError
from robustft.training import components

if TYPE_CHECKING:  # the trainer imports this module: its type only, not at run time
    from robustft.training.trainer import Trainer


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The RNG states a training step consumes (torch CPU, the CUDA device's, Python's)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Restores what ``capture_rng`` captured."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoints(trainer: Trainer, step: int, metric: float | None, started: float) -> None:
    """Writes the trainer's state at ``step``: ``best.pt`` when ``metric`` improved on the best so far, a
    ``step_<step>.pt`` with ``checkpoint.every_eval``, and ``last.pt`` (the resume point) after the others.

    Args:
        trainer: the ``Trainer``; its ``best`` is updated first, so the checkpoint holds the new best.
        step: optimiser steps done.
        metric: the value of ``checkpoint.best_metric`` at this evaluation (None: not evaluated).
        started: ``time.perf_counter()`` when this process started training (wall time is accumulated).

    Raises:
        RunWriteError: a checkpoint cannot be written (the message says how to resume once fixed).
    """
    improved = metric is not None and (trainer.best is None or metric > trainer.best)
    if improved:
        trainer.best = metric
    payload = _payload(trainer, step, started)
    directory = Path(trainer.run.checkpoints_dir)
    try:
        if improved:
            save_checkpoint(directory / "best.pt", payload)
        if trainer.cfg.checkpoint.every_eval:
            save_checkpoint(directory / f"step_{step:08d}.pt", payload)
        save_checkpoint(directory / "last.pt", payload)  # last: the resume point, written after the others
    except OSError as error:
        raise RunWriteError(f"cannot write a checkpoint in {directory} ({error.strerror or error}). Free disk "
                            "space or fix permissions, then resume with `robustft train --resume "
                            f"{trainer.run.path}`.") from None


def _payload(trainer: Trainer, step: int, started: float) -> dict[str, Any]:
    return {
        **components.checkpoint_header(trainer.model, trainer.cfg),
        "model_state": trainer.model.state_dict(), "step": step, "epoch": step // trainer.steps_per_epoch,
        "optimizer": trainer.optimizer.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler else None,
        "rng": capture_rng(trainer.device), "best": trainer.best, "val_history": list(trainer.val_history),
        "sums": dict(trainer.sums), "eval_seconds": trainer.eval_seconds,
        "wall_seconds": trainer.wall_before + time.perf_counter() - started,
        "cpu_seconds": trainer.cpu_seconds(),
        "perturbed_steps": trainer.perturbed_steps, "train_eps_max": trainer.train_eps_max,
    }


def save_on_stop(trainer: Trainer, started: float, pending_evaluation: dict[str, Any] | None = None) -> None:
    """Writes ``last.pt`` at the trainer's current step when a stop signal ends training between two evaluation
    points (robustft.runs.interrupt), so the resumed run loses nothing.

    Called between two optimiser steps, so the state is whole: weights after ``trainer.step`` updates, the running
    sums since the last evaluation (the next evaluation's loss and train accuracy cover the steps of both
    processes), the RNG as the next step would draw from it. No record is written: ``metrics.jsonl`` ends at the
    last evaluation point, which is where the resume's truncation to step <= ``trainer.step`` leaves it.

    Args:
        trainer: the ``Trainer``.
        started: ``time.perf_counter()`` when this process started training.
        pending_evaluation: ``{"eps": eps}`` when the signal cut the evaluation of this step short; the resumed run
            evaluates this step first, then trains on. The learning rates in force are added: the evaluation's
            records hold the eps and lr of the step just done, as an uninterrupted run's do.

    Raises:
        RunWriteError: the checkpoint cannot be written.
    """
    directory = Path(trainer.run.checkpoints_dir)
    if pending_evaluation is not None:
        pending_evaluation = {**pending_evaluation, "lr": [float(g["lr"]) for g in trainer.optimizer.param_groups]}
    try:
        save_checkpoint(directory / "last.pt", {**_payload(trainer, trainer.step, started),
                                                "pending_evaluation": pending_evaluation})
    except OSError as error:
        raise RunWriteError(f"cannot write a checkpoint in {directory} ({error.strerror or error}); the run resumes "
                            f"from its last evaluation point: `robustft train --resume {trainer.run.path}`.") from None


def resume_from_last(trainer: Trainer) -> bool:
    """Restores the trainer from its run's ``last.pt`` and truncates ``metrics.jsonl`` and ``outcomes.bin`` to the
    checkpoint's step.

    Without ``last.pt`` (killed before the first checkpoint) every record is dropped and the run starts clean.
    The optimiser's moments are the checkpoint's, its hyperparameters the config's (a resume override of
    ``optim.lr`` or ``weight_decay`` applies).

    Returns:
        True when the run resumed from a checkpoint, False when it starts from step 0.
    """
    last = Path(trainer.run.checkpoints_dir) / "last.pt"
    if not last.is_file():
        trainer.run.truncate_metrics_after(-1)  # killed before the first checkpoint: start clean
        trainer.run.truncate_outcomes_after(-1)
        return False
    payload = load_checkpoint(last, map_location=trainer.device, require=RESUME_KEYS)
    load_weights(trainer.model, payload, last)
    trainer.step = int(payload["step"])
    trainer._on_progress()  # the strategy's phase at this step (LP-FT): may rebuild the optimiser, before it loads
    configured = [{k: v for k, v in group.items() if k != "params"} for group in trainer.optimizer.param_groups]
    trainer.optimizer.load_state_dict(payload["optimizer"])
    for group, settings in zip(trainer.optimizer.param_groups, configured, strict=True):
        # load_state_dict restores the saved hyperparameters too; the config's win (a resume override of
        # optim.lr or weight_decay applies), the moments are the checkpoint's.
        group.update(settings)
    if trainer.scaler and payload.get("scaler"):
        trainer.scaler.load_state_dict(payload["scaler"])
    restore_rng(payload["rng"], trainer.device)
    trainer.best, trainer.val_history = payload["best"], list(payload["val_history"])
    trainer.sums, trainer.eval_seconds = dict(payload["sums"]), float(payload["eval_seconds"])
    trainer.wall_before = float(payload["wall_seconds"])
    trainer.cpu_before = float(payload.get("cpu_seconds", 0.0))  # checkpoints before 2026-12 lack it
    trainer.pending_evaluation = payload.get("pending_evaluation")  # set when a stop signal cut an evaluation
    if trainer.pending_evaluation and len(trainer.pending_evaluation["lr"]) == len(trainer.optimizer.param_groups):
        for group, lr in zip(trainer.optimizer.param_groups, trainer.pending_evaluation["lr"], strict=True):
            group["lr"] = lr  # the last step's, which that evaluation records (the next update sets its own)
    # Checkpoints written before these were counted lack them: unknown (None) rather than a count from here on.
    trainer.perturbed_steps = payload.get("perturbed_steps")
    trainer.train_eps_max = payload.get("train_eps_max")
    trainer.run.truncate_metrics_after(trainer.step)
    trainer.run.truncate_outcomes_after(trainer.step)
    trainer.strategy.train_mode(trainer.model)
    return True
