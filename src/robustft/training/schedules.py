"""Schedules as pure functions of the epoch/step the caller passes: training eps and learning rate (evaluation
points: ``robustft.training.evaluation_points``).

timm style: no hidden state, so a resumed run computes exactly the values an uninterrupted run computes.

Eps schedules (paper B, "Epsilon-Scheduling"): ``eps(t) = alpha(t) * eps_g`` with

    alpha(t) = 0                     for t < T1
             = (t - T1) / (T2 - T1)  for T1 <= t < T2
             = 1                     for t >= T2

``t`` is the epoch (0-based; ``per: epoch``, paper B) or the optimiser step (``per: step``). T1/T2 are ints in
the unit of ``per`` (epochs or steps) or floats in [0, 1], fractions of training resolved with ``floor`` so that
0.25 and 0.75 of 50 epochs give paper B's 12 and 37. When too few epochs would collapse a fractional ramp
(one epoch: T1 = T2 = 0), ``scheduled`` and ``linear`` resolve it per step instead (:func:`resolve_ramp`).
Special cases: T1 = T2 = 0 is RFT-fix (constant eps_g), T1 = 0 is a linear warm-up, T1 = T2 > 0 is a jump.
``uniform`` draws eps ~ U[0, eps_g] per epoch from ``(seed, epoch)``; ``auto`` keeps eps = 0 until validation
accuracy plateaus, and is a pure function of the validation history the caller passes.

Evaluation schedules (``paper-a``, ``every:N``, ``epoch``, ``steps:[...]``) are in
``robustft.training.evaluation_points``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robustft.config.schedule_specs import EPS_SCHEDULE_ALIASES, check_ramp_within_run
from robustft.errors import ConfigError
from robustft.registry import Registry

__all__ = [
    "EPS_SCHEDULES",
    "AutoEpsState",
    "EpsSchedule",
    "epoch_val_history",
    "eps_schedule",
    "lr_factor",
    "resolve_duration",
]


class EpsSettings(Protocol):
    """What an eps schedule reads from the config's ``eps`` section (robustft.config.EpsConfig)."""

    schedule: str
    value: float
    t1: int | float
    t2: int | float
    per: str
    patience: int
    tolerance: float


def resolve_duration(value: int | float, total: int) -> int:
    """A duration as a count: ints are counts already; floats in [0, 1] are ``floor(value * total)``.

    Args:
        value: an int count, or a float fraction of ``total``.
        total: the length of training in the same unit (epochs or steps), >= 0.

    Returns:
        The count, clipped to [0, total] for fractions (ints are returned unchanged).
    """
    if isinstance(value, bool):
        raise ConfigError(f"a duration must be an int or a fraction in [0, 1], not {value!r}.")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"a duration must not be negative, got {value}.")
        return value
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"a fractional duration must be in [0, 1], got {value}; write an int for a count.")
    # The epsilon guards against 0.75 * 100 = 74.99999... style float error.
    return min(total, math.floor(value * total + 1e-9))


def scheduled_alpha(t: float, t1: float, t2: float) -> float:
    """Paper B's alpha(t): 0 before T1, linear from 0 at T1 to 1 at T2, 1 from T2 on (a jump when T1 == T2)."""
    if t < t1:
        return 0.0
    if t >= t2:
        return 1.0
    return (t - t1) / (t2 - t1)


@dataclass(frozen=True)
class AutoEpsState:
    """Plateau detection of the ``auto`` schedule, computed from a validation-accuracy history.

    Attributes:
        t1: paper B's T1, the epoch at whose end the plateau was detected (0-based), or None. As in paper B's
            formula alpha(T1) = 0, so eps grows from the epoch after it, the first one trained after the
            plateau was seen.
        best: the validation accuracy at the last progress (-inf for an empty history).
        since_best: epochs since the last gain larger than the tolerance.
    """

    t1: int | None
    best: float
    since_best: int

    @classmethod
    def from_history(cls, val_history: Sequence[float], patience: int, tolerance: float) -> AutoEpsState:
        """Scans ``val_history[i]`` (validation clean accuracy after epoch i, in [0, 1]) in order.

        A value counts as progress when it beats the reference (the accuracy at the last progress, initially the
        first value) by more than ``tolerance`` (absolute, so 0.02 is two accuracy points). After ``patience``
        epochs in a row without progress the plateau is detected at epoch i, and paper B makes "that epoch"
        T1 = i. Later values cannot change T1.
        """
        best, since_best = -math.inf, 0
        for index, accuracy in enumerate(val_history):
            accuracy = float(accuracy)
            if accuracy > best + tolerance or best == -math.inf:
                best, since_best = accuracy, 0
            else:
                # Keras ReduceLROnPlateau semantics: small gains do not move the reference, so a slow but steady
                # climb (1.5 points per epoch with tolerance 2) still counts as progress every other epoch.
                since_best += 1
                if since_best >= patience:
                    return cls(t1=index, best=best, since_best=since_best)
        return cls(t1=None, best=best, since_best=since_best)


