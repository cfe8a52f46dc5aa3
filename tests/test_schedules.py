"""Eps schedules against paper B's formula, lr factors, and paper A's evaluation schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustft.config import load_config, section_from_dict
from robustft.config.schedule_specs import EPS_SCHEDULE_ALIASES, EPS_SCHEDULE_NAMES
from robustft.errors import ConfigError, UnknownNameError
from robustft.training.evaluation_points import evaluation_schedule, evaluation_steps, paper_a_evaluates
from robustft.training.schedules import EPS_SCHEDULES, AutoEpsState, eps_schedule, lr_factor, resolve_duration

EPS_G = 4 / 255


@dataclass
class Eps:
    schedule: str = "scheduled"
    value: float = EPS_G
    t1: int | float = 12
    t2: int | float = 37
    per: str = "epoch"
    patience: int = 5
    tolerance: float = 0.02


def build(settings: Eps, epochs: int = 50, steps_per_epoch: int = 10, seed: int = 0):
    return eps_schedule(settings, epochs, epochs * steps_per_epoch, steps_per_epoch, seed)


def test_registry_has_the_documented_schedules_with_descriptions() -> None:
    assert set(EPS_SCHEDULES.names()) == {"zero", "constant", "scheduled", "linear", "uniform", "auto"}
    assert all(entry.description for entry in EPS_SCHEDULES.entries())


@pytest.mark.parametrize(
    "epoch, alpha", [(0, 0.0), (11, 0.0), (12, 0.0), (24, 12 / 25), (36, 24 / 25), (37, 1.0), (49, 1.0)]
)
def test_paper_b_formula_at_t1_12_t2_37_of_50(epoch: int, alpha: float) -> None:
    sched = build(Eps())
    assert sched(epoch, epoch * 10) == pytest.approx(alpha * EPS_G, abs=1e-15)
    assert sched.alpha(epoch, 0) == pytest.approx(alpha)


def test_fractions_resolve_to_paper_b_epochs() -> None:
    sched = build(Eps(t1=0.25, t2=0.75))
    assert (sched.t1, sched.t2) == (12, 37)
    assert [sched(e, 0) for e in range(50)] == [build(Eps())(e, 0) for e in range(50)]


def test_t1_equals_t2_equals_zero_is_constant() -> None:
    scheduled, constant = build(Eps(t1=0, t2=0)), build(Eps(schedule="constant"))
    assert all(scheduled(e, 0) == constant(e, 0) == EPS_G for e in range(50))


def test_t1_zero_is_linear_warmup() -> None:
    scheduled, linear = build(Eps(t1=0, t2=20)), build(Eps(schedule="linear", t1=12, t2=20))
    values = [linear(e, 0) for e in range(50)]
    assert values == [scheduled(e, 0) for e in range(50)]
    assert values[0] == 0.0 and values[10] == pytest.approx(EPS_G / 2) and values[20] == EPS_G


def test_equal_t1_t2_is_a_jump() -> None:
    sched = build(Eps(t1=10, t2=10))
    assert [sched(e, 0) for e in (0, 9, 10, 11)] == [0.0, 0.0, EPS_G, EPS_G]


def test_zero_schedule() -> None:
    assert all(build(Eps(schedule="zero"))(e, e) == 0.0 for e in range(5))


def test_per_step_uses_the_step_argument() -> None:
    sched = build(Eps(t1=0, t2=100, per="step"), epochs=10, steps_per_epoch=50)
    assert sched(0, 50) == pytest.approx(EPS_G / 2)
    assert sched(0, 0) == 0.0 and sched(9, 499) == EPS_G
    fraction = build(Eps(t1=0.0, t2=0.5, per="step"), epochs=10, steps_per_epoch=50)
    assert fraction.t2 == 250 and fraction(0, 125) == pytest.approx(EPS_G / 2)


def test_scheduled_on_one_epoch_ramps_per_step_not_constant() -> None:
    # Floored to whole epochs, 0.25 and 0.75 of one epoch are T1 = T2 = 0: the constant schedule. Per step they
    # are steps 25 and 75 of 100, paper B's shape inside the epoch.
    sched = build(Eps(t1=0.25, t2=0.75), epochs=1, steps_per_epoch=100)
    assert (sched.per, sched.t1, sched.t2) == ("step", 25, 75)
    values = [sched(0, s) for s in range(100)]
    assert values[:26] == [0.0] * 26 and values[50] == pytest.approx(EPS_G / 2) and values[75:] == [EPS_G] * 25
    assert values != [build(Eps(schedule="constant"), epochs=1, steps_per_epoch=100)(0, s) for s in range(100)]


@pytest.mark.parametrize("epochs, per, t1, t2", [
    (1, "step", 25, 75), (2, "step", 50, 150), (3, "step", 75, 225),  # 0.25 of 3 epochs floors to epoch 0
    (4, "epoch", 1, 3), (50, "epoch", 12, 37)])  # whole epochs hold a ramp of >= 2 epochs: paper B's resolution
def test_fractional_ramps_resolve_per_step_only_when_epochs_are_too_few(epochs, per, t1, t2) -> None:
    sched = build(Eps(t1=0.25, t2=0.75), epochs=epochs, steps_per_epoch=100)
    assert (sched.per, sched.t1, sched.t2) == (per, t1, t2)


def test_linear_and_int_durations_on_few_epochs() -> None:
    linear = build(Eps(schedule="linear", t2=0.5), epochs=1, steps_per_epoch=10)
    assert (linear.per, linear.t2) == ("step", 5) and linear(0, 0) == 0.0 and linear(0, 5) == EPS_G
    assert build(Eps(schedule="linear", t2=0.75), epochs=3).per == "epoch"  # T2 = 2 epochs: a ramp 0, 1/2, 1
    counted = build(Eps(t1=0, t2=1), epochs=2)  # ints are whole epochs, as written: no re-resolution
    assert (counted.per, counted.t1, counted.t2) == ("epoch", 0, 1)
    # ... so on one epoch they would train at eps 0 (alpha(T1) = 0): refused, naming fractions as the fix
    with pytest.raises(ConfigError, match=r"0 throughout.*fractions of training.*single epoch"):
        build(Eps(t1=0, t2=1), epochs=1)


def test_t1_after_t2_in_mixed_units_is_caught_when_built() -> None:
    with pytest.raises(ConfigError, match="T1 must be <= T2"):
        build(Eps(t1=40, t2=0.5))


def test_uniform_is_in_range_deterministic_per_seed_and_epoch() -> None:
    first, again, other = build(Eps(schedule="uniform")), build(Eps(schedule="uniform")), build(
        Eps(schedule="uniform"), seed=1
    )
    values = [first(e, 0) for e in range(50)]
    assert all(0.0 <= v <= EPS_G for v in values)
    assert values == [again(e, 123) for e in range(50)]  # a resumed run redraws identically
    assert values != [other(e, 0) for e in range(50)]
    assert len(set(values)) == 50
    assert 0.3 * EPS_G < sum(values) / 50 < 0.7 * EPS_G


def test_auto_waits_for_a_plateau_then_ramps_to_the_last_epoch() -> None:
    sched = build(Eps(schedule="auto", patience=3, tolerance=0.02), epochs=20)
    history = [0.1, 0.3, 0.5, 0.51, 0.515, 0.52] + [0.9] * 14  # plateau detected at the end of epoch 5
    assert AutoEpsState.from_history(history, 3, 0.02).t1 == 5  # paper B: "that epoch becomes T1"
    values = [sched(e, 0, history) for e in range(20)]
    assert values[:6] == [0.0] * 6  # alpha(T1) = 0 as in paper B's formula
    assert values[6] == pytest.approx(EPS_G / 14)  # the first epoch after the plateau: (6 - 5) / (19 - 5)
    assert values[19] == EPS_G
    # Only epochs before t decide eps(t): a history that grows epoch by epoch gives the same values (resume).
    assert [sched(e, 0, history[:e]) for e in range(20)] == values
    # The ramp the run's summary records is the one it trained with, decided from the history.
    assert sched.ramp(history) == (5, 19) and sched.ramp(history[:5]) == (None, None)


def test_auto_per_step_ramps_from_the_end_of_the_plateau_epoch() -> None:
    sched = build(Eps(schedule="auto", patience=1, tolerance=0.02, per="step"), epochs=5, steps_per_epoch=10)
    history = [0.5, 0.5, 0.5, 0.5, 0.5]  # plateau detected at the end of epoch 1 (T1 = 1)
    values = [sched(s // 10, s, history) for s in range(50)]
    assert values[:20] == [0.0] * 20  # nothing before the plateau is known (step 20 = end of epoch 1)
    assert values[21] == pytest.approx(EPS_G / 29) and values[49] == EPS_G  # linear from step 20 to step 49
    assert sched.ramp(history) == (20, 49)


def test_auto_without_plateau_stays_at_zero() -> None:
    sched = build(Eps(schedule="auto", patience=3, tolerance=0.02), epochs=10)
    climbing = [0.1 + 0.05 * i for i in range(10)]
    assert all(sched(e, 0, climbing) == 0.0 for e in range(10))
    assert sched.ramp(climbing) == (None, None)  # the summary says no plateau came


def test_fixed_schedules_report_their_construction_ramp() -> None:
    sched = build(Eps(schedule="scheduled", t1=0.25, t2=0.75), epochs=8)
    assert sched.ramp([0.1, 0.2]) == (sched.t1, sched.t2) == (2, 6)


def test_auto_slow_steady_gains_still_count_as_progress() -> None:
    state = AutoEpsState.from_history([0.1 + 0.015 * i for i in range(30)], patience=3, tolerance=0.02)
    assert state.t1 is None


def test_unknown_schedule_name() -> None:
    with pytest.raises(UnknownNameError, match="scheduled"):
        build(Eps(schedule="schedul"))


def test_eps_schedule_accepts_the_config_section() -> None:
    cfg = load_config(None, ["objective.name=adversarial", "eps.schedule=scheduled", "eps.t1=12", "eps.t2=37",
                             "eps.value=8/255", "train.epochs=50"])
    sched = eps_schedule(cfg.eps, 50, 500, 10, cfg.seed)
    assert sched(24, 240) == pytest.approx(12 / 25 * 8 / 255)


def test_resolve_duration() -> None:
    assert resolve_duration(12, 50) == 12 and resolve_duration(0.75, 100) == 75 and resolve_duration(1.0, 7) == 7
    with pytest.raises(ConfigError):
        resolve_duration(1.5, 10)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_lr_factor_warmup_and_decay(kind: str) -> None:
    factors = [lr_factor(s, 100, 10, kind) for s in range(100)]
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0 and factors[10] == 1.0
    assert all(a <= b for a, b in zip(factors[:10], factors[1:10], strict=False))
    decay = factors[10:]
    if kind == "constant":
        assert set(decay) == {1.0}
    else:
        assert all(a >= b for a, b in zip(decay, decay[1:], strict=False)) and decay[-1] < 0.05
    if kind == "cosine":
        assert lr_factor(55, 100, 10, kind) == pytest.approx(0.5)
        assert lr_factor(100, 100, 10, kind) == pytest.approx(0.0)
    if kind == "linear":
        assert lr_factor(55, 100, 10, kind) == pytest.approx(0.5)


def test_lr_factor_without_warmup_starts_at_one_and_rejects_unknown_kinds() -> None:
    assert lr_factor(0, 10, 0, "cosine") == 1.0
    assert lr_factor(5, 10, 0, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ConfigError, match="cosine"):
        lr_factor(0, 10, 0, "step")


def test_paper_a_schedule_is_its_codes_should_log() -> None:
    # kyangl/robustness-finetuning, scripts/finetune.py, should_log: the 7040-step run of the issue.
    schedule = evaluation_schedule("paper-a", 7040, 352)
    assert schedule.steps == (
        0, 50, 100,
        120, 150, 180, 210, 240, 270, 300,
        400, 600, 800, 1000,
        2000,
        4000,
        7040,
    )
    assert schedule.extra == {7040}  # the end of training, evaluated by robustft, not on paper A's grid


def test_paper_a_schedule_beyond_ten_thousand_steps() -> None:
    assert evaluation_steps("paper-a", 100000, 352)[-12:] == [
        1000, 2000, 4000, 8000, 12000, 18000, 24000, 30000, 40000, 60000, 80000, 100000]
    assert evaluation_schedule("paper-a", 100000, 352).extra == frozenset()  # 100000 is on the grid


@settings(max_examples=100, deadline=None)
@given(total=st.integers(0, 70000))
def test_paper_a_steps_are_exactly_the_predicates_steps_plus_the_end(total: int) -> None:
    schedule = evaluation_schedule("paper-a", total, 352)
    on_grid = [s for s in range(0, total + 1, 10) if paper_a_evaluates(s)]  # every grid interval is a multiple of 10
    assert [s for s in schedule.steps if s not in schedule.extra] == on_grid
    assert schedule.extra == ({total} - set(on_grid))


def test_paper_a_predicate_matches_the_reference_rules() -> None:
    def should_log(step: int) -> bool:  # the reference's rule, restated from its text
        if step <= 100:
            return step % 50 == 0
        elif step <= 300:
            return step % 30 == 0
        if step <= 1000:
            return step % 200 == 0
        elif step <= 3000:
            return step % 2000 == 0
        elif step <= 10000:
            return step % 4000 == 0
        elif step <= 30000:
            return step % 6000 == 0
        return step % 20000 == 0

    assert all(paper_a_evaluates(s) == should_log(s) for s in range(0, 120001))


def test_paper_a_schedule_cut_at_the_end_of_training() -> None:
    assert evaluation_steps("paper-a", 175, 50) == [0, 50, 100, 120, 150, 175]
    assert evaluation_schedule("paper-a", 175, 50).extra == {175}
    assert evaluation_steps("paper-a", 100, 50) == [0, 50, 100]
    assert evaluation_schedule("paper-a", 100, 50).extra == frozenset()
    assert evaluation_steps("paper-a", 0, 50) == [0]


@pytest.mark.parametrize(
    "spec, total, per_epoch, expected",
    [
        ("every:7", 20, 5, [0, 7, 14, 20]),
        ("every:10", 20, 5, [0, 10, 20]),
        ("epoch", 20, 6, [0, 6, 12, 18, 20]),
        ("epoch", 18, 6, [0, 6, 12, 18]),
        ("steps:[50, 3, 10, 3]", 20, 6, [0, 3, 10, 20]),
        ("steps:[]", 20, 6, [0, 20]),
    ],
)
def test_other_evaluation_schedules(spec: str, total: int, per_epoch: int, expected: list[int]) -> None:
    steps = evaluation_steps(spec, total, per_epoch)
    assert steps == expected
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == total


def test_extra_points_of_the_other_schedules() -> None:
    assert evaluation_schedule("every:7", 20, 5).extra == {20}
    assert evaluation_schedule("epoch", 18, 6).extra == frozenset()
    assert evaluation_schedule("steps:[3, 10]", 20, 6).extra == {0, 20}


def test_bad_evaluation_spec() -> None:
    with pytest.raises(ConfigError, match="every:N"):
        evaluation_steps("every:x", 10, 2)


def test_epoch_val_history_from_records_skips_step_zero_and_mid_epoch_points() -> None:
    from robustft.training.schedules import epoch_val_history

    def val(step: int, value: float, attack: str | None = "clean", eps: float | None = 0.0) -> dict:
        return {"step": step, "split": "val", "metric": "accuracy", "attack": attack, "eps": eps, "value": value}

    records = [val(0, 0.05), val(5, 0.2), val(10, 0.3), val(10, 0.9, "pgd", 1 / 255), val(20, 0.4), val(20, 0.45),
               {"step": 30, "split": "test", "metric": "accuracy", "attack": None, "eps": None, "value": 0.5},
               val(40, 0.6, None, None)]
    # epoch ends at 10, 20 (the re-recorded one wins); 30 has no val record, so the history stops there
    assert epoch_val_history(records, 10) == [0.3, 0.45]
    assert epoch_val_history([], 10) == []


def test_auto_config_needs_a_validation_split() -> None:
    with pytest.raises(ConfigError, match="eval.splits"):
        load_config(None, ["objective.name=adversarial", "eps.schedule=auto", "eval.splits=[train, test]"])
    with pytest.raises(ConfigError, match="val_fraction"):
        load_config(None, ["objective.name=adversarial", "eps.schedule=auto", "data.val_fraction=0"])


def test_auto_config_needs_an_evaluation_at_every_epoch_end() -> None:
    with pytest.raises(ConfigError, match="eval.schedule=epoch"):
        load_config(None, ["objective.name=adversarial", "eps.schedule=auto", "eval.schedule=paper-a"])
    assert load_config(None, ["objective.name=adversarial", "eps.schedule=auto",
                              "eval.schedule=epoch"]).eps.schedule == "auto"




@settings(max_examples=200, deadline=None)
@given(epochs=st.integers(1, 80), t1=st.integers(0, 80), width=st.integers(0, 80))
def test_scheduled_alpha_is_monotone_in_unit_range_and_hits_the_ends(epochs: int, t1: int, width: int) -> None:
    t2 = t1 + width
    epochs = max(epochs, t2 + 1)  # a run that holds the ramp (one that does not is refused: test_config_ramp.py)
    sched = build(Eps(t1=t1, t2=t2), epochs=epochs)
    values = [sched.alpha(e, 0) for e in range(epochs)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))
    assert all(v == 0.0 for v in values[:t1]) and all(v == 1.0 for v in values[t2:])


@settings(max_examples=200, deadline=None)
@given(spec=st.sampled_from(["paper-a", "epoch", "every:1", "every:13", "every:500", "steps:[0,7,99,100000]"]),
       total=st.integers(0, 30000), per_epoch=st.integers(1, 2000))
def test_evaluation_steps_invariants(spec: str, total: int, per_epoch: int) -> None:
    steps = evaluation_steps(spec, total, per_epoch)
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == total
    assert all(0 <= s <= total for s in steps)
    if spec == "paper-a":
        assert set(steps) >= {s for s in (50, 100, 120, 300, 400, 1000, 2000, 4000, 8000, 12000) if s <= total}
        assert not set(steps) & ({130, 500, 3000, 7000, 10000} - {total})


@settings(max_examples=200, deadline=None)
@given(step=st.integers(0, 5000), total=st.integers(1, 5000), warmup=st.integers(0, 500),
       kind=st.sampled_from(["cosine", "linear", "constant"]))
def test_lr_factor_stays_in_unit_range(step: int, total: int, warmup: int, kind: str) -> None:
    assert 0.0 <= lr_factor(step, total, warmup, kind) <= 1.0


def test_eps_schedule_accepts_a_plain_dict_section() -> None:
    section = section_from_dict("eps", {"schedule": "scheduled", "value": "8/255", "t1": 12, "t2": 37})
    sched = eps_schedule(section, 50, 500, 10)
    assert sched(24, 0) == pytest.approx(12 / 25 * 8 / 255)
    with pytest.raises(ConfigError, match="eps.valu"):
        eps_schedule(section_from_dict("eps", {"schedule": "constant", "valu": "8/255"}), 5, 50, 10)
    with pytest.raises(ConfigError, match="section_from_dict"):  # a dict itself is refused with the way to go
        eps_schedule({"schedule": "constant"}, 5, 50, 10)


def test_schedule_names_the_config_accepts_are_the_registered_schedules() -> None:
    # config/schedule_specs.py lists them so that validating a config imports no trainer; they must not drift.
    assert set(EPS_SCHEDULE_NAMES) == set(EPS_SCHEDULES.names())
    assert all(EPS_SCHEDULES.canonical(alias) == name for alias, name in EPS_SCHEDULE_ALIASES.items())
