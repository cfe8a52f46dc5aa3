"""The trainer: any strategy x objective x eps schedule, evaluated continuously, resumable after kill -9.

Read top to bottom: ``train`` resolves the config, builds data / model / strategy / optimiser, then runs
``Trainer``: one optimiser step per iteration (``accumulate`` micro-batches), at the current eps from the eps
schedule and lr from ``lr_factor``; at every evaluation step it writes the per-image outcomes and the evaluation
records, then saves the checkpoints. The order matters for exact resume: a checkpoint at step s is written only
after every record and outcome block of step s, so a resumed run truncates ``metrics.jsonl`` and ``outcomes.bin``
to step <= s and carries on with nothing lost or doubled.

What happens at an evaluation point is ``training.evaluation_step``; a study's runs share a step-0 evaluation that
is the same computation (``training.evaluation_reuse``); the attack of an adversarial step runs on one prepared
copy per run (``training.crafting``).

A "step" is one optimiser update. An evaluation at step s sees the model after s updates (s = 0: the
pretrained model with its fresh head). Evaluation runs on its own forked RNG, so the training stream (attack
random starts, dropout) is the same whether or not a run was interrupted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from robustft import data
from robustft.attacks.registry import make_attack
from robustft.config import Config, load_config, to_dict
from robustft.device import resolve_device
from robustft.errors import ConfigError, RobustftError, TrainingDivergedError
from robustft.runs.interrupt import RunInterrupted, StopNow, StopRequest
from robustft.runs.lock import LOCK_FILE, RunLock
from robustft.runs.metrics_file import RunWriteError  # the one definition; robustft.runs re-exports it
from robustft.runs.run_dir import Run
from robustft.strategies.base import StrategyInfo
from robustft.training import components
from robustft.training.components import Splits
from robustft.training.crafting import CraftingCopy
from robustft.training.evaluation_points import evaluation_schedule
from robustft.training.evaluation_reuse import EvaluationReuse, shared_directory
from robustft.training.evaluation_step import append, evaluate_at, evaluation_timing
from robustft.training.evaluator import Evaluator, record
from robustft.training.loggers import RunLoggers
from robustft.training.objectives import ObjectiveContext, get_objective
from robustft.training.optim import build_optimizer
from robustft.training.schedules import eps_schedule, lr_factor
from robustft.training.state import resume_from_last, save_on_stop

log = logging.getLogger("robustft.training.trainer")


@dataclass
class RunResult:
    """A finished run: its directory and the summary written to ``summary.json``."""

    path: Path
    summary: dict[str, Any]


def train(config: Config | str | Path | None, overrides: Sequence[str] = (), *, resume: str | Path | None = None,
          quiet: bool | None = None, model: torch.nn.Module | None = None,
          datasets: Splits | None = None, device: str | torch.device | None = None) -> RunResult:
    """Fine-tunes a model as ``config`` says and returns the run directory and its summary.

    Args:
        config: a Config or a YAML path (a plain tree: ``robustft.config.from_dict(tree)``). With ``resume`` it may
            be None; if given it must resolve to the run's own config (the command that started the run, re-run),
            else RobustftError: a resumed run continues with its config.yaml, changed only by ``overrides``.
        overrides: dotted ``key=value`` overrides (``optim.lr=3e-4``). On resume they apply from the resumed
            step on: each changed key is recorded (a ``config_change`` record at that step) and config.yaml is
            rewritten to the new resolved config.
        resume: a run directory to continue from its last checkpoint.
        quiet: no progress bar (None -> ``logging.progress``).
        model: an already built ``RobustModel`` instead of ``models.build`` (tests, notebooks).
        datasets: ``{"train": ds, "val": ds, "test": ds, "ood": {name: ds}}`` instead of ``data.load``.
        device: train here instead of on the config's ``device``, without changing the config (a Ray task passes
            the GPU Ray gave it, or cpu; the run may resume on another node with another device).

    Raises:
        RobustftError: bad config, missing asset, unwritable run directory; TrainingDivergedError on NaN loss.
    """
    return build_trainer(config, overrides, resume=resume, quiet=quiet, model=model, datasets=datasets,
                         device=device).execute()


def build_trainer(config: Config | str | Path | None, overrides: Sequence[str] = (), *,
                  resume: str | Path | None = None, quiet: bool | None = None, model: torch.nn.Module | None = None,
                  datasets: Splits | None = None, device: str | torch.device | None = None) -> Trainer:
    """Everything ``train`` builds (run directory included), not yet run: ``.execute()`` trains.

    The benchmark times ``Trainer.update`` (one optimiser step exactly as the loop does it) through this.
    """
    # One writer per run directory (robustft.runs.lock): the lock is taken before anything is written and held
    # until ``execute`` returns. A resumed run is locked first, and a new run whose directory is locked by
    # another process is refused before the model is built.
    changes: list[components.Change] = []
    if resume is not None:
        run, cfg, changes = components.open_run(resume, overrides, config)
        run.lock()
    else:
        cfg = load_config(config, overrides)
        run = None
        _refuse_if_locked(Path(cfg.output_dir) / cfg.name)
    try:
        components.check_reference_run(cfg)
        device = resolve_device(cfg.device if device is None else device)
        torch.manual_seed(cfg.seed)
        splits = datasets if datasets is not None else components.load_datasets(cfg)
        num_classes = components.num_classes_of(splits["train"])
        if model is None:
            model = components.build_model(cfg, num_classes)
        strategy = components.apply_strategy(model, cfg)
        model.to(device)
        trainer = Trainer(cfg, run, model, strategy, splits, device, num_classes)
        trainer.config_changes = changes
        if run is None:  # created (and locked) last: a config that fails to build leaves no run directory behind
            trainer.run = _create_run(cfg, str(device))
    except BaseException:
        if run is not None:
            run.unlock()
        raise
    if quiet is not None:
        trainer.progress = not quiet
    return trainer


def _refuse_if_locked(path: Path) -> None:
    """Fails at once when another live process holds ``path``'s lock (the real lock is taken at creation)."""
    if (path / LOCK_FILE).is_file():
        with RunLock(path):
            pass


