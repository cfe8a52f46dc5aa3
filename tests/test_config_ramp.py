"""Whole-count T1/T2 are checked against the run's length (paper B's 12 and 37 epochs in a 10-epoch run would
train at eps 0 throughout); the shipped paper B configs give them as fractions, which scale with the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustft.cli import main
from robustft.config import load_config
from robustft.errors import ConfigError
from robustft.training.schedules import eps_schedule

PAPER_B = Path(__file__).resolve().parents[1] / "configs" / "paper_b" / "scheduled.yaml"


@pytest.mark.parametrize(("overrides", "expected"), [
    (["train.epochs=10", "eps.t1=12", "eps.t2=37"],
     ["eps.t1=12", "epochs 0-9", "train.epochs=10", "eps would be 0 throughout", "eps.t1=0.25 eps.t2=0.75"]),
    # alpha(T1) = 0: a ramp starting at the last epoch trains nothing, nor does a jump just after the run
    (["train.epochs=13", "eps.t1=12", "eps.t2=13"], ["at 0 through epoch 12", "epochs 0-12", "0 throughout"]),
    (["train.epochs=12", "eps.t1=12", "eps.t2=12"], ["0 throughout"]),
    (["train.epochs=10", "eps.t1=9", "eps.t2=1.0"], ["0 throughout"]),  # a count and a fraction (T2 = 10)
    (["train.epochs=20", "eps.t1=12", "eps.t2=37"],
     ["eps.t2=37", "never reach eps.value", "28% of it", "eps.t1=0.25 eps.t2=0.75", "eps.t1 < 19 and eps.t2 <= 20"]),
    (["eps.schedule=linear", "train.epochs=5", "eps.t2=8"], ["eps.t2=8", "never reach", "eps.t2 <= 5"]),
    (["eps.per=step", "train.steps=30", "eps.t1=30", "eps.t2=40"], ["eps.t1=30", "steps 0-29", "train.steps=30"]),
    (["eps.per=step", "train.steps=30", "eps.t1=10", "eps.t2=40"], ["eps.t2=40", "stop at 63% of it"]),
    (["train.epochs=10", "eps.t1=0.25", "eps.t2=37"], ["eps.t2=37"]),  # a mixed pair: the count is still checked
])
def test_a_whole_count_ramp_beyond_the_run_is_refused(overrides, expected):
    with pytest.raises(ConfigError) as error:
        load_config(PAPER_B, overrides)
    for text in expected:
        assert text in str(error.value)


@pytest.mark.parametrize("overrides", [
    ["train.epochs=37", "eps.t1=12", "eps.t2=37"],  # eps_g at the end of training
    ["train.epochs=14", "eps.t1=12", "eps.t2=14"],  # refused at 13 epochs: here epoch 13 trains at eps > 0
    ["train.epochs=13", "eps.t1=12", "eps.t2=12"],  # a jump at the last epoch
    ["train.epochs=10", "eps.t1=9", "eps.t2=0.95"],  # 0.95 of 10 epochs is T2 = 9: a jump at the last epoch
    ["train.epochs=2", "eps.t1=0.99", "eps.t2=1.0"],  # fractions only: they scale (per step if need be)
    ["eps.schedule=constant", "train.epochs=10", "eps.t1=12", "eps.t2=37"],  # no ramp: T1/T2 unused
    ["eps.schedule=linear", "train.epochs=10", "eps.t1=12", "eps.t2=10"],  # linear's T1 is 0 whatever eps.t1 says
    ["train.steps=30", "eps.t1=12", "eps.t2=37"],  # epochs unknown until the data is: the trainer checks
])
def test_ramps_within_the_run_or_not_checkable_yet_are_accepted(overrides):
    load_config(PAPER_B, overrides)


def test_the_shipped_paper_b_ramp_scales_with_train_epochs():
    cfg = load_config(PAPER_B)
    assert (cfg.eps.t1, cfg.eps.t2) == (0.25, 0.75)
    full = eps_schedule(cfg.eps, 50, 500, 10)
    assert (full.per, full.t1, full.t2) == ("epoch", 12, 37)  # paper B's epochs
    short = eps_schedule(load_config(PAPER_B, ["train.epochs=10"]).eps, 10, 100, 10)
    assert (short.per, short.t1, short.t2) == ("epoch", 2, 7)
    assert [short(epoch, 10 * epoch) > 0 for epoch in range(10)] == [False] * 3 + [True] * 7


def test_train_and_tune_refuse_it_from_the_command_line(tmp_path, capsys):
    too_short = ["eps.t1=12", "eps.t2=37"]
    assert main(["train", str(PAPER_B), "train.epochs=10", *too_short, f"output_dir={tmp_path}", "--quiet"]) == 2
    assert "eps would be 0 throughout" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before a run directory was made
    argv = ["tune", str(PAPER_B), "--epochs", "10", "--output-dir", str(tmp_path / "tune")]
    assert main([*argv, *(f"--set={o}" for o in too_short)]) == 2
    assert "eps would be 0 throughout" in capsys.readouterr().err


@pytest.mark.parametrize("schedule", ["constant", "fix", "scheduled", "linear", "uniform", "auto"])
def test_the_standard_objective_with_a_perturbation_schedule_is_refused(schedule, tmp_path, capsys):
    """Standard fine-tuning ignores eps: with a schedule it would run as standard fine-tuning labelled, and
    logging the eps of, that schedule. Unset, the schedule is zero under standard and constant otherwise."""
    named = {"fix": "constant"}.get(schedule, schedule)  # paper B's alias, resolved
    with pytest.raises(ConfigError, match=rf"objective.name=standard .* eps.schedule='{named}'.*"
                                          r"objective.name=adversarial.*eps.schedule=zero"):
        load_config(None, [f"eps.schedule={schedule}"])
    assert load_config(None, ["objective.name=standard"]).eps.schedule == "zero"
    assert load_config(None, ["objective.name=standard", "eps.schedule=zero"]).eps.schedule == "zero"
    assert load_config(None, ["objective.name=trades"]).eps.schedule == "constant"
    config = PAPER_B.parent.parent / "paper_a_embedded" / "full.yaml"  # a standard config: schedule zero
    assert main(["train", str(config), f"eps.schedule={schedule}", f"output_dir={tmp_path}", "--quiet"]) == 2
    assert "ignores eps" in capsys.readouterr().err
