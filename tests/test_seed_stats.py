"""Statistics over seeds: summary numbers, mean / std / n per group, attainment bands, paper B's table, t-test."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from robustft import analysis
from robustft.analysis.seed_stats import (
    attainment_band,
    group_runs,
    paired_ttest,
    run_summaries,
    schedule_table,
    schedule_tests,
    seed_table,
)
from robustft.errors import ConfigError
from robustft.runs import Run

EPS4 = 4 / 255


def config(seed=0, strategy="full", schedule="scheduled", data="fashion-mnist", name=None):
    return {"name": name or f"b-strategy-{strategy}-eps.schedule-{schedule}-seed-{seed}", "output_dir": "/x",
            "seed": seed, "device": "cpu", "model": {"name": "mobilenet_v2"}, "data": {"name": data},
            "strategy": {"name": strategy}, "objective": {"name": "adversarial"},
            "eps": {"schedule": schedule, "value": "4/255"}, "logging": {"progress": False}}


def metrics(clean, robust, e_adv=0.3, final_robust=None, ood=None):
    """Records of a run evaluated at steps 0, 10, 20, ...: clean and PGD@1/255 and @4/255 on test, val clean."""
    rows = []
    for i, (c, r) in enumerate(zip(clean, robust, strict=True)):
        step = 10 * i
        rows += [{"step": step, "epoch": i, "split": "test", "metric": "accuracy", "attack": "clean", "eps": 0.0,
                  "value": c},
                 {"step": step, "epoch": i, "split": "val", "metric": "accuracy", "attack": "clean", "eps": 0.0,
                  "value": c - 0.01},
                 {"step": step, "epoch": i, "split": "test", "metric": "accuracy", "attack": "pgd", "eps": 1 / 255,
                  "value": r},
                 {"step": step, "epoch": i, "split": "test", "metric": "accuracy", "attack": "pgd", "eps": EPS4,
                  "value": r / 2}]
    last = 10 * (len(clean) - 1)
    rows.append({"step": last, "epoch": len(clean) - 1, "split": "test", "metric": "expected_robustness",
                 "attack": "pgd", "eps": EPS4, "value": e_adv})
    if final_robust is not None:
        rows.append({"step": last, "epoch": len(clean) - 1, "split": "test", "metric": "accuracy",
                     "attack": "final:apgd-ce", "eps": EPS4, "value": final_robust})
    for name, value in (ood or {}).items():
        rows.append({"step": last, "epoch": len(clean) - 1, "split": f"ood:{name}", "metric": "accuracy",
                     "attack": "clean", "eps": 0.0, "value": value})
    return pd.DataFrame(rows)


def run(cfg, frame, summary=None):
    return Run(name=cfg["name"], config=cfg, summary=summary or {}, metrics=frame)


def points_of(runs):
    return analysis.tradeoff_points(pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True))


def test_run_summaries_reads_every_number():
    summary = {"detection": {"onset": {"epoch": 2, "step": 20}, "robust_peak": {"step": 10, "value": 0.4}}}
    one = run(config(0), metrics([0.2, 0.6, 0.8], [0.4, 0.3, 0.1], e_adv=0.25, final_robust=0.05,
                                 ood={"a": 0.5, "b": 0.7}), summary)
    two = run(config(1), metrics([0.3, 0.7], [0.2, 0.2]))  # no final evaluation, no summary: computed
    table = run_summaries([one, two], points_of([one, two])).set_index("run")
    first = table.loc[one.name]
    assert first["final_clean"] == pytest.approx(0.8)
    assert first["final_robust"] == pytest.approx(0.05)  # the final strong evaluation at eps_g = 4/255
    assert first["robust_eps"] == pytest.approx(EPS4)
    assert first["final_ood"] == pytest.approx(0.6)
    assert first["e_adv"] == pytest.approx(0.25)
    # the onset from the records (val 19% at step 0, 59% at epoch 1: the first evaluation after step 0 above 5%),
    # whatever an older summary recorded; the peak from the summary
    assert (first["onset_epoch"], first["peak_step"]) == (1, 10)
    second = table.loc[two.name]
    assert second["final_robust"] == pytest.approx(0.1)  # the tracked attack at eps_g (not the smaller 1/255)
    assert math.isnan(second["final_ood"])
    assert second["peak_step"] == 0  # computed from the metrics: robust 0.2 at steps 0 and 10, earliest wins
    # The per-run area is paper A's Pareto area of the run's own cloud.
    assert first["pareto_area"] == pytest.approx(analysis.pareto_area([0.2, 0.6, 0.8], [0.4, 0.3, 0.1]))
    # Seeds 0 and 1: one run per (seed, dataset, backbone), nothing to compare with.
    assert table["percent_above_average"].isna().all()
    assert set(table["group"]) == {"b-strategy-full-eps.schedule-scheduled"}


def curve_at_the_end(frame, value, eps=EPS4, attack="apgd-ce"):
    """``frame`` plus a robust curve (0 and ``eps``) at its last step, ``value`` at ``eps``."""
    last = int(frame["step"].max())
    rows = [{"step": last, "epoch": last // 10, "split": "test", "metric": "curve_accuracy", "attack": "clean",
             "eps": 0.0, "value": 0.8},
            {"step": last, "epoch": last // 10, "split": "test", "metric": "curve_accuracy", "attack": attack,
             "eps": eps, "value": value}]
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)


def test_adversarial_accuracy_at_eps_g_is_the_worst_attack_on_the_final_model_curve_included():
    # The final APGD-CE finds 2.1% robust at eps_g, the nested robust curve 0.0% at the same eps on the same
    # images: the model is at most 0.0% robust there (a quick demo printed the two as unlabelled numbers).
    weaker_final = run(config(0), curve_at_the_end(metrics([0.5, 0.8], [0.3, 0.2], final_robust=0.021), 0.0))
    weaker_curve = run(config(1), curve_at_the_end(metrics([0.5, 0.8], [0.3, 0.2], final_robust=0.021), 0.05))
    table = run_summaries([weaker_final, weaker_curve]).set_index("run")
    assert table.loc[weaker_final.name, "final_robust"] == 0.0
    assert table.loc[weaker_curve.name, "final_robust"] == pytest.approx(0.021)
    assert table["robust_eps"].tolist() == pytest.approx([EPS4, EPS4])


def test_percent_above_average_compares_runs_of_one_seed_and_task():
    runs = [run(config(0, s), metrics([0.5, c], [0.2, 0.1])) for s, c in (("full", 0.9), ("bitfit", 0.6))]
    runs.append(run(config(0, "lora", data="other"), metrics([0.5], [0.2])))  # another task: not compared
    table = run_summaries(runs, points_of(runs)).set_index("strategy")
    areas = table["pareto_area"]
    mean = (areas["full"] + areas["bitfit"]) / 2
    assert table.loc["full", "percent_above_average"] == pytest.approx(100 * (areas["full"] - mean) / mean)
    assert math.isnan(table.loc["lora", "percent_above_average"])


def test_groups_are_everything_but_the_seed_and_labelled_by_what_varies():
    cfgs = [config(s, strategy) for strategy in ("full", "bitfit") for s in range(3)]
    cfgs[0]["logging"] = {"progress": True}  # not part of the experiment
    table = group_runs([run(c, pd.DataFrame()) for c in cfgs])
    assert table["group"].tolist() == ["strategy=full"] * 3 + ["strategy=bitfit"] * 3
    assert table["seed"].tolist() == [0, 1, 2, 0, 1, 2]
    assert table["eps_g"].iloc[0] == pytest.approx(EPS4)


def test_seed_table_mean_std_and_n():
    summaries = pd.DataFrame({"group": ["a", "a", "a", "b"], "final_clean": [0.5, 0.6, 0.9, 0.4],
                              "onset_epoch": [1, np.nan, 3, 2]})
    table = seed_table(summaries, ["final_clean", "onset_epoch"]).set_index("group")
    assert table.loc["a", "runs"] == 3 and table.loc["a", "final_clean_n"] == 3
    assert table.loc["a", "final_clean_mean"] == pytest.approx(np.mean([0.5, 0.6, 0.9]))
    assert table.loc["a", "final_clean_std"] == pytest.approx(np.std([0.5, 0.6, 0.9], ddof=1))
    assert table.loc["a", "onset_epoch_n"] == 2 and table.loc["a", "onset_epoch_mean"] == 2
    assert math.isnan(table.loc["b", "final_clean_std"])  # one run: no spread


def test_attainment_band_hand_computed():
    # seed 1 reaches robust 0.5 up to clean 0.4 and 0.2 up to 0.8; seed 2: 0.3 up to 0.6; seed 3: 0.1 up to 0.9
    clouds = [([0.4, 0.8, 0.1], [0.5, 0.2, 0.1]), ([0.6], [0.3]), ([0.9, 0.2], [0.1, 0.05])]
    band = attainment_band(clouds)
    np.testing.assert_allclose(band.clean, [0.1, 0.2, 0.4, 0.6, 0.8, 0.9])
    np.testing.assert_allclose(band.best, [0.5, 0.5, 0.5, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(band.median, [0.3, 0.3, 0.3, 0.2, 0.1, 0.0])  # 2nd largest of 3 seeds
    np.testing.assert_allclose(band.worst, [0.1, 0.1, 0.1, 0.1, 0.0, 0.0])  # all three reach 0.1 up to 0.6
    assert band.n_seeds == 3
    assert band.surface("best").values.tolist() == [[0.4, 0.5], [0.6, 0.3], [0.8, 0.2], [0.9, 0.1]]
    assert band.surface("worst").values.tolist() == [[0.6, 0.1]]
    assert band.area("worst") == pytest.approx(0.6 * 0.1)


def test_attainment_band_brackets_every_seed_and_matches_pareto_area():
    rng = np.random.default_rng(0)
    clouds = [(rng.uniform(0, 1, 12), rng.uniform(0, 0.5, 12)) for _ in range(5)]
    band = attainment_band(clouds)
    areas = [analysis.pareto_area(c, r) for c, r in clouds]
    assert band.area("worst") <= min(areas) and band.area("best") >= max(areas)
    assert band.area("worst") <= band.area("median") <= band.area("best")
    # the union's area is the Pareto area of all points together; the surface's points are that frontier
    everything = (np.concatenate([c for c, _ in clouds]), np.concatenate([r for _, r in clouds]))
    assert band.area("best") == pytest.approx(analysis.pareto_area(*everything))
    assert analysis.pareto_area(band.surface("median")["clean"], band.surface("median")["robust"]) == \
        pytest.approx(band.area("median"))
    for c, r in clouds:  # one seed: every surface is its own frontier
        single = attainment_band([(c, r)])
        assert single.area("worst") == single.area("best") == pytest.approx(analysis.pareto_area(c, r))
    with pytest.raises(ConfigError):
        attainment_band([])


@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)])
def test_median_is_reached_by_half_the_seeds(n, k):
    clouds = [([0.5], [0.1 * (i + 1)]) for i in range(n)]
    assert attainment_band(clouds).median[0] == pytest.approx(0.1 * (n - k + 1))


def paper_b_summaries():
    rng = np.random.default_rng(1)
    rows = []
    for dataset in ("cub", "dogs"):
        for seed in range(3):
            base = rng.uniform(0.2, 0.5)
            for schedule, gain in (("constant", 0.0), ("scheduled", 0.2)):
                rows.append({"run": f"{dataset}-{schedule}-{seed}", "dataset": dataset, "backbone": "vit",
                             "strategy": "full", "objective": "adversarial", "eps_g": EPS4, "seed": seed,
                             "schedule": schedule, "final_clean": base + gain + rng.normal(0, 0.02),
                             "final_robust": base / 2 + rng.normal(0, 0.02),
                             "e_adv": base / 1.5 + gain / 2 + rng.normal(0, 0.02)})
    return pd.DataFrame(rows)


def test_paired_ttest_equals_scipy():
    summaries = paper_b_summaries()
    result = paired_ttest(summaries, "final_clean", "constant", "scheduled")
    a = summaries[summaries["schedule"] == "constant"].sort_values("run")["final_clean"].to_numpy()
    b = summaries[summaries["schedule"] == "scheduled"].sort_values("run")["final_clean"].to_numpy()
    expected = scipy_stats.ttest_rel(b, a)
    assert result.n_pairs == 6
    assert result.t == pytest.approx(expected.statistic) and result.p == pytest.approx(expected.pvalue)
    assert result.mean_difference == pytest.approx(np.mean(b - a))
    # unmatched runs are not paired
    fewer = summaries[~((summaries["schedule"] == "scheduled") & (summaries["seed"] == 2))]
    assert paired_ttest(fewer, "final_clean", "constant", "scheduled").n_pairs == 4
    one = fewer[(fewer["seed"] == 0) & (fewer["dataset"] == "cub")]
    assert math.isnan(paired_ttest(one, "final_clean", "constant", "scheduled").p)


def test_paired_ttest_refuses_ambiguous_pairs():
    summaries = paper_b_summaries()
    with pytest.raises(ConfigError, match="add the column"):
        paired_ttest(summaries, "e_adv", "constant", "scheduled", match=("dataset", "backbone"))
    with pytest.raises(ConfigError, match="no column"):
        paired_ttest(summaries, "nope", "constant", "scheduled")


def test_schedule_table_and_tests():
    summaries = paper_b_summaries()
    table = schedule_table(summaries).set_index("schedule")
    scheduled = summaries[summaries["schedule"] == "scheduled"]
    assert table.loc["scheduled", "runs"] == 6
    assert table.loc["scheduled", "e_adv_mean"] == pytest.approx(scheduled["e_adv"].mean())
    assert table.loc["scheduled", "final_robust_std"] == pytest.approx(scheduled["final_robust"].std())
    detail = schedule_table(summaries, per_configuration=True)
    assert len(detail) == 4 and set(detail["runs"]) == {3}
    tests = schedule_tests(summaries)
    assert tests[["a", "b"]].drop_duplicates().values.tolist() == [["constant", "scheduled"]]
    assert tests["metric"].tolist() == ["final_clean", "final_robust", "e_adv"]
    assert (tests["n_pairs"] == 6).all()


def _outcome_row(step, metric, attack, correct_ids, ids=tuple(range(10))):
    ids = np.asarray(ids, dtype=np.int64)
    return {"step": step, "split": "test", "metric": metric, "attack": attack, "eps": EPS4, "n": len(ids),
            "image_ids": ids, "correct": np.isin(ids, correct_ids)}


def paper_b_run_with_outcomes(seed, outcome_rows):
    """Final step 10 at eps_g 4/255: tracked PGD 0.5 (images 0-4), final APGD-CE 0.4 (1, 2, 3, 8), curve 0.3
    (1, 2, 9) on the same 10 images; only images 1 and 2 survive all three."""
    frame = curve_at_the_end(metrics([0.5, 0.8], [0.3, 1.0], final_robust=0.4), 0.3)
    return Run(name=f"b-{seed}", config=config(seed, name=f"b-{seed}"), summary={}, metrics=frame,
               outcomes=pd.DataFrame(outcome_rows))


def test_adversarial_accuracy_at_eps_g_is_the_per_image_worst_case_over_the_attacks():
    # kills: the lowest accuracy (0.3) kept where the outcomes give the per-image worst case (0.2); an image counted
    # robust when one attack left it correct
    rows = [_outcome_row(10, "accuracy", "pgd", [0, 1, 2, 3, 4]),
            _outcome_row(10, "accuracy", "final:apgd-ce", [1, 2, 3, 8]),
            _outcome_row(10, "curve_accuracy", "apgd-ce", [1, 2, 9])]
    shuffled = [dict(row, image_ids=row["image_ids"][::-1].copy(), correct=row["correct"][::-1].copy())
                if row["attack"] == "pgd" else row for row in rows]  # the same images in another order
    table = run_summaries([paper_b_run_with_outcomes(0, rows), paper_b_run_with_outcomes(1, shuffled)]).set_index("run")
    assert table.loc["b-0", "final_robust"] == pytest.approx(0.2) and bool(table.loc["b-0", "robust_worst_case"])
    assert table.loc["b-1", "final_robust"] == pytest.approx(0.2)


@pytest.mark.parametrize("case", ["missing row", "other images", "no outcomes"])
def test_without_outcomes_on_the_same_images_the_lowest_accuracy_stays(case):
    rows = [_outcome_row(10, "accuracy", "pgd", [0, 1, 2, 3, 4]),
            _outcome_row(10, "accuracy", "final:apgd-ce", [1, 2, 3, 8]),
            _outcome_row(10, "curve_accuracy", "apgd-ce", [1, 2, 9])]
    if case == "missing row":
        rows = rows[:2]
    elif case == "other images":
        rows[2] = _outcome_row(10, "curve_accuracy", "apgd-ce", [11, 12, 19], ids=range(10, 20))
    else:
        rows = []
    table = run_summaries([paper_b_run_with_outcomes(0, rows)]).set_index("run")
    assert table.loc["b-0", "final_robust"] == pytest.approx(0.3)  # the curve's 0.3, the lowest accuracy
    assert not bool(table.loc["b-0", "robust_worst_case"])
