"""Findings from per-image outcomes: runs evaluated on the same images are compared image by image, runs that are not
fall back to the unpaired intervals and say so, and a claim that picks a maximum accounts for the pick."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.test_findings import EPS_A, _config, verdict

from robustft.analysis import evidence
from robustft.analysis.findings import HOLDS, INCONCLUSIVE, findings
from robustft.analysis.findings_claims import CLAIM_KEYS
from robustft.analysis.findings_paper_a_paired import area_contrasts
from robustft.analysis.findings_peak import peak_contrasts
from robustft.analysis.paired import AlignedOutcomes, Sample
from robustft.analysis.paired_bootstrap import paired_bootstrap, pareto_area_statistic
from robustft.errors import ConfigError
from robustft.runs import Run
from robustft.runs.outcomes import TABLE_COLUMNS


def held(name: str, config: dict, metrics: pd.DataFrame, outcomes: pd.DataFrame | None) -> Run:
    """A run held in memory with its per-image outcomes (as ``robustft.runs.read_outcomes`` returns them; None:
    none recorded)."""
    return Run(name=name, config=config, metrics=metrics, outcomes=outcomes,
               summary={"detection": {"num_classes": 10}})


def evaluated(name: str, config: dict, evaluations: list[tuple], ids: np.ndarray) -> Run:
    """A run whose records are the means of its verdicts: ``evaluations`` are (step, epoch, split, metric, attack,
    eps, correct bool (n,)) on the images ``ids``."""
    rows, table = [], []
    for step, epoch, split, metric, attack, eps, correct in evaluations:
        rows.append({"step": step, "epoch": epoch, "split": split, "metric": metric, "attack": attack, "eps": eps,
                     "value": float(np.mean(correct)), "n": int(correct.size)})
        table.append((step, split, metric, attack, eps, int(ids.size), ids, np.asarray(correct, dtype=bool)))
    return held(name, config, pd.DataFrame(rows), pd.DataFrame(table, columns=list(TABLE_COLUMNS)))


def without_outcomes(runs: list[Run]) -> list[Run]:
    return [held(r.name, r.config, r.metrics, None) for r in runs]


def half_width(finding) -> float:
    return (finding.interval["high"] - finding.interval["low"]) / 2


# ----------------------------------------------------------------------------------------------------------------
# Paper B: two schedules on the same images


def schedules(final_fix: float = 0.60, final_scheduled: float = 0.63, n: int = 500, flip: float = 0.01,
              seed: int = 0, scheduled_ids_from: int = 0) -> list[Run]:
    """RFT-fix and Epsilon-Scheduling runs, 3 epochs, evaluated on the same ``n`` images (scheduled's shifted by
    ``scheduled_ids_from`` to make them differ): an image is right when its difficulty is below the run's accuracy
    (strongly correlated verdicts), a few flipped at random."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    runs = []
    for kind, final in (("fix", final_fix), ("scheduled", final_scheduled)):
        evaluations = []
        for epoch, level in enumerate((0.1, 0.4, final)):
            for split in ("val", "test"):
                correct = (u < level) ^ (rng.random(n) < flip)
                evaluations.append((10 * epoch, float(epoch), split, "accuracy", "clean", 0.0, correct))
        ids = np.arange(n) + (scheduled_ids_from if kind == "scheduled" else 0)
        config = _config("full", "adversarial", "constant" if kind == "fix" else "scheduled", seed=seed)
        runs.append(evaluated(f"b-{kind}-{seed}", config, evaluations, ids))
    return runs


def test_three_points_on_500_shared_images_are_resolved_paired_and_not_unpaired():
    runs = schedules()
    paired, unpaired = verdict(findings(runs), "B.clean"), verdict(findings(runs, method="unpaired"), "B.clean")
    assert paired.numbers["difference"]["value"] == pytest.approx(unpaired.numbers["difference"]["value"])
    assert (unpaired.verdict, paired.verdict) == (INCONCLUSIVE, HOLDS), (unpaired.why, paired.why)
    assert paired.method == "paired (Newcombe), n=500" and paired.n == 500 and paired.resolve is None
    assert unpaired.method == "unpaired: Wilson, n=500" and unpaired.n == 500
    assert half_width(paired) < 0.5 * half_width(unpaired)
    # what would resolve the unpaired comparison: more images than these 500, counted per run
    assert unpaired.resolve["unit"] == "images" and unpaired.resolve["count"] > 500
    # without outcomes (runs written before outcomes.bin) the paired default is the unpaired method
    legacy = verdict(findings(without_outcomes(runs)), "B.clean")
    assert (legacy.verdict, legacy.interval) == (unpaired.verdict, unpaired.interval)
    assert legacy.method.startswith("unpaired: no per-image outcomes recorded") and "unpaired" not in legacy.why


