"""Edges of the schedules that mutation testing (`make mutation`) showed no test held: ramp resolution in mixed
units and short ramps, one step per epoch, the auto state's fields, error messages, and linear vs cosine lr decay."""

from __future__ import annotations

import math

import pytest

from robustft.errors import ConfigError
from robustft.training.schedules import AutoEpsState, epoch_val_history, lr_factor, resolve_duration
from test_schedules import Eps, build


def test_each_bad_duration_gets_its_own_message() -> None:
    with pytest.raises(ConfigError, match="an int or a fraction in"):
        resolve_duration(True, 10)
    with pytest.raises(ConfigError, match="must not be negative, got -1"):
        resolve_duration(-1, 10)
    with pytest.raises(ConfigError, match="write an int for a count"):
        resolve_duration(1.5, 10)


@pytest.mark.parametrize("epochs, steps_per_epoch, t1, t2, expected", [
    # a fractional T1 of 0.0 is no late start lost to flooring: the ramp of 5 epochs stays per epoch
    (10, 100, 0.0, 0.5, ("epoch", 0, 5)),
    # T1 = 1, T2 = 2 epochs after flooring: a one-epoch ramp is a jump, so it is resolved per step
    (4, 100, 0.25, 0.5, ("step", 100, 200)),
    # mixed units in a per-step ramp: the int T1 is still epochs (1 epoch = 100 steps), the fraction is of steps
    (2, 100, 1, 0.75, ("step", 100, 150)),
    # one step per epoch: steps are no finer than epochs, so the unit stays the epoch
    (2, 1, 0.25, 0.75, ("epoch", 0, 1)),
])
def test_ramp_resolution_edges(epochs, steps_per_epoch, t1, t2, expected) -> None:
    sched = build(Eps(t1=t1, t2=t2), epochs=epochs, steps_per_epoch=steps_per_epoch)
    assert (sched.per, sched.t1, sched.t2) == expected


def test_auto_state_reports_the_reference_and_the_epochs_since_it() -> None:
    assert AutoEpsState.from_history([], 3, 0.02) == AutoEpsState(t1=None, best=-math.inf, since_best=0)
    plateau = [0.1, 0.3, 0.5, 0.51, 0.515, 0.52]  # 0.5 is the last progress; 3 epochs without it at epoch 5
    assert AutoEpsState.from_history(plateau, 3, 0.02) == AutoEpsState(t1=5, best=0.5, since_best=3)
    assert AutoEpsState.from_history(plateau[:4], 3, 0.02) == AutoEpsState(t1=None, best=0.5, since_best=1)


def test_epoch_val_history_with_one_step_per_epoch() -> None:
    records = [{"step": s, "split": "val", "metric": "accuracy", "attack": "clean", "eps": 0.0, "value": v}
               for s, v in [(0, 0.1), (1, 0.2), (2, 0.3)]]
    assert epoch_val_history(records, 1) == [0.2, 0.3]  # epoch ends at steps 1 and 2; step 0 is before training


def test_linear_and_cosine_decay_differ_away_from_the_ends_and_cosine_is_the_default() -> None:
    progress = (30 - 10) / 90  # step 30 of 100 after 10 warm-up steps; both decays give 0.5 at the midpoint
    assert lr_factor(30, 100, 10, "linear") == pytest.approx(1 - progress)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    assert lr_factor(30, 100, 10, "cosine") == pytest.approx(cosine) and lr_factor(30, 100, 10) == pytest.approx(cosine)
