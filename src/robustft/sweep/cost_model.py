"""What a run costs in GPU-hours, from its resolved config and a throughput per backbone (``reproduce --plan``).

Everything is counted in image passes, then priced with two numbers per backbone (:class:`Throughput`): the
seconds of one forward+backward pass of one 224-px image, and of one forward pass::

    seconds = (training passes + evaluation attack passes) x train  +  evaluation forward passes x forward

- training passes = images per optimiser step x (steps at eps = 0 x 1 + steps at eps > 0 x (1 + attack steps))
  (TRADES: 2 + attack steps: its update runs on x and x'). Which steps train at eps > 0 comes from the run's own
  eps schedule (``robustft.training.schedules``): Epsilon-Scheduling T1 = 12 of 50 epochs trains 13 epochs
  clean; ``auto`` is planned with the earliest plateau its patience allows (an upper bound);
- evaluation, at every point of the run's evaluation schedule (paper A's log-like steps, paper B's every epoch):
  per evaluated split, ``min(eval.subset, split size)`` images x (1 clean forward + attack steps x restarts per
  eval eps), the robust curve on the test split (its eps > 0 points x attack steps, at every point or the final
  one only), one forward per OOD split; once at the end, the final attack at every evaluated eps. Every attacked
  eps is priced on every image (robustft attacks only the images still correct at the previous eps, so this is
  an upper bound); gradient-masking checks are not counted.

ASHA (``reproduce --tune``): a search of n trials with grace period g, reduction factor r and budget T epochs
runs n trials to g, then about n / r^k of them past the k-th rung g r^(k-1) (at least one, the best, to T): see
:func:`asha_runs`. Its cost is that many full runs of the configuration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robustft.config.schema import section_from_dict
from robustft.config.units import eps_grid, parse_eps
from robustft.errors import ConfigError
from robustft.sweep.cost_tables import dataset_size
from robustft.training.evaluation_points import evaluation_schedule
from robustft.training.schedules import eps_schedule


@dataclass(frozen=True)
class Throughput:
    """Seconds per image of one backbone at 224 px.

    Attributes:
        train: one forward+backward pass (a training update or an attack step), seconds per image (> 0).
        forward: one forward pass (clean or OOD evaluation), seconds per image (> 0).
    """

    train: float
    forward: float


@dataclass(frozen=True)
class RunCost:
    """The image passes of one run and what they cost.

    Attributes:
        train_images: training images per epoch (the train pool less the validation hold-out).
        steps: optimiser steps; attacked_steps: those at eps > 0.
        evaluations: evaluation points (step 0 and the end included).
        train_passes: forward+backward image passes of training (updates and attack steps).
        eval_passes: forward+backward image passes of evaluation (attack steps).
        eval_forward: forward-only image passes of evaluation (clean, curve's eps 0, OOD).
        seconds: the priced total.
    """

    train_images: int
    steps: int
    attacked_steps: int
    evaluations: int
    train_passes: float
    eval_passes: float
    eval_forward: float
    seconds: float

    @property
    def gpu_hours(self) -> float:
        return self.seconds / 3600.0


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return config.get(name) or {}


def _update_passes(objective: Mapping[str, Any]) -> tuple[int, int]:
    """(passes per image at eps = 0, passes per image at eps > 0) of a training objective."""
    name, steps = objective.get("name", "standard"), int(objective.get("steps") or 0)
    if name == "standard":
        return 1, 1
    if name == "trades":
        return 1, 2 + steps
    return 1, 1 + steps


def attacked_steps(config: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> int:
    """Optimiser steps trained at eps > 0 under the run's eps schedule (0 for the standard objective).

    ``auto`` depends on the validation accuracy; it is evaluated on a flat history, i.e. with the plateau
    detected at the earliest epoch its patience allows (the most attacked epochs it can have).
    """
    if _section(config, "objective").get("name", "standard") == "standard" or total_steps <= 0:
        return 0
    settings = section_from_dict("eps", _section(config, "eps"))
    if parse_eps(settings.value) <= 0:
        return 0
    epochs = math.ceil(total_steps / steps_per_epoch)
    schedule = eps_schedule(settings, epochs, total_steps, steps_per_epoch, int(config.get("seed") or 0))
    flat = [0.5] * epochs
    if settings.per == "epoch":
        return sum(min(steps_per_epoch, total_steps - e * steps_per_epoch) for e in range(epochs)
                   if schedule(e, e * steps_per_epoch, flat[:e]) > 0)
    return sum(1 for s in range(total_steps) if schedule(s // steps_per_epoch, s, flat[: s // steps_per_epoch]) > 0)


def _attack_steps(attack: Mapping[str, Any] | None) -> int:
    if not attack:
        return 0
    return int(attack.get("steps") or 0) * max(1, int(attack.get("restarts") or 1))


def run_cost(config: Mapping[str, Any], speed: Throughput) -> RunCost:
    """The cost of the run a resolved config (``robustft.config.to_dict``) describes.

    Raises:
        ConfigError: a dataset or OOD split of unknown size (see ``robustft.sweep.cost_tables``).
    """
    data, optim, train = _section(config, "data"), _section(config, "optim"), _section(config, "train")
    evaluation = _section(config, "eval")
    pool, test = dataset_size(str(data.get("name")), data.get("limit_train"), data.get("limit_test"))
    val = round(float(data.get("val_fraction") or 0.0) * pool)
    sizes = {"train": min(pool - val, data.get("limit_train") or pool - val),
             "val": min(val, data.get("limit_val") or val), "test": min(test, data.get("limit_test") or test)}
    batch = int(optim.get("batch_size") or 128) * max(1, int(optim.get("accumulate") or 1))
    steps_per_epoch = max(1, sizes["train"] // batch)  # the trainer drops the last partial batch
    steps = int(train.get("steps") or int(train.get("epochs") or 1) * steps_per_epoch)
    attacked = attacked_steps(config, steps, steps_per_epoch)
    clean_pass, attacked_pass = _update_passes(_section(config, "objective"))
    train_passes = float(batch * ((steps - attacked) * clean_pass + attacked * attacked_pass))

    points = len(evaluation_schedule(str(evaluation.get("schedule") or "epoch"), steps, steps_per_epoch).steps)
    subset = evaluation.get("subset")

    def seen(size: int) -> int:
        return min(int(subset), size) if subset else size

    attack = _attack_steps(evaluation.get("attack"))
    eps = [parse_eps(e) for e in evaluation.get("eps") or [] if parse_eps(e) > 0]
    splits = [s for s in evaluation.get("splits") or sizes if s in sizes]
    fb = sum(seen(sizes[s]) * len(eps) * attack for s in splits) * points
    forward = sum(seen(sizes[s]) for s in splits) * points
    curve = parse_eps(evaluation["curve"]) if evaluation.get("curve") else 0.0
    if curve > 0:
        at = points if evaluation.get("curve_at", "every") == "every" else 1
        fb += seen(sizes["test"]) * sum(1 for e in eps_grid(curve) if e > 0) * attack * at
        forward += seen(sizes["test"]) * at
    if evaluation.get("ood", True):
        forward += sum(seen(dataset_size(str(name))[1]) for name in data.get("ood") or []) * points
    final = evaluation.get("final")
    if final:
        fb += seen(sizes["test"]) * len(set(eps) | ({curve} if curve > 0 else set())) * _attack_steps(final)
    seconds = (train_passes + fb) * speed.train + forward * speed.forward
    return RunCost(sizes["train"], steps, attacked, points, train_passes, float(fb), float(forward), seconds)


def asha_runs(trials: int, budget: int, grace: int, reduction_factor: int) -> float:
    """How many full runs' worth of training an ASHA search costs (trial-epochs / budget).

    All ``trials`` run to the first rung ``grace``; past the k-th rung (grace x factor^(k-1)) about
    trials / factor^k continue, and at least one (the best) runs every segment to ``budget``.

    Raises:
        ConfigError: trials, budget or grace below 1, grace above budget, or a factor below 2.
    """
    if trials < 1 or budget < 1 or not 1 <= grace <= budget or reduction_factor < 2:
        raise ConfigError(f"an ASHA search needs trials >= 1, 1 <= grace <= budget and a reduction factor >= 2; got "
                          f"trials={trials}, grace={grace}, budget={budget}, factor={reduction_factor}.")
    rungs = [grace]
    while rungs[-1] * reduction_factor < budget:
        rungs.append(rungs[-1] * reduction_factor)
    total = trials * float(grace)
    bounds = [*rungs, budget]
    for k in range(len(rungs)):
        total += max(1.0, trials / reduction_factor ** (k + 1)) * (bounds[k + 1] - bounds[k])
    return total / budget