def test_runs_that_share_no_images_fall_back_to_unpaired_and_say_so():
    runs = schedules(scheduled_ids_from=10_000)
    found = verdict(findings(runs), "B.clean")
    unpaired = verdict(findings(runs, method="unpaired"), "B.clean")
    assert found.verdict == unpaired.verdict == INCONCLUSIVE
    assert found.method.startswith("unpaired: runs share no evaluated images")
    assert "(unpaired: runs share no evaluated images)" in found.why
    # sharing a tenth of the images is no basis for pairing either: the rest of the evidence would be thrown away
    partial = verdict(findings(schedules(scheduled_ids_from=450)), "B.clean")
    assert partial.method.startswith("unpaired: runs share only 50 of 500 evaluated images"), partial.method


def test_seeds_are_paired_within_each_seed_and_combined_by_the_two_level_bootstrap():
    # Three seeds, each evaluated on its own images (ids differ between seeds as the evaluator's subsets do).
    runs = [run for seed in range(3) for run in schedules(0.60, 0.63, 300, seed=seed, scheduled_ids_from=0)]
    for run in runs:
        seed = run.config["seed"]
        run.outcomes = run.outcomes.assign(image_ids=[ids + 1000 * seed for ids in run.outcomes["image_ids"]])
    found = verdict(findings(runs, n_boot=500), "B.clean")
    assert found.method == "two-level bootstrap over 3 seeds and 900 images, 500 draws", found.method
    assert found.n == 300 and found.numbers["pairs"] == 3
    assert found.verdict == HOLDS, found.why
    unpaired = verdict(findings(runs, method="unpaired"), "B.clean")
    assert unpaired.method == "unpaired: 3 seeds"
    if unpaired.verdict == INCONCLUSIVE:  # a seeds' spread resolves with more seeds, not more images
        assert unpaired.resolve["unit"] == "seeds"


def test_a_bad_method_is_refused():
    with pytest.raises(ConfigError, match="paired, unpaired"):
        findings(schedules(), method="pairwise")
    with pytest.raises(ConfigError, match="n_boot"):
        findings(schedules(), n_boot=10)


# ----------------------------------------------------------------------------------------------------------------
# Paper A: strategies on the same images

STEPS = [0, 50, 100, 150, 200, 300, 400, 600]
CLEAN = [0.2, 0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.85]
ROBUST = {"full": [0.02, 0.1, 0.16, 0.2, 0.18, 0.15, 0.13, 0.12],
          "bitfit": [0.02, 0.1, 0.2, 0.25, 0.25, 0.26, 0.25, 0.25],
          "linear": [0.02, 0.08, 0.18, 0.2, 0.22, 0.22, 0.23, 0.23],
          "lora": [0.02, 0.1, 0.15, 0.2, 0.2, 0.21, 0.2, 0.2],
          "ia3": [0.02] * 8}


