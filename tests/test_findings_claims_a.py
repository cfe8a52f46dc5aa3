"""Paper A's cross-study claims on synthetic runs (issue 18): attention strategies on the more complex task, a
steeper frontier with complexity, OOD accuracy explained by shift and clean accuracy rather than the strategy.
Every verdict comes from the numbers; the tasks' complexity comes from a measured table (written here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.test_findings import paper_a_run, verdict

from robustft.analysis import findings_claims_base
from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, SKIPPED, findings
from robustft.data.complexity import read_complexity_table, task_complexity

CLEAN = [0.2, 0.6, 0.8, 0.9]
FLAT = [0.02, 0.1, 0.1, 0.05]


@pytest.fixture(autouse=True)
def measured(tmp_path, monkeypatch):
    """A complexity table in which hard-task is far less separable by the frozen probe than easy-task."""
    probe = {"n_test": 1000, "majority": 0.1}
    table = {"measured": "2026-12-06", "datasets": {
        "easy-task": {"classes": 10, "probes": {"mobilenet_v2@32": {**probe, "accuracy": 0.95,
                                                                    "balanced_accuracy": 0.95}}},
        "hard-task": {"classes": 10, "probes": {"mobilenet_v2@32": {**probe, "accuracy": 0.4,
                                                                    "balanced_accuracy": 0.4}}}}}
    path = tmp_path / "complexity.json"
    path.write_text(json.dumps(table))
    monkeypatch.setattr(findings_claims_base, "task_complexity", lambda name, _=None: task_complexity(name, str(path)))
    monkeypatch.setattr(findings_claims_base, "read_complexity_table",
                        lambda _=None: read_complexity_table(str(path)))


def on_task(task, robust_by_strategy, n=2048, clean=None, seed=0, ood=None):
    runs = []
    for name, robust in robust_by_strategy.items():
        run = paper_a_run(name, clean or CLEAN, robust, n, seed=seed, ood=(ood or {}).get(name))
        run.config["data"]["name"] = task
        run.name = f"{task}-{name}-{seed}"
        runs.append(run)
    return runs


# ----------------------------------------------------------------------------------------------------------------
# A.attention_on_complex

PERIPHERAL_WINS = {"bitfit": [0.1, 0.5, 0.5, 0.4], "compacter": FLAT, "full": FLAT, "lora": FLAT}
COMPACTER_WINS = {"bitfit": FLAT, "compacter": [0.1, 0.5, 0.5, 0.4], "full": FLAT, "lora": FLAT}


def test_compacter_above_average_on_the_measured_complex_task_holds_and_its_rank_rises():
    # kills: the more complex task picked as the higher probe accuracy (Compacter is below average on easy-task)
    runs = on_task("easy-task", PERIPHERAL_WINS) + on_task("hard-task", COMPACTER_WINS)
    found = verdict(findings(runs), "A.attention_on_complex")
    assert found.verdict == HOLDS, found.why
    assert found.numbers["complex_task"] == "hard-task" and found.numbers["order_resolved"] is True
    assert found.numbers["compacter_rank"] == {"complex": 1, "simple": 2} and found.numbers["compacter_rank_gain"] == 1
    assert found.interval["low"] > 0 and "hard-task" in found.setting and "no attention layer" in found.why
    assert found.numbers["change_between_tasks"]["low"] > 0


def test_compacter_below_average_on_the_complex_task_does_not_hold():
    # kills: the verdict's comparison flipped (a measurably negative % above average read as holds)
    runs = on_task("easy-task", COMPACTER_WINS) + on_task("hard-task", PERIPHERAL_WINS)
    found = verdict(findings(runs), "A.attention_on_complex")
    assert found.verdict == DOES_NOT_HOLD and found.interval["high"] < 0, found.why
    assert "the largest is bitfit" in found.why


def test_compacter_near_the_average_on_few_images_is_inconclusive_and_says_what_resolves_it():
    near = {"bitfit": [0.1, 0.21, 0.2, 0.19], "compacter": [0.1, 0.24, 0.22, 0.2], "full": [0.1, 0.2, 0.2, 0.18],
            "lora": [0.1, 0.22, 0.2, 0.2]}
    runs = on_task("easy-task", PERIPHERAL_WINS, n=64) + on_task("hard-task", near, n=64)
    found = verdict(findings(runs), "A.attention_on_complex")
    assert found.verdict == INCONCLUSIVE and found.interval["low"] < 0 < found.interval["high"], found.why
    assert found.resolve["unit"] == "images" and found.resolve["count"] > 64


def test_one_task_or_no_compacter_is_skipped_with_the_runs_it_needs():
    # kills: the skip emitted without a needs line, or the claim computed from one task
    found = verdict(findings(on_task("easy-task", PERIPHERAL_WINS)), "A.attention_on_complex")
    assert found.verdict == SKIPPED and found.interval is None and found.setting == "mobilenet_v2 on easy-task at 32 px"
    assert "on a second task with mobilenet_v2" in found.why and "data.name=hard-task" in found.why
    without = {k: v for k, v in COMPACTER_WINS.items() if k != "compacter"}
    found = verdict(findings(on_task("easy-task", PERIPHERAL_WINS) + on_task("hard-task", without)),
                    "A.attention_on_complex")
    assert found.verdict == SKIPPED and found.numbers["needs"] == ["compacter runs on hard-task"]


def test_a_task_whose_complexity_was_never_measured_is_skipped():
    runs = on_task("easy-task", PERIPHERAL_WINS) + on_task("unmeasured-task", COMPACTER_WINS)
    for key in ("A.attention_on_complex", "A.steeper_with_complexity"):
        found = verdict(findings(runs), key)
        assert found.verdict == SKIPPED and "unmeasured-task measured" in found.why


# ----------------------------------------------------------------------------------------------------------------
# A.steeper_with_complexity

# Robust curves along CLEAN: peak at the second evaluation, then a drop of `lost` points by the last one.
def dropping(lost: float, peak: float = 0.4) -> list[float]:
    return [0.1, peak, peak - lost / 2, peak - lost]


def test_a_frontier_losing_more_robust_accuracy_per_clean_point_on_the_complex_task_holds():
    # kills: the difference taken simple - complex (the verdict would flip to does not hold)
    easy = {"bitfit": dropping(0.02), "full": dropping(0.04), "lora": dropping(0.03), "compacter": dropping(0.05)}
    hard = {"bitfit": dropping(0.3), "full": dropping(0.35), "lora": dropping(0.25), "compacter": dropping(0.32)}
    found = verdict(findings(on_task("easy-task", easy) + on_task("hard-task", hard)), "A.steeper_with_complexity")
    assert found.verdict == HOLDS, found.why
    # bitfit on hard-task: 0.30 robust points lost over 0.3 clean points gained
    assert found.numbers["steepness"]["complex"]["bitfit"] == pytest.approx(1.0)
    assert found.numbers["steepness"]["simple"]["bitfit"] == pytest.approx(0.02 / 0.3)
    assert found.interval["low"] > 0 and found.method.startswith("Student-t over 4 strategies")


def test_a_flatter_frontier_on_the_complex_task_does_not_hold_and_mixed_ones_are_inconclusive():
    # kills: the complex task picked as the more separable one (the two verdicts below would swap)
    easy = {"bitfit": dropping(0.3), "full": dropping(0.35), "lora": dropping(0.25)}
    hard = {"bitfit": dropping(0.02), "full": dropping(0.04), "lora": dropping(0.03)}
    found = verdict(findings(on_task("easy-task", easy) + on_task("hard-task", hard)), "A.steeper_with_complexity")
    assert found.verdict == DOES_NOT_HOLD and found.interval["high"] < 0, found.why
    mixed = {"bitfit": dropping(0.5), "full": dropping(0.01), "lora": dropping(0.3)}
    found = verdict(findings(on_task("easy-task", easy) + on_task("hard-task", mixed)), "A.steeper_with_complexity")
    assert found.verdict == INCONCLUSIVE and found.resolve["unit"] == "strategies", found.why


def test_a_frontier_that_is_one_point_has_no_slope():
    easy = {"bitfit": [0.1, 0.2, 0.3, 0.4], "full": [0.1, 0.2, 0.3, 0.5]}  # most robust is also most accurate
    hard = {"bitfit": dropping(0.3), "full": dropping(0.3)}
    found = verdict(findings(on_task("easy-task", easy) + on_task("hard-task", hard)), "A.steeper_with_complexity")
    assert found.numbers["steepness"]["simple"] == {"bitfit": 0.0, "full": 0.0}


# ----------------------------------------------------------------------------------------------------------------
# A.ood_shift_not_method

CLEAN_BY_STRATEGY = {"bitfit": [0.2, 0.5, 0.6, 0.65], "full": [0.2, 0.7, 0.85, 0.9], "lora": [0.2, 0.6, 0.75, 0.8],
                     "compacter": [0.2, 0.55, 0.7, 0.78]}


def ood_study(ood_of, seeds=(0, 1), strategies=tuple(CLEAN_BY_STRATEGY)):
    """Every strategy at two seeds with two OOD splits; ``ood_of(strategy, split, clean, rng)`` -> OOD curve."""
    rng = np.random.default_rng(0)
    runs = []
    for seed in seeds:
        for name in strategies:
            clean = CLEAN_BY_STRATEGY[name]
            jittered = [min(1.0, c + 0.02 * seed) for c in clean]
            ood = {split: [float(v) for v in ood_of(name, split, np.array(jittered), rng)]
                   for split in ("noise", "blur")}
            runs += on_task("easy-task", {name: FLAT}, clean=jittered, seed=seed, ood={name: ood})
    return runs


def test_ood_set_by_the_shift_and_clean_accuracy_holds():
    # kills: the contrast taken R^2(strategy) - R^2(shift, clean)
    found = verdict(findings(ood_study(lambda name, split, clean, rng: (0.8 if split == "noise" else 0.5) * clean
                                       + rng.normal(0, 0.005, clean.size))), "A.ood_shift_not_method")
    assert found.verdict == HOLDS, found.why
    assert found.numbers["r2_shift_and_clean"] > 0.95 and found.numbers["shifts"] == ["blur", "noise"]
    assert found.interval["low"] > 0 and "bootstrap over 8 runs within strategies" in found.method
    # n counts images, the bootstrap runs: the method names both (a newcomer read "over 7 runs ... n = 256")
    assert f"(each evaluated on {found.n} images)" in found.method and found.n > 8


def test_ood_of_two_strategies_is_skipped_not_decided_by_a_collapsed_bootstrap():
    # kills: the minimum back at two strategies (two runs gave "holds, +93 [+93, +100]": draws of one strategy)
    found = verdict(findings(ood_study(lambda name, split, clean, rng: (0.8 if split == "noise" else 0.5) * clean
                                       + rng.normal(0, 0.005, clean.size), seeds=(0,), strategies=("bitfit", "full"))),
                    "A.ood_shift_not_method")
    assert found.verdict == SKIPPED and "at least three strategies" in found.why, found.why


def test_ood_set_by_the_strategy_does_not_hold():
    level = {"bitfit": 0.1, "full": 0.7, "lora": 0.4, "compacter": 0.55}
    found = verdict(findings(ood_study(lambda name, split, clean, rng: level[name] + rng.normal(0, 0.01, clean.size)
                                       + 0.05 * (clean[::-1] - clean.mean()))), "A.ood_shift_not_method")
    assert found.verdict == DOES_NOT_HOLD and found.interval["high"] < 0, found.why
    assert found.numbers["r2_strategy"] > found.numbers["r2_shift_and_clean"]


def test_ood_that_nothing_explains_is_inconclusive_and_a_study_without_ood_is_skipped():
    found = verdict(findings(ood_study(lambda name, split, clean, rng: rng.uniform(0.3, 0.5, clean.size))),
                    "A.ood_shift_not_method")
    assert found.verdict == INCONCLUSIVE and found.resolve["unit"] == "runs", found.why
    skipped = verdict(findings(on_task("easy-task", PERIPHERAL_WINS)), "A.ood_shift_not_method")
    assert skipped.verdict == SKIPPED and "data.ood" in skipped.why and "easy-task" in skipped.why


def test_ood_accuracy_that_never_varies_has_nothing_to_explain():
    # kills: R^2 of a constant (NaN) carried into the interval and the sample size that would resolve it
    found = verdict(findings(ood_study(lambda name, split, clean, rng: np.full(clean.size, 0.1))),
                    "A.ood_shift_not_method")
    assert found.verdict == INCONCLUSIVE and found.interval is None and "no variance" in found.why


def test_runs_unrelated_to_a_paper_a_study_get_no_skip_lines():
    # kills: skip lines emitted for runs that hold no study of the paper
    assert findings(on_task("easy-task", {"full": FLAT})) == []