class EpsSchedule:
    """A training-eps schedule: call it with ``(epoch, step, val_history=())`` to get eps in pixel units.

    Attributes:
        name: the registry name.
        eps_max: eps_g, the target epsilon in [0, 1].
        per: "epoch" or "step": which argument is the time t.
        t1, t2: resolved in the unit of ``per`` (None where the schedule has none).
    """

    def __init__(
        self,
        name: str,
        eps_max: float,
        per: str,
        alpha: Callable[[int, Sequence[float]], float],
        t1: int | None = None,
        t2: int | None = None,
        ramp_after: Callable[[Sequence[float]], tuple[int | None, int | None]] | None = None,
    ) -> None:
        self.name, self.eps_max, self.per, self.t1, self.t2 = name, eps_max, per, t1, t2
        self._alpha = alpha
        self._ramp_after = ramp_after

    def ramp(self, val_history: Sequence[float] = ()) -> tuple[int | None, int | None]:
        """(T1, T2) in the unit of ``per``: fixed at construction, except for schedules that decide them while
        training (``auto``), whose ramp follows from the validation history seen so far ((None, None) while no
        plateau has been detected, and for good if none came: then eps stayed 0)."""
        if self._ramp_after is not None:
            return self._ramp_after(val_history)
        return self.t1, self.t2

    def alpha(self, epoch: int, step: int, val_history: Sequence[float] = ()) -> float:
        """The fraction of eps_g in [0, 1] at this epoch (0-based) and optimiser step."""
        t = epoch if self.per == "epoch" else step
        return float(self._alpha(t, val_history))

    def __call__(self, epoch: int, step: int, val_history: Sequence[float] = ()) -> float:
        return self.alpha(epoch, step, val_history) * self.eps_max

    def __repr__(self) -> str:
        return f"EpsSchedule({self.name!r}, eps_max={self.eps_max:.5f}, per={self.per!r}, t1={self.t1}, t2={self.t2})"


@dataclass(frozen=True)
class ScheduleContext:
    """The length of training handed to schedule factories."""

    total_epochs: int
    total_steps: int
    steps_per_epoch: int
    seed: int

    def total(self, per: str) -> int:
        return self.total_epochs if per == "epoch" else self.total_steps


EpsFactory = Callable[[EpsSettings, ScheduleContext], EpsSchedule]
EPS_SCHEDULES: Registry[EpsFactory] = Registry("eps schedule")


@EPS_SCHEDULES.register("zero")
def _zero(settings: EpsSettings, context: ScheduleContext) -> EpsSchedule:
    """eps = 0 throughout: standard fine-tuning whatever the objective."""
    return EpsSchedule("zero", settings.value, settings.per, lambda t, history: 0.0)


@EPS_SCHEDULES.register("constant")
def _constant(settings: EpsSettings, context: ScheduleContext) -> EpsSchedule:
    """eps = eps_g from the first step: RFT-fix, paper B's baseline (T1 = T2 = 0)."""
    return EpsSchedule("constant", settings.value, settings.per, lambda t, history: 1.0, t1=0, t2=0)


# A ramp asked for as fractions of training that whole epochs resolve to fewer epochs than this is a jump (1)
# or nothing at all (0): with that few epochs the per-epoch schedules resolve per step instead.
MIN_RAMP_EPOCHS = 2


