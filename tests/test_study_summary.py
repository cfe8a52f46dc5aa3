"""The demo's / reproduce's terminal tables: how each schedule's eps moved is stated, so an ``auto`` run whose
plateau never came is not mistaken for a schedule that trained adversarially; Pareto areas per seed, then their mean."""

import pandas as pd
from tests.test_findings import EPS_B, paper_a_run, paper_b_run

from robustft.analysis.pareto import pareto_area
from robustft.runs import Run
from robustft.sweep.study_summary import eps_ramp, format_summary, schedule_rows, strategy_rows


def test_eps_ramp_states_each_schedule_from_the_resolved_summary():
    assert eps_ramp({"eps_schedule": "scheduled", "objective": "adversarial",
                     "eps_resolved": {"per": "epoch", "t1": 1, "t2": 4}}) == "epoch 1-4"
    assert eps_ramp({"eps_schedule": "constant", "objective": "adversarial",
                     "eps_resolved": {"per": "step", "t1": 0, "t2": 0}}) == "eps_g throughout"
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


def _labelled(run, label):
    return Run(name=run.name, config=run.config, summary=run.summary, metrics=run.metrics, labels={"label": label})


def test_the_demo_tables_pareto_area_is_per_seed_and_the_mean_over_seeds_has_its_spread():
    clean = [0.2, 0.6, 0.8, 0.9]
    full = [_labelled(paper_a_run("full", clean, robust, seed=seed), "full")
            for seed, robust in ((0, [0.02, 0.1, 0.3, 0.05]), (1, [0.02, 0.4, 0.1, 0.05]))]
    bitfit = _labelled(paper_a_run("bitfit", clean, [0.02, 0.2, 0.2, 0.1]), "bitfit")
    rows = strategy_rows([*full, bitfit])
    own = [pareto_area(clean, [0.02, 0.1, 0.3, 0.05]), pareto_area(clean, [0.02, 0.4, 0.1, 0.05])]
    assert [row["area"] for row in rows[:2]] == own  # each seed's own area, not the union of both seeds' points
    average = ((own[0] + own[1]) / 2 + rows[2]["area"]) / 2  # the strategies' mean area, each strategy once
    assert rows[0]["above_average"] == 100 * (own[0] - average) / average
    text = format_summary(rows, [], [])
    spread = f"full {(own[0] + own[1]) / 2:.3f} ± {abs(own[0] - own[1]) / 2 ** 0.5:.3f} (2 seeds)"
    assert spread in text and "bitfit" not in text.split("over seeds")[1]  # one seed: no spread line


def test_above_average_compares_a_run_with_the_strategies_on_its_own_backbone_and_task():
    # reproduce's embedded grid: two tasks; each run's "% above average" is against its own task's strategies only
    # (paper A's is per dataset): kills averaging the areas of every backbone and task together
    clean = [0.2, 0.6, 0.8, 0.9]

    def run(strategy, task, robust):
        made = paper_a_run(strategy, clean, robust)
        config = {**made.config, "data": {**made.config.get("data", {}), "name": task}}
        return Run(name=f"{strategy}-{task}", config=config, summary=made.summary, metrics=made.metrics,
                   labels={"label": strategy})

    easy = [run("full", "easy", [0.02, 0.5, 0.6, 0.6]), run("bitfit", "easy", [0.02, 0.3, 0.4, 0.4])]
    hard = [run("full", "hard", [0.02, 0.05, 0.05, 0.05]), run("bitfit", "hard", [0.02, 0.1, 0.1, 0.1])]
    rows = strategy_rows([easy[0], hard[0], easy[1], hard[1]])
    assert [row["run"] for row in rows] == ["full-easy", "full-hard", "bitfit-easy", "bitfit-hard"]  # input order
    area = {row["run"]: row["area"] for row in rows}
    for task in ("easy", "hard"):
        average = (area[f"full-{task}"] + area[f"bitfit-{task}"]) / 2
        for row in (r for r in rows if r["run"].endswith(task)):
            assert row["above_average"] == 100 * (row["area"] - average) / average
    assert {r["run"]: r["above_average"] > 0 for r in rows} == {"full-easy": True, "bitfit-easy": False,
                                                               "full-hard": False, "bitfit-hard": True}


def test_the_demo_tables_adversarial_accuracy_is_the_worst_attack_at_eps_g_and_says_so():
    run = paper_b_run("fix", [0.1, 0.5, 0.6], [0.6, 0.3, 0.1, 0.05, 0.0])  # the curve reaches 0.0% at 32/255
    final = {"step": 20, "epoch": 2.0, "split": "test", "metric": "accuracy", "attack": "final:apgd-ce",
             "eps": EPS_B, "value": 0.021, "n": 200}
    run.metrics = pd.concat([run.metrics, pd.DataFrame([final])], ignore_index=True)
    (row,) = schedule_rows([_labelled(run, "RFT-fix")])
    assert row["adversarial"] == 0.0 and row["eps"] == EPS_B
    text = format_summary([], [row], [])
    assert "per-image worst case of the final attack and the robust curve at 32/255" in text


def test_findings_lines_name_their_setting_when_a_study_has_several():
    from robustft.analysis.findings import Finding

    def finding(setting, paper="A"):
        return Finding(key="A.x", paper=paper, claim="a claim", verdict="holds", why="because", setting=setting)

    one = format_summary([], [], [finding("mobilenet_v2 on emoji"), finding("mobilenet_v2 on emoji"),
                                  finding("mobilenet_v2 on emoji, eps_g 32/255", paper="B")])
    assert "paper A: a claim" in one and "paper B: a claim" in one and "(mobilenet" not in one  # the demo's lines
    two = format_summary([], [], [finding("mobilenet_v2 on emoji"), finding("vit on emoji")])
    assert "paper A (mobilenet_v2 on emoji): a claim" in two and "paper A (vit on emoji): a claim" in two