def _create_run(cfg: Config, device: str | None = None) -> Run:
    path = Path(cfg.output_dir) / cfg.name
    if (path / "metrics.jsonl").exists() and (path / "metrics.jsonl").stat().st_size > 0:
        raise RobustftError(f"run directory {path} already holds a run. Resume it with `robustft train --resume "
                            f"{path}`, or choose another name (name=...) or output_dir.")
    try:
        return Run.create(path, to_dict(cfg), lock=True, device=device)
    except RobustftError:
        raise  # RunExistsError and RunWriteError are OSErrors too, with their own messages
    except OSError as error:
        raise RunWriteError(f"cannot create the run directory {path} ({error.strerror or error}). "
                            "Choose a writable output_dir (output_dir=...) or free disk space.") from None


class Trainer:
    """The training loop of one run; what a checkpoint must capture is listed under "Resumable state"."""

    def __init__(self, cfg: Config, run: Run | None, model: torch.nn.Module, strategy: StrategyInfo,
                 splits: Splits, device: torch.device, num_classes: int) -> None:
        self.cfg, self.run, self.model, self.strategy, self.device = cfg, run, model, strategy, device
        self.num_classes = num_classes
        self.progress = bool(cfg.logging.progress)
        self.cpu_fast_paths, self.batch_format = components.use_cpu_fast_paths(model, device, cfg)
        optim = cfg.optim
        self.accumulate = max(1, int(optim.accumulate))
        # The shuffled training loader (drop_last: every step sees a full batch), seeded by the run seed.
        self.loader = data.make_loader(splits["train"], int(optim.batch_size), shuffle=True, seed=cfg.seed,
                                       drop_last=True, augment=cfg.data.augment, device=str(device))
        self.steps_per_epoch = max(1, len(self.loader) // self.accumulate)
        if len(self.loader) < self.accumulate:
            raise RobustftError(f"the training split has {len(self.loader)} batches of {optim.batch_size}, fewer "
                                f"than optim.accumulate={self.accumulate}; lower optim.batch_size or accumulate.")
        self.total_steps = int(cfg.train.steps or cfg.train.epochs * self.steps_per_epoch)
        self.total_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        warmup = optim.warmup or 0
        self.warmup_steps = int(round(warmup * self.total_steps)) if isinstance(warmup, float) and warmup < 1 \
            else int(warmup)
        self.eval_schedule = evaluation_schedule(cfg.eval.schedule, self.total_steps, self.steps_per_epoch)
        self.eval_steps = set(self.eval_schedule.steps)
        self._check_auto_sees_every_epoch_end()
        self.eps_at = eps_schedule(cfg.eps, self.total_epochs, self.total_steps, self.steps_per_epoch, cfg.seed)
        if self.eps_at.per != cfg.eps.per:
            log.info("eps.schedule=%s over %d epoch(s) resolved per step (T1 = step %s, T2 = step %s): whole epochs "
                     "cannot hold its ramp", cfg.eps.schedule, self.total_epochs, self.eps_at.t1, self.eps_at.t2)
        self.objective = get_objective(cfg.objective.name)
        self.amp = device.type == "cuda" and optim.amp in ("auto", True)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.context = ObjectiveContext(
            attack=make_attack(cfg.objective.attack_spec) if cfg.objective.name == "adversarial" else None,
            train_mode=strategy.train_mode, beta=float(cfg.objective.beta), steps=int(cfg.objective.steps),
            trades_fused=bool(cfg.objective.trades_fused), step_size=cfg.objective.step_size,
            autocast=(lambda: torch.autocast("cuda", dtype=torch.float16)) if self.amp else None,
            crafting=CraftingCopy(), small_map_depthwise=self.cpu_fast_paths)  # crafting: training.crafting
        self.evaluator = Evaluator({k: v for k, v in splits.items() if k != "ood"}, splits.get("ood") or {},
                                   cfg.eval, cfg.seed, device)
        self.optimizer = self._build_optimizer()
        # Resumable state (what robustft.training.state saves in a checkpoint and restores on resume).
        self.step, self.best, self.val_history = 0, None, []
        # Steps whose objective crafted a perturbation (eps > 0) and the largest eps handed to it, so a run that never
        # perturbed says so in summary.json (None: unknown, resumed from a checkpoint that predates these counts).
        self.perturbed_steps: int | None = 0
        self.train_eps_max: float | None = 0.0
        self.sums = {"loss": 0.0, "correct": 0, "seen": 0, "batches": 0}
        self.eval_seconds, self.wall_before, self.cpu_before = 0.0, 0.0, 0.0
        self.evaluation_points = 0  # evaluations run by this process (summary.json: evaluation_points)
        # A study's runs share a step-0 evaluation that is the same computation (training.evaluation_reuse).
        self.shared_evaluations = EvaluationReuse(shared_directory(cfg.output_dir))
        self.pending_evaluation: dict[str, Any] | None = None  # an evaluation a stop signal cut short
        self.stop = StopRequest()  # SIGINT / SIGTERM: checkpoint and stop between two steps (runs.interrupt)
        self.cpu_started = time.process_time()  # reset when training starts
        self.config_changes: list[tuple[str, Any, Any]] = []  # a resume's overrides, recorded when it starts
        # Called after each evaluation's records and checkpoint are written: (step, epoch, {record key: value}).
        # robustft.sweep.tune reports the tuned metric to Ray Tune from here, so ASHA can stop a bad trial early.
        self.on_evaluation: Callable[[int, float, dict[str, Any]], None] | None = None
        # Called once training is about to start, with the step it starts from (a resumed run: its checkpoint's)
        # and whether it resumed; robustft.sweep.store_run records each attempt on a cluster with it.
        self.on_start: Callable[[int, bool], None] | None = None

    def _check_auto_sees_every_epoch_end(self) -> None:
        """``auto`` reads the validation accuracy of every epoch end; an evaluation schedule that skips one leaves
        its history empty from there on, and eps silently 0 for the rest of the run: refuse it before training."""
        if self.cfg.eps.schedule != "auto":
            return
        ends = range(self.steps_per_epoch, self.total_steps, self.steps_per_epoch)  # the last epoch's end is moot
        missing = [step for step in ends if step not in self.eval_steps]
        if missing:
            raise ConfigError(
                f"eps.schedule=auto reads validation accuracy at the end of every epoch, but eval.schedule="
                f"{self.cfg.eval.schedule!r} does not evaluate at step {missing[0]} (the end of epoch "
                f"{missing[0] // self.steps_per_epoch - 1}; {self.steps_per_epoch} steps per epoch), so eps would "
                "stay 0 from there on. Set eval.schedule=epoch (or every:N with N dividing "
                f"{self.steps_per_epoch}).")

    def _build_optimizer(self) -> torch.optim.Optimizer:
        optim = self.cfg.optim
        return build_optimizer(self.model, float(optim.lr), float(optim.weight_decay), tuple(optim.betas),
                               None if optim.head_lr is None else float(optim.head_lr),
                               getattr(getattr(self.model, "info", None), "head", None),
                               None if optim.head_weight_decay is None else float(optim.head_weight_decay))

    # ------------------------------------------------------------------ the loop
    def execute(self) -> RunResult:
        """Trains to the end (resuming from the last checkpoint if there is one); releases the run's lock."""
        try:
            with self.stop:
                return self._execute()
        except StopNow as stop:  # a second signal, mid-step: the last checkpoint stands
            raise RunInterrupted(stop.signum, self.run.path, self.step, saved=False) from None
        finally:
            self.run.unlock()

    def _execute(self) -> RunResult:
        resumed = self._maybe_resume()
        if self.on_start is not None:
            self.on_start(self.step, resumed)
        if self.config_changes:
            # Recorded first, config.yaml rewritten second: a crash in between leaves the old config.yaml, so
            # the next resume with the same overrides records the change again rather than losing it.
            self._write(components.config_change_records(self.config_changes, self.step,
                                                         self.step / self.steps_per_epoch))
            components.rewrite_config(self.run, self.cfg)
            log.info("resumed at step %d with %s", self.step,
                     ", ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in self.config_changes))
            self.config_changes = []
        started = time.perf_counter()
        self.cpu_started = time.process_time()
        loggers = RunLoggers(self.run.path, self.total_steps, self.step, self.progress, self.cfg.logging.tensorboard,
                             self.cfg.logging.mlflow, self.cfg.name)
        try:
            if not resumed or self.pending_evaluation is not None:
                self._evaluate(self.step, loggers, started, (self.pending_evaluation or {}).get("eps"))
            batches = None
            while self.step < self.total_steps:
                epoch, index = divmod(self.step, self.steps_per_epoch)
                if batches is None or index == 0:
                    batches = self._epoch_batches(epoch, skip=index * self.accumulate)
                eps = float(self.eps_at(epoch, self.step, list(self.val_history)))
                self._on_progress()
                loss = self.update(batches, eps)
                self.step += 1
                loggers.step(epoch, loss, eps)
                if self.step in self.eval_steps:
                    self._evaluate(self.step, loggers, started, eps)
                if self.stop.requested:  # between two steps; an evaluation point saved its checkpoint already
                    self._stopped(started, saved=self.step in self.eval_steps)
        finally:
            loggers.close()
        return self._finish(started)

    def _epoch_batches(self, epoch: int, skip: int):
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)
        with torch.random.fork_rng(devices=[]):
            iterator = iter(self.loader)
            for _ in range(skip):  # resuming mid-epoch: the same order, minus what was already consumed
                next(iterator)
        return iterator

    @staticmethod
    def _next_batch(batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        # Data loading may draw from the global RNG (torch's DataLoader seeds its iterator from it); keep it off
        # the training stream, or a resumed run, whose iterator is created at another point, would drift.
        with torch.random.fork_rng(devices=[]):
            return next(batches)

    def update(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], eps: float) -> float:
        """One optimiser step over ``accumulate`` batches from ``batches`` at ``eps``; returns the mean loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(self.step, self.total_steps, self.warmup_steps,
                                                       self.cfg.optim.lr_schedule)
        total, crafted = 0.0, 0.0
        for _ in range(self.accumulate):
            images, labels = self._next_batch(batches)
            images = images.to(self.device, non_blocking=True, memory_format=self.batch_format)
            labels = labels.to(self.device, non_blocking=True)
            self.context.crafted_eps = 0.0
            loss, logits = self.objective(self.model, images, labels, eps, self.context)
            crafted = max(crafted, float(self.context.crafted_eps))
            if not torch.isfinite(loss):
                self._diverged(float(loss.detach()), eps)
            scaled = loss / self.accumulate
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += float(loss.detach()) / self.accumulate
            self.sums["correct"] += int((logits.detach().argmax(1) == labels).sum())
            self.sums["seen"] += len(labels)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                           float(self.cfg.optim.grad_clip))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.sums["loss"] += total
        self.sums["batches"] += 1
        if self.perturbed_steps is not None:
            self.perturbed_steps += int(crafted > 0)
        if self.train_eps_max is not None:
            self.train_eps_max = max(self.train_eps_max, float(eps))
        return total

    def _on_progress(self) -> None:
        """Before each step: strategies that change what trains over time (LP-FT's probe-then-fine-tune phases)
        set ``requires_grad`` for the phase in force; on a change the optimiser is rebuilt over the new set (fresh
        moments, as LP-FT restarts its optimiser between phases)."""
        callback = getattr(self.strategy, "on_progress", None)
        if callback is not None and callback(self.model, self.step / self.total_steps):
            self.optimizer = self._build_optimizer()

    def _diverged(self, value: float, eps: float) -> None:
        epoch = self.step / self.steps_per_epoch
        self._write([record(self.step, epoch, "optim", "diverged", float("nan") if math.isnan(value) else value,
                            None, eps, None)])
        raise TrainingDivergedError(
            f"the training loss became {value} at step {self.step} (epoch {epoch:.2f}, eps {eps * 255:.2f}/255, lr "
            f"{self.optimizer.param_groups[0]['lr']:.3g}). Lower optim.lr, set optim.grad_clip (e.g. 1.0), or "
            f"turn off mixed precision (optim.amp=false). The run directory {self.run.path} is intact up to "
            "its last evaluation; fix the config and start a new run.")

    # ------------------------------------------------------------------ evaluation points (evaluation_step.py)
    def _evaluate(self, step: int, loggers: RunLoggers, started: float, eps: float | None = None) -> None:
        evaluate_at(self, step, loggers, started, eps)

    def _stopped(self, started: float, saved: bool, pending_evaluation: dict[str, Any] | None = None) -> NoReturn:
        """Saves ``last.pt`` at this step unless ``saved``, then raises ``RunInterrupted`` (a stop signal)."""
        if not saved:
            save_on_stop(self, started, pending_evaluation)
        raise RunInterrupted(self.stop.signum or 0, self.run.path, self.step, saved=True)

    def _write(self, records: list[dict]) -> None:
        append(self.run, self.run.metrics_writer, "metrics.jsonl", records)

    def _maybe_resume(self) -> bool:
        """Continues from the run's last checkpoint if it has one (``state.resume_from_last``)."""
        resumed = resume_from_last(self)
        if resumed:
            log.info("resuming %s at step %d of %d", self.run.path, self.step, self.total_steps)
        return resumed

    def cpu_seconds(self) -> float:
        """CPU seconds this run has used, all threads of its training process, across resumes: what a study sums
        (a Ray worker's time is not a child process of the study's, so the study cannot measure it itself)."""
        return self.cpu_before + time.process_time() - self.cpu_started

    def _finish(self, started: float) -> RunResult:
        wall = self.wall_before + time.perf_counter() - started
        summary = components.summarize_run(self.run, self.cfg, self.strategy, self.num_classes,
                                           wall_seconds=wall, eval_seconds=self.eval_seconds,
                                           cpu_seconds=self.cpu_seconds(),
                                           total_steps=self.total_steps, eps_at=self.eps_at,
                                           val_history=self.val_history, perturbed_steps=self.perturbed_steps,
                                           train_eps_max=self.train_eps_max)
        summary.update(evaluation_timing(self.eval_seconds, wall, self.evaluation_points,
                                         self.shared_evaluations.reused))
        try:
            self.run.write_summary(summary)
        except OSError as error:
            raise RunWriteError(f"cannot write {self.run.path}/summary.json ({error.strerror or error}).") from None
        return RunResult(Path(self.run.path), summary)
