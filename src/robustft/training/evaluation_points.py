"""When a run evaluates: paper A's log-like schedule (read from its code), every N steps, every epoch, or a list.

A pure function of the run's length, like the eps and lr schedules in ``robustft.training.schedules``; its own
module because evaluation points are a concept of their own (import these names from here).

Schedules: ``paper-a`` (paper A's log-like steps, as its code's ``should_log``), ``every:N``, ``epoch``,
``steps:[0,10,50]``; step 0 and the end of training are always evaluated, and marked as extra points where the
named schedule does not hold them (:class:`EvaluationSchedule`).
"""

from __future__ import annotations

from dataclasses import dataclass

from robustft.config.schedule_specs import parse_evaluation_spec

__all__ = ["PAPER_A_RULES", "EvaluationSchedule", "evaluation_schedule", "evaluation_steps", "paper_a_evaluates"]

# Paper A's evaluation schedule, read from its code (kyangl/robustness-finetuning, scripts/finetune.py,
# ``should_log``): step s is evaluated when s % interval == 0 for the interval of the first bound s <= bound.
# (bound, interval); the last interval applies to every step above the last bound.
PAPER_A_RULES: tuple[tuple[int, int], ...] = (
    (100, 50), (300, 30), (1000, 200), (3000, 2000), (10000, 4000), (30000, 6000),
)
PAPER_A_TAIL_INTERVAL = 20000


def paper_a_evaluates(step: int) -> bool:
    """Paper A's ``should_log(step)``: whether its code evaluates after ``step`` updates (step 0 included).

    For example 50, 100, then 120, 150, ..., 300, then 400, 600, 800, 1000, then 2000, 4000, 8000, 12000, ...
    (3000 is not a point: 3000 falls under ``s <= 3000 and s % 2000 == 0``).
    """
    for bound, interval in PAPER_A_RULES:
        if step <= bound:
            return step % interval == 0
    return step % PAPER_A_TAIL_INTERVAL == 0




@dataclass(frozen=True)
class EvaluationSchedule:
    """The optimiser steps after which a run evaluates.

    Attributes:
        steps: every evaluation step, sorted and unique, within [0, total_steps], always holding 0 and
            total_steps.
        extra: the steps robustft adds to what the named schedule holds: the end of training when the
            schedule has no point there (paper A's 7040-step run: 7040), and step 0 for ``steps:[...]`` lists
            without it. The trainer marks records at these steps with ``extra.off_schedule = true``.
    """

    steps: tuple[int, ...]
    extra: frozenset[int]


def evaluation_schedule(spec: str, total_steps: int, steps_per_epoch: int) -> EvaluationSchedule:
    """The evaluation steps of ``spec`` over a run of ``total_steps``, with the extra points marked.

    Step s means "after s updates" (step 0 is the pretrained model with its new head). The end of training is
    always evaluated (the final strong evaluation runs there); paper A's code does that too (its
    ``on_train_end``), but the end is not on its log-like grid, so it is an extra point there.

    Args:
        spec: "paper-a", "every:N", "epoch" or "steps:[a,b,...]".
        total_steps: optimiser steps of the run (>= 0).
        steps_per_epoch: optimiser steps per epoch (>= 1), used by "epoch".
    """
    kind, argument = parse_evaluation_spec(spec)
    total = max(0, int(total_steps))
    if kind == "paper-a":
        points = set(_paper_a_steps(total))
    elif kind == "every":
        points = set(range(0, total + 1, argument))
    elif kind == "epoch":
        points = set(range(0, total + 1, max(1, int(steps_per_epoch))))
    else:
        points = {s for s in argument if 0 <= s <= total}
    extra = frozenset({0, total} - points)
    return EvaluationSchedule(tuple(sorted(points | extra)), extra)


def evaluation_steps(spec: str, total_steps: int, steps_per_epoch: int) -> list[int]:
    """``evaluation_schedule(...).steps`` as a list: sorted, unique, within [0, total_steps], with 0 and the end."""
    return list(evaluation_schedule(spec, total_steps, steps_per_epoch).steps)


def _paper_a_steps(total: int) -> list[int]:
    """The steps s in [0, total] with ``paper_a_evaluates(s)``, generated interval by interval."""
    steps, low = [0], 0
    for bound, interval in (*PAPER_A_RULES, (max(total, low), PAPER_A_TAIL_INTERVAL)):
        high = min(bound, total)
        first = (low // interval + 1) * interval  # the first multiple of interval above low
        steps.extend(range(first, high + 1, interval))
        low = max(low, bound)
        if low >= total:
            break
    return steps