def resolve_ramp(t1: int | float, t2: int | float, per: str, context: ScheduleContext,
                 schedule: str = "scheduled") -> tuple[str, int, int]:
    """(per, T1, T2) of a ramp: in the unit of ``per``, or per step when whole epochs cannot hold it.

    Paper B's schedule is per epoch. With few epochs, fractions floored to whole epochs lose its shape: on one
    epoch T1 = T2 = 0 (the constant schedule, still labelled ``scheduled``), on two epochs 0.25 and 0.75 give a
    jump at epoch 1. So when ``per`` is epoch, a duration is a fraction, and either a fractional T1 > 0 floors
    to epoch 0 or the ramp from T1 to T2 (asked for, T1 != T2) spans fewer than ``MIN_RAMP_EPOCHS`` epochs, the
    ramp is resolved per step: t becomes the step (a fractional epoch), fractions are of the training steps and
    int durations are epochs of ``steps_per_epoch`` steps. The schedule then reports ``per == "step"``.

    Raises:
        ConfigError: T1 after T2; a whole-count T1 at or after the run's end, or T2 after it
            (``config.schedule_specs.check_ramp_within_run``).
    """
    total = context.total(per)
    check_ramp_within_run(schedule, t1, t2, per, total,
                          f"{context.total_epochs} epoch{'s' * (context.total_epochs != 1)} of "
                          f"{context.steps_per_epoch} steps"
                          if per == "epoch" else f"{context.total_steps} steps")
    first, second = resolve_duration(t1, total), resolve_duration(t2, total)
    fractional = isinstance(t1, float) or isinstance(t2, float)
    late_start_lost = isinstance(t1, float) and t1 > 0 and first == 0
    ramp_lost = t1 != t2 and 0 <= second - first < MIN_RAMP_EPOCHS
    collapsed = late_start_lost or ramp_lost
    if per == "epoch" and fractional and collapsed and context.total_steps > context.total_epochs:
        per, steps = "step", max(1, context.steps_per_epoch)
        first, second = (resolve_duration(v, context.total_steps) if isinstance(v, float) else v * steps
                         for v in (t1, t2))
    if first > second:
        raise ConfigError(
            f"eps.t1 ({t1} -> {first} {per}s) is after eps.t2 ({t2} -> {second}); "
            "T1 must be <= T2 (T1 = T2 = 0 is the constant schedule)."
        )
    return per, first, second


@EPS_SCHEDULES.register("scheduled")
def _scheduled(settings: EpsSettings, context: ScheduleContext) -> EpsSchedule:
    """Paper B's Epsilon-Scheduling: 0 before T1, linear to eps_g at T2, then eps_g (e.g. T1=12, T2=37 of 50)."""
    per, t1, t2 = resolve_ramp(settings.t1, settings.t2, settings.per, context)
    return EpsSchedule("scheduled", settings.value, per, lambda t, h: scheduled_alpha(t, t1, t2), t1, t2)


@EPS_SCHEDULES.register("linear")
def _linear(settings: EpsSettings, context: ScheduleContext) -> EpsSchedule:
    """Linear warm-up: the scheduled schedule with T1 = 0 (eps grows from 0 to eps_g at T2)."""
    per, _, t2 = resolve_ramp(0, settings.t2, settings.per, context, "linear")
    return EpsSchedule("linear", settings.value, per, lambda t, h: scheduled_alpha(t, 0, t2), 0, t2)


@EPS_SCHEDULES.register("uniform")
def _uniform(settings: EpsSettings, context: ScheduleContext) -> EpsSchedule:
    """eps ~ U[0, eps_g] drawn per epoch (or step), reproducible from (seed, t) so a resumed run redraws it."""
    seed = context.seed

    def alpha(t: int, history: Sequence[float]) -> float:
        # A fresh generator per (seed, t): no state to carry across a resume.
        return float(np.random.default_rng([seed, int(t), 0x45505355]).uniform(0.0, 1.0))

    return EpsSchedule("uniform", settings.value, settings.per, alpha)


@EPS_SCHEDULES.register("auto")
def _auto(settings: EpsSettings, context: ScheduleContext) -> EpsSchedule:
    """eps = 0 until validation accuracy plateaus (patience, tolerance); then linear to eps_g at the last epoch."""
    patience, tolerance = settings.patience, settings.tolerance
    per, steps_per_epoch = settings.per, max(1, context.steps_per_epoch)
    last = max(0, context.total(per) - 1)

    def alpha(t: int, history: Sequence[float]) -> float:
        # Only the epochs completed before epoch t may decide its eps: then resume is exact. T1 is the epoch
        # whose end showed the plateau and alpha(T1) = 0, so no epoch trains at eps > 0 before it is known.
        epoch = t if per == "epoch" else t // steps_per_epoch
        state = AutoEpsState.from_history(list(history)[: max(0, epoch)], patience, tolerance)
        if state.t1 is None:
            return 0.0
        # per step: the ramp starts at the end of epoch T1 (the step the plateau became known), the step
        # analogue of alpha(T1) = 0 per epoch.
        start = state.t1 if per == "epoch" else (state.t1 + 1) * steps_per_epoch
        return scheduled_alpha(t, start, max(start, last))

    def ramp_after(history: Sequence[float]) -> tuple[int | None, int | None]:
        t1 = AutoEpsState.from_history(list(history), patience, tolerance).t1
        if t1 is None:
            return None, None
        start = t1 if per == "epoch" else (t1 + 1) * steps_per_epoch
        return start, max(start, last)

    return EpsSchedule("auto", settings.value, per, alpha, ramp_after=ramp_after)


