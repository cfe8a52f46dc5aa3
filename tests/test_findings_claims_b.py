"""Paper B's cross-study claims on synthetic runs (issue 18): the onset delay growing with eps_g, suboptimal
transfer's severity by backbone and task, E.adv where adversarial accuracy at eps_g is equal. Every verdict comes
from the numbers; a claim the runs cannot support is a skip line naming the runs it needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.test_findings import _acc, _config, held, paper_b_run, verdict
from tests.test_findings_paired import evaluated

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, SKIPPED, findings
from robustft.report.findings_table import findings_table


def run_at(kind, clean_by_epoch, eps="8/255", seed=0, model="mobilenet_v2", task="fashion-mnist", n=200):
    """kind: standard | fix, at eps_g ``eps``, with its clean accuracy per epoch on val and test."""
    objective, schedule = ("standard", "zero") if kind == "standard" else ("adversarial", "constant")
    rows = []
    for i, value in enumerate(clean_by_epoch):
        rows += [_acc(i * 10, float(i), "val", value, n), _acc(i * 10, float(i), "test", value, n)]
    config = _config("full", objective, schedule, seed=seed, eps_value=eps if kind != "standard" else "8/255")
    config["model"]["name"], config["data"]["name"] = model, task
    return held(f"{model}-{task}-{kind}-{eps}-{seed}", config, pd.DataFrame(rows))


# ----------------------------------------------------------------------------------------------------------------
# B.delay_grows_with_eps: threshold 20% (10 classes), 200 images per evaluation

ADAPTS_AT = {1: [0.1, 0.5, 0.7, 0.8, 0.85], 2: [0.1, 0.12, 0.5, 0.7, 0.8], 3: [0.1, 0.1, 0.12, 0.5, 0.7]}


def eps_study(onset_by_eps, seeds=(0,)):
    """onset_by_eps: {eps: onset epoch (ADAPTS_AT) or a clean curve}, or per seed {seed: {eps: ...}}."""
    runs = []
    for seed in seeds:
        reference = run_at("standard", ADAPTS_AT[1], seed=seed)
        runs.append(reference)
        onsets = onset_by_eps.get(seed, onset_by_eps)
        for eps, epoch in onsets.items():
            run = run_at("fix", ADAPTS_AT[epoch] if isinstance(epoch, int) else epoch, eps, seed)
            # as an eps_g grid writes them: the curve ends at eps_g, the reference is named per seed
            run.config["eval"] = {**run.config["eval"], "curve": eps}
            run.config["detect"] = {"reference_run": reference.name}
            runs.append(run)
    return runs


def test_later_onsets_at_larger_eps_hold_with_one_seed_by_the_onset_ranges():
    # kills: the smallest and largest eps_g swapped in a seed's comparison (this becomes "does not grow")
    found = verdict(findings(eps_study({"1/255": 1, "4/255": 2, "8/255": 3})), "B.delay_grows_with_eps")
    assert found.verdict == HOLDS, found.why
    assert found.numbers["per_seed"] == {"0": "grows"} and found.numbers["spearman_rho"] == pytest.approx(1.0)
    assert found.numbers["onsets"]["0"]["8/255"]["epoch"] == 3 and found.interval is None
    assert found.method == "onset ranges from Wilson intervals, 1 seed"
    assert "eps_g = 1/255, 4/255, 8/255" in found.setting


def test_the_same_onset_at_every_eps_does_not_hold_and_a_noisy_one_is_inconclusive():
    found = verdict(findings(eps_study({"1/255": 1, "4/255": 1, "8/255": 1})), "B.delay_grows_with_eps")
    assert found.verdict == DOES_NOT_HOLD, found.why
    # 8/255 crosses 20% once by noise (23% on 200 images) at epoch 1: its onset range reaches epoch 3
    noisy = [0.1, 0.23, 0.15, 0.5, 0.7]
    found = verdict(findings(eps_study({"1/255": 1, "4/255": 1, "8/255": noisy})), "B.delay_grows_with_eps")
    assert found.verdict == INCONCLUSIVE and found.numbers["per_seed"] == {"0": "open"}, found.why


def test_three_seeds_decide_by_spearmans_rho_with_a_bootstrap_over_seeds():
    # kills: the verdict read from the rho's upper end instead of its interval's sign (flat onsets would hold)
    found = verdict(findings(eps_study({"1/255": 1, "4/255": 2, "8/255": 3}, seeds=(0, 1, 2))),
                    "B.delay_grows_with_eps")
    assert found.verdict == HOLDS and found.interval["low"] > 0, found.why
    assert "bootstrap over 3 seeds" in found.method and found.numbers["spearman_rho"]["value"] == pytest.approx(1.0)
    found = verdict(findings(eps_study({"1/255": 3, "4/255": 2, "8/255": 1}, seeds=(0, 1, 2))),
                    "B.delay_grows_with_eps")
    assert found.verdict == DOES_NOT_HOLD and found.interval["high"] < 0, found.why
    disagree = {0: {"1/255": 1, "4/255": 2, "8/255": 3}, 1: {"1/255": 3, "4/255": 2, "8/255": 1},
                2: {"1/255": 2, "4/255": 2, "8/255": 2}}
    found = verdict(findings(eps_study(disagree, seeds=(0, 1, 2))), "B.delay_grows_with_eps")
    assert found.verdict == INCONCLUSIVE and found.interval["low"] < 0 < found.interval["high"], found.why
    assert found.resolve["unit"] == "seeds"


def test_runs_that_never_adapt_at_any_eps_leave_the_trend_open():
    # kills: an undefined rho (every onset "never") bootstrapped into a NaN interval
    never = [0.1, 0.1, 0.1, 0.1, 0.1]
    found = verdict(findings(eps_study({"1/255": never, "4/255": never, "8/255": never}, seeds=(0, 1, 2))),
                    "B.delay_grows_with_eps")
    assert found.verdict == INCONCLUSIVE and found.numbers["per_seed"] == {"0": "open", "1": "open", "2": "open"}


def _on_task(runs, task):
    """The same runs as if trained on ``task`` (names and references follow)."""
    out = []
    for run in runs:
        config = {**run.config, "data": {**run.config["data"], "name": task}}
        if "detect" in config:
            config["detect"] = {"reference_run": f"{task}-{config['detect']['reference_run']}"}
        out.append(held(f"{task}-{run.name}", config, run.metrics))
    return out


def test_each_backbone_and_task_of_a_grid_gets_its_own_onset_verdict():
    # an embedded grid holds the eps_g sweep on several tasks; each is a test of Figure 3 (kills: only the first
    # family of runs examined, as before 2026-12-06: the second task's delay went unreported)
    grows = eps_study({"1/255": 1, "4/255": 2, "8/255": 3})
    flat = _on_task(eps_study({"1/255": 1, "4/255": 1, "8/255": 1}), "mnist")
    found = [f for f in findings([*grows, *flat]) if f.key == "B.delay_grows_with_eps"]
    by_task = {("mnist" if "mnist" in f.setting.split(" at ")[0].split(" on ")[-1] and "fashion" not in f.setting
                else "fashion-mnist"): f.verdict for f in found}
    assert len(found) == 2 and by_task == {"fashion-mnist": HOLDS, "mnist": DOES_NOT_HOLD}, [f.setting for f in found]
    assert {f.numbers["spearman_rho"] == f.numbers["spearman_rho"] for f in found} == {True, False}


def test_fewer_than_three_eps_values_are_skipped_with_the_eps_needed():
    # kills: the claim computed from two eps_g values
    found = verdict(findings(eps_study({"1/255": 1, "8/255": 3})), "B.delay_grows_with_eps")
    assert found.verdict == SKIPPED, found.why
    assert "at 3 eps_g values or more" in found.why and "Have: RFT-fix with a reference at eps_g 1/255, 8/255" \
        in found.why


# ----------------------------------------------------------------------------------------------------------------
# B.severity_by_model_and_data: clean accuracy lost by RFT-fix, per backbone x task, 500 images


def cell(model, task, standard, fix, seeds=(0,)):
    return [run for seed in seeds for run in (run_at("standard", [0.1, standard], seed=seed, model=model, task=task,
                                                     n=500),
                                              run_at("fix", [0.1, fix], seed=seed, model=model, task=task, n=500))]


def severity(gaps):
    """gaps: {(model, task): (standard, fix)} final clean accuracies."""
    return verdict(findings([r for (m, t), (s, f) in gaps.items() for r in cell(m, t, s, f)]),
                   "B.severity_by_model_and_data")


def test_severity_differing_by_backbone_and_by_task_holds_and_is_tabled_per_cell():
    found = severity({("mobilenet_v2", "fashion-mnist"): (0.9, 0.5), ("vit_small_dinov2", "fashion-mnist"): (0.9, 0.85),
                      ("mobilenet_v2", "mnist"): (0.9, 0.85)})
    assert found.verdict == HOLDS, found.why
    table = {(c["model"], c["task"]): c["gap"]["value"] for c in found.numbers["cells"]}
    assert table[("mobilenet_v2", "fashion-mnist")] == pytest.approx(0.4)
    assert table[("vit_small_dinov2", "fashion-mnist")] == pytest.approx(0.05)
    assert found.numbers["confidence"] == pytest.approx(1 - 0.05 / 2) and "Bonferroni over 2 contrasts" in found.method


def test_severity_compares_backbones_that_bring_their_own_recipe():
    # the embedded grid trains the ViT at another lr, image size, epoch count and evaluation step than MobileNetV2;
    # each cell's gap is against its own reference with the same recipe (kills: optim/train/eval.schedule compared)
    runs = [*cell("mobilenet_v2", "fashion-mnist", 0.9, 0.5), *cell("mobilenet_v2", "mnist", 0.9, 0.85)]
    for run in cell("vit_small_dinov2", "fashion-mnist", 0.9, 0.85):
        config = {**run.config, "optim": {**run.config["optim"], "lr": 5e-5},
                  "train": {**run.config.get("train", {}), "epochs": 5},
                  "eval": {**run.config["eval"], "schedule": "every:3"},
                  "data": {**run.config["data"], "image_size": 56}, "model": {**run.config["model"], "image_size": 56}}
        runs.append(held(run.name, config, run.metrics))
    found = verdict(findings(runs), "B.severity_by_model_and_data")
    assert found.verdict == HOLDS, found.why
    assert len(found.numbers["cells"]) == 3


def test_severity_differing_by_backbone_only_is_inconclusive_between_tasks():
    # kills: "holds" on a model contrast alone (the claim needs the dataset too)
    found = severity({("mobilenet_v2", "fashion-mnist"): (0.9, 0.5), ("vit_small_dinov2", "fashion-mnist"): (0.9, 0.85),
                      ("mobilenet_v2", "mnist"): (0.9, 0.5)})
    assert found.verdict == INCONCLUSIVE and found.why.endswith("between tasks."), found.why
    assert found.interval["what"] == "gap mobilenet_v2 on fashion-mnist minus gap mobilenet_v2 on mnist"


def test_severity_is_tested_at_every_eps_g_of_the_grid():
    # each eps_g of a grid is its own family of cells (kills: only the first eps_g examined, as before 2026-12-06:
    # the embedded grid reported 1/255, where little transfers sub-optimally, and never 4/255)
    def cells_at(eps, gaps):
        out = []
        for (model, task), (standard, fix) in gaps.items():
            ref = run_at("standard", [0.1, standard], model=model, task=task, n=500)
            tag = eps.replace("/", "_")  # a "/" in a run's name would read as a study folder
            ref = held(f"{model}-{task}-standard-{tag}", ref.config, ref.metrics)
            fixed = run_at("fix", [0.1, fix], eps, model=model, task=task, n=500)
            fixed = held(f"{model}-{task}-fix-{tag}", {**fixed.config, "detect": {"reference_run": ref.name}},
                         fixed.metrics)
            out += [ref, fixed]
        return out
    small = cells_at("1/255", {("mobilenet_v2", "fashion-mnist"): (0.6, 0.8), ("vit_small_dinov2", "fashion-mnist"):
                               (0.6, 0.8), ("mobilenet_v2", "mnist"): (0.5, 0.8)})
    large = cells_at("8/255", {("mobilenet_v2", "fashion-mnist"): (0.9, 0.5), ("vit_small_dinov2", "fashion-mnist"):
                               (0.9, 0.85), ("mobilenet_v2", "mnist"): (0.9, 0.85)})
    found = {f.setting.split("eps_g = ")[-1]: f.verdict for f in findings([*small, *large])
             if f.key == "B.severity_by_model_and_data"}
    assert found == {"1/255": DOES_NOT_HOLD, "8/255": HOLDS}, found


def test_no_suboptimal_transfer_anywhere_does_not_hold():
    # kills: the gap taken RFT-fix - standard (every cell would show "suboptimal transfer")
    found = severity({("mobilenet_v2", "fashion-mnist"): (0.6, 0.8), ("vit_small_dinov2", "fashion-mnist"): (0.6, 0.8),
                      ("mobilenet_v2", "mnist"): (0.5, 0.8)})
    assert found.verdict == DOES_NOT_HOLD and "no clean accuracy in any cell" in found.why, found.why


def test_one_backbone_is_skipped_with_the_backbones_needed():
    found = severity({("mobilenet_v2", "fashion-mnist"): (0.9, 0.5), ("mobilenet_v2", "mnist"): (0.9, 0.85)})
    assert found.verdict == SKIPPED and "two backbones" in found.why, found.why
    assert "mobilenet_v2 on fashion-mnist; mobilenet_v2 on mnist" in found.why


# ----------------------------------------------------------------------------------------------------------------
# B.eadv_when_adv_equal: curves at eps 0, 8/255, ..., 32/255 = eps_g, 500 images


def schedules(fix_curve, scheduled_curve):
    return [paper_b_run("fix", [0.1, 0.5, fix_curve[0]], fix_curve, n=500),
            paper_b_run("scheduled", [0.1, 0.5, scheduled_curve[0]], scheduled_curve, n=500)]


def test_higher_eadv_where_adversarial_accuracy_is_equal_holds():
    # kills: adversarial accuracy read at eps 0 (clean, measurably apart here) instead of eps_g
    found = verdict(findings(schedules([0.45, 0.25, 0.22, 0.21, 0.2], [0.8, 0.6, 0.45, 0.3, 0.21])),
                    "B.eadv_when_adv_equal")
    assert found.verdict == HOLDS and found.interval["low"] > 0, found.why
    assert found.numbers["adversarial_difference"]["value"] == pytest.approx(0.01)
    assert found.setting.endswith("eps_g = 32/255")


def test_lower_eadv_does_not_hold_and_close_curves_are_inconclusive():
    found = verdict(findings(schedules([0.8, 0.6, 0.45, 0.3, 0.21], [0.45, 0.25, 0.22, 0.21, 0.2])),
                    "B.eadv_when_adv_equal")
    assert found.verdict == DOES_NOT_HOLD and found.interval["high"] < 0, found.why
    found = verdict(findings(schedules([0.5, 0.4, 0.3, 0.25, 0.2], [0.51, 0.41, 0.31, 0.25, 0.2])),
                    "B.eadv_when_adv_equal")
    assert found.verdict == INCONCLUSIVE and found.resolve["unit"] == "images", found.why


def test_adversarial_accuracy_measurably_apart_is_skipped_and_shown_in_the_report_table():
    # kills: E.adv compared whatever the adversarial accuracy (the premise of the claim dropped)
    runs = schedules([0.45, 0.3, 0.2, 0.15, 0.1], [0.8, 0.6, 0.5, 0.45, 0.4])
    found = verdict(findings(runs), "B.eadv_when_adv_equal")
    assert found.verdict == SKIPPED and "not measurably apart" in found.why, found.why
    assert found.numbers["adversarial_difference"]["low"] > 0 and found.interval is None
    (row,) = [r for r in findings_table(runs) if r["claim"] == found.claim]
    assert row["verdict"] == SKIPPED and row["kind"] == "open" and row["why"].startswith("skipped: needs ")


def curves_on_shared_images(fix_levels, scheduled_levels, n=500, flip=0.01):
    """RFT-fix and Epsilon-Scheduling evaluated on the same ``n`` images, with per-image outcomes: clean accuracy per
    epoch and the final robust curve at eps 0, 16/255, 32/255 (= eps_g) at ``*_levels``; an image is right when its
    difficulty is below the level (strongly correlated verdicts), a few flipped at random."""

    rng = np.random.default_rng(0)
    u = rng.random(n)
    runs = []
    for kind, levels in (("fix", fix_levels), ("scheduled", scheduled_levels)):
        evaluations = [(10 * epoch, float(epoch), split, "accuracy", "clean", 0.0, (u < level) ^ (rng.random(n) < flip))
                       for epoch, level in enumerate((0.1, 0.4, levels[0])) for split in ("val", "test")]
        evaluations += [(20, 2.0, "test", "curve_accuracy", "apgd-ce", eps, (u < level) ^ (rng.random(n) < flip))
                        for eps, level in zip((0.0, 16 / 255, 32 / 255), levels, strict=True)]
        config = _config("full", "adversarial", "constant" if kind == "fix" else "scheduled")
        runs.append(evaluated(f"b-{kind}", config, evaluations, np.arange(n)))
    return runs


def test_eadv_where_adversarial_accuracy_is_equal_is_paired_over_the_shared_images():
    # kills: the E.adv difference left unpaired when outcomes exist (its Wilson bounds leave it inconclusive here)
    runs = curves_on_shared_images((0.6, 0.3, 0.2), (0.64, 0.36, 0.2))
    paired = verdict(findings(runs, n_boot=500), "B.eadv_when_adv_equal")
    unpaired = verdict(findings(runs, method="unpaired"), "B.eadv_when_adv_equal")
    assert paired.method.startswith("paired bootstrap over 500 images") and unpaired.method.startswith("unpaired")
    assert (paired.verdict, unpaired.verdict) == (HOLDS, INCONCLUSIVE), (paired.why, unpaired.why)
    assert paired.numbers["expected_robustness_difference"]["value"] == pytest.approx(
        unpaired.numbers["expected_robustness_difference"]["value"])