def strategies(n: int = 256, flip: float = 0.03, seed: int = 0) -> list[Run]:
    """A paper A study whose strategies share their evaluated images and their images' difficulty."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    runs = []
    for name, robust in ROBUST.items():
        evaluations = []
        for i, step in enumerate(STEPS):
            clean = (u < CLEAN[i]) ^ (rng.random(n) < flip)
            attacked = ((u < robust[i]) ^ (rng.random(n) < flip)) & clean
            ood = (u < 0.8 * CLEAN[i]) ^ (rng.random(n) < flip)
            evaluations += [(step, step / 100, "test", "accuracy", "clean", 0.0, clean),
                            (step, step / 100, "test", "accuracy", "pgd", EPS_A, attacked),
                            (step, step / 100, "ood:noise", "accuracy", "clean", 0.0, ood)]
        runs.append(evaluated(f"a-{name}", _config(name, seed=seed), evaluations, np.arange(n)))
    return runs


def test_paper_a_findings_are_paired_and_narrower_on_the_same_runs():
    runs = strategies()
    paired = {f.key: f for f in findings(runs, n_boot=1000) if f.key not in CLAIM_KEYS}
    unpaired = {f.key: f for f in findings(runs, method="unpaired") if f.key not in CLAIM_KEYS}
    assert set(paired) == set(unpaired) == {"A.robust_peak", "A.largest_area", "A.bitfit_above_average",
                                            "A.linear_above_average", "A.ood_tracks_clean"}
    for key, found in paired.items():
        assert found.method.startswith("paired bootstrap over 256 images, 1000 draws"), (key, found.method)
        assert found.n == 256 and unpaired[key].method.startswith("unpaired: ")
        if key != "A.ood_tracks_clean":  # Fisher's z treats the 40 points as independent, ignoring image noise
            assert half_width(found) < half_width(unpaired[key]), key
    # BitFit's area 28% above the average: within the Wilson bounds' noise, resolved on the shared images
    assert unpaired["A.bitfit_above_average"].verdict == INCONCLUSIVE
    assert paired["A.bitfit_above_average"].verdict == HOLDS, paired["A.bitfit_above_average"].why
    # BitFit 0.008 ahead of linear probing: not resolved by either, and the report says how many images would
    largest = paired["A.largest_area"]
    assert largest.verdict == INCONCLUSIVE and largest.numbers["leader"] == "bitfit"
    assert largest.resolve["unit"] == "images" and largest.resolve["count"] > 256
    assert "picked from the data" in largest.method


# ----------------------------------------------------------------------------------------------------------------
# Selection: a maximum picked from noise must rarely look real


def one_split(correct: np.ndarray) -> AlignedOutcomes:
    """``correct`` bool (runs, points, n) on one split."""
    runs, points, n = correct.shape
    keys = tuple((i, "test", "accuracy", "clean", 0.0) for i in range(points))
    return AlignedOutcomes(keys, (Sample(np.arange(points), np.arange(n), correct),), {"test": 0})


def test_a_peak_picked_from_a_flat_curve_rarely_looks_like_a_rise_or_a_drop():
    # 200 runs whose robust accuracy is 30% at each of 12 evaluations on the same 256 images (a few verdicts flip
    # between evaluations): the largest of the 12 is noise, so "peak minus start" and "peak minus end" may exclude 0
    # at most ~5% of the time (here 2.5% and 0.5%). Bands for the picked step alone do it 10% of the time; the
    # percentile interval of "max minus end" re-picked in each replicate (>= 0 in every replicate) 38%.
    rng, m, n, trials = np.random.default_rng(5), 12, 256, 200
    rises = drops = 0
    for trial in range(trials):
        u = rng.random(n)
        robust = (u[None, :] < 0.3) ^ (rng.random((m, n)) < 0.06)
        result = paired_bootstrap(one_split(robust[None]), lambda acc: acc[:, 0, :], n_boot=400, seed=trial)
        contrasts, _ = peak_contrasts(result)
        rises += evidence.sign(contrasts.rise) != evidence.UNRESOLVED
        drops += evidence.sign(contrasts.drop) != evidence.UNRESOLVED
    assert drops / trials <= 0.06 and rises / trials <= 0.06, (drops, rises)


def test_the_largest_of_equal_strategies_is_rarely_declared():
    # 150 studies of 6 strategies with the same true curve (each its own noise on the same 256 images): BitFit is
    # neither measurably the largest nor measurably behind the best other more than ~5% of the time, although "the
    # best other" is the largest of 5 noisy areas (here 2%; the percentile interval of "BitFit minus the largest
    # other area" re-picked in each replicate: 22%).
    rng, k, m, n, trials = np.random.default_rng(7), 6, 4, 256, 150
    clean_levels, robust_levels = np.array([0.4, 0.6, 0.7, 0.8]), np.array([0.1, 0.25, 0.2, 0.15])
    names = ["bitfit", "full", "linear", "lora", "ia3", "adapter"]
    declared = 0
    for trial in range(trials):
        u = rng.random(n)
        clean = (u[None, None, :] < clean_levels[None, :, None]) ^ (rng.random((k, m, n)) < 0.05)
        robust = ((u[None, None, :] < robust_levels[None, :, None]) ^ (rng.random((k, m, n)) < 0.05)) & clean
        areas = pareto_area_statistic(range(m), range(m, 2 * m))
        result = paired_bootstrap(one_split(np.concatenate([clean, robust], axis=1)), areas, n_boot=400, seed=trial)
        _, behind, _ = area_contrasts(names, result)
        declared += evidence.sign(behind) != evidence.UNRESOLVED
    assert declared / trials <= 0.06, declared


def test_a_clear_leader_is_declared_and_a_clear_laggard_is_not_the_largest():
    # the same machinery is not blind: BitFit 5 points of robust accuracy above four equal others on 256 images
    rng, n = np.random.default_rng(3), 256
    u = rng.random(n)
    levels = np.array([0.35, 0.3, 0.3, 0.3, 0.3])
    clean = (u[None, None, :] < 0.8) ^ (rng.random((5, 1, n)) < 0.02)
    robust = ((u[None, None, :] < levels[:, None, None]) ^ (rng.random((5, 1, n)) < 0.02)) & clean
    result = paired_bootstrap(one_split(np.concatenate([clean, robust], axis=1)), pareto_area_statistic([0], [1]),
                              n_boot=1000, seed=0)
    names = ["bitfit", "full", "linear", "lora", "ia3"]
    assert evidence.sign(area_contrasts(names, result)[1]) == evidence.GREATER
    assert evidence.sign(area_contrasts(["full", "bitfit", "linear", "lora", "ia3"], result)[1]) == evidence.LESS


def test_paper_a_seeds_are_aligned_within_each_seed_and_a_seed_missing_from_a_strategy_is_left_out():
    runs = []
    for seed in (0, 1):
        for run in strategies(seed=seed):
            run.name = f"{run.name}-{seed}"
            run.outcomes = run.outcomes.assign(image_ids=[ids + 1000 * seed for ids in run.outcomes["image_ids"]])
            runs.append(run)
    largest = verdict(findings(runs, n_boot=300), "A.largest_area")
    assert largest.method.startswith("two-level bootstrap over 2 seeds and 512 images, 300 draws"), largest.method
    assert largest.numbers["areas"]["bitfit"]["basis"] == largest.method.split(";")[0]
    lonely = [r for r in runs if r.name != "a-lora-1"]
    largest = verdict(findings(lonely, n_boot=300), "A.largest_area")
    assert largest.method.startswith("paired bootstrap over 256 images"), largest.method
    assert "left out without a run of the same seed in every strategy: a-full-1, a-bitfit-1, a-linear-1, a-ia3-1" \
        in largest.method