# Paper B's names for the schedules (config/schedule_specs.py holds them, so that config validation
# knows them without importing this module).
for _alias, _name in EPS_SCHEDULE_ALIASES.items():
    EPS_SCHEDULES.add_alias(_alias, _name)


def epoch_val_history(records: Iterable[Mapping[str, Any]], steps_per_epoch: int, split: str = "val") -> list[float]:
    """The ``val_history`` that ``auto`` reads, rebuilt from metrics records (so a resumed run gets the same one).

    ``val_history[i]`` is the clean accuracy of ``split`` evaluated at the end of epoch i, i.e. at step
    ``(i + 1) * steps_per_epoch``. The step-0 evaluation (before training) and mid-epoch evaluations are not part
    of it; the history stops at the first epoch end without an evaluation. Clean records are ``metric ==
    "accuracy"`` with attack null or "clean"; when a step was recorded twice the last record wins.

    Args:
        records: metrics records (dicts of the long schema), in file order.
        steps_per_epoch: optimiser steps per epoch (>= 1).
        split: the validation split's name.
    """
    per_epoch = max(1, int(steps_per_epoch))
    by_step: dict[int, float] = {}
    for item in records:
        clean = item.get("attack") in (None, "clean") and not item.get("eps")
        if item.get("split") == split and item.get("metric") == "accuracy" and clean and item.get("value") is not None:
            by_step[int(item["step"])] = float(item["value"])
    history: list[float] = []
    while (len(history) + 1) * per_epoch in by_step:
        history.append(by_step[(len(history) + 1) * per_epoch])
    return history


def eps_schedule(
    settings: EpsSettings, total_epochs: int, total_steps: int, steps_per_epoch: int, seed: int = 0
) -> EpsSchedule:
    """Builds the training-eps schedule named by ``settings.schedule`` (the config's ``eps`` section).

    Args:
        settings: the config's ``eps`` section (an object with schedule, value (eps_g), t1, t2, per, patience,
            tolerance); a plain dict (a run's config.yaml) becomes one with
            ``robustft.config.section_from_dict("eps", section)``.
        total_epochs: epochs of training (ceil(total_steps / steps_per_epoch) when training by steps).
        total_steps: optimiser steps of training.
        steps_per_epoch: optimiser steps per epoch.
        seed: the run's seed (used by ``uniform``).

    Returns:
        ``sched(epoch, step, val_history=()) -> eps`` in [0, eps_g]; ``val_history[i]`` is the validation
        clean accuracy at the end of epoch i, NOT including the step-0 evaluation (only ``auto`` reads it;
        :func:`epoch_val_history` builds it from metrics records).

    Raises:
        UnknownNameError: unknown schedule name, with the valid names.
        ConfigError: T1 after T2.
    """
    if isinstance(settings, Mapping):
        raise ConfigError("eps_schedule takes the eps section as an object (cfg.eps); build one from a plain dict "
                          "(a run's config.yaml) with robustft.config.section_from_dict('eps', section).")
    factory = EPS_SCHEDULES.get(settings.schedule)
    context = ScheduleContext(int(total_epochs), int(total_steps), int(steps_per_epoch), int(seed))
    return factory(settings, context)


def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str = "cosine") -> float:
    """The learning-rate multiplier in [0, 1] at optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (so the first update is
    not wasted at lr 0), then ``cosine`` (1 -> 0), ``linear`` (1 -> 0) or ``constant`` (1) over the rest.
    """
    if kind not in ("cosine", "linear", "constant"):
        raise ConfigError(f"unknown lr schedule {kind!r}; valid: cosine, linear, constant.")
    if warmup_steps > 0 and step < warmup_steps:
        return min(1.0, (step + 1) / warmup_steps)
    if kind == "constant":
        return 1.0
    progress = min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))
