"""The demo's / reproduce's terminal tables: how each schedule's eps moved is stated, so an ``auto`` run whose
plateau never came is not mistaken for a schedule that trained adversarially."""

from robustft.sweep.study_summary import eps_ramp, format_summary


def test_eps_ramp_states_each_schedule_from_the_resolved_summary():
    assert eps_ramp({"eps_schedule": "scheduled", "objective": "adversarial",
                     "eps_resolved": {"per": "epoch", "t1": 1, "t2": 4}}) == "epoch 1-4"
    assert eps_ramp({"eps_schedule": "constant", "objective": "adversarial",
                     "eps_resolved": {"per": "step", "t1": 0, "t2": 0}}) == "step 0-0"
    assert eps_ramp({"eps_schedule": "zero", "objective": "standard",
                     "eps_resolved": {"per": "epoch", "t1": None, "t2": None}}) == "0 throughout"
    # auto without a plateau trained with eps 0 all along: the same run as standard fine-tuning
    assert eps_ramp({"eps_schedule": "auto", "objective": "adversarial",
                     "eps_resolved": {"per": "epoch", "t1": None, "t2": None}}) == "0 throughout (no plateau)"
    assert eps_ramp({"eps_schedule": "auto", "objective": "adversarial",
                     "eps_resolved": {"per": "epoch", "t1": 3, "t2": 5}}) == "epoch 3-5"
    assert eps_ramp({"eps_schedule": "uniform", "objective": "adversarial", "eps_resolved": {}}) == "random"
    assert eps_ramp(None) == "-"


def test_a_run_whose_objective_never_perturbed_says_so():
    """summary.json's perturbed_steps = 0 (the trainer's count of steps trained on a perturbation) overrides what the
    schedule's ramp promised: the table says the run was never perturbed, and which ramp it had."""
    auto = {"eps_schedule": "auto", "objective": "adversarial", "eps_resolved": {"per": "epoch", "t1": 5, "t2": 5}}
    assert eps_ramp({**auto, "perturbed_steps": 0}) == "never perturbed (epoch 5-5)"
    assert eps_ramp({**auto, "perturbed_steps": 12}) == "epoch 5-5"
    assert eps_ramp({**auto, "eps_resolved": {"per": "epoch", "t1": None, "t2": None}, "perturbed_steps": 0}) == \
        "never perturbed (no plateau)"
    assert eps_ramp({"eps_schedule": "scheduled", "objective": "trades", "perturbed_steps": 0,
                     "eps_resolved": {"per": "epoch", "t1": 12, "t2": 37}}) == "never perturbed (epoch 12-37)"
    # standard fine-tuning never perturbs by design: it stays "0 throughout"
    assert eps_ramp({"eps_schedule": "zero", "objective": "standard", "perturbed_steps": 0}) == "0 throughout"
    rows = [{"schedule": "auto", "ramp": eps_ramp({**auto, "perturbed_steps": 0}), "clean": 0.75, "adversarial": 0.0,
             "eps": 4 / 255, "e_adv": 0.096, "onset_epoch": 1.0}]
    assert "never perturbed (epoch 5-5)" in format_summary([], rows, []).splitlines()[3]


def test_the_schedule_table_has_the_ramp_column():
    rows = [{"schedule": "auto", "ramp": "0 throughout (no plateau)", "clean": 0.72, "adversarial": 0.0,
             "eps": 4 / 255, "e_adv": 0.09, "onset_epoch": 1.0}]
    text = format_summary([], rows, [])
    header, line = text.strip().splitlines()[1:3]
    assert "eps ramp T1-T2" in header and "0 throughout (no plateau)" in line and "72.0" in line
