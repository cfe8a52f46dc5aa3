"""The paired bootstrap over images: ready statistics equal the existing functions, intervals cover, seeds nest."""

from __future__ import annotations

import numpy as np
import pytest

from robustft.analysis.paired import AlignedOutcomes, Sample, newcombe_paired_interval, paired_table
from robustft.analysis.paired_bootstrap import (
    contrast,
    correlation_statistic,
    expected_robustness_statistic,
    paired_bootstrap,
    pareto_area_statistic,
    peak_minus_end_statistic,
    percent_above_average_statistic,
    two_level_bootstrap,
)
from robustft.analysis.pareto import pareto_area
from robustft.analysis.tradeoff import percent_above_average
from robustft.attacks import expected_robustness
from robustft.errors import ConfigError


def outcomes(correct: np.ndarray, ids: np.ndarray | None = None) -> AlignedOutcomes:
    """One split: ``correct`` bool (runs, points, n)."""
    runs, points, n = correct.shape
    ids = np.arange(n) if ids is None else ids
    keys = tuple((i, "test", "accuracy", "clean", 0.0) for i in range(points))
    return AlignedOutcomes(keys, (Sample(np.arange(points), ids, correct),), {"test": 0})


def nested(n: int, thresholds: np.ndarray, flip: float, rng: np.random.Generator) -> np.ndarray:
    """bool (runs, points, n): image i right at (run, point) when its difficulty is below the threshold, a few
    verdicts flipped: correlated across runs and points, as verdicts on the same images are."""
    u = rng.random(n)
    verdicts = u[None, None, :] < thresholds[..., None]
    return verdicts ^ (rng.random(verdicts.shape) < flip)


def test_ready_statistics_are_the_existing_functions_on_the_observed_accuracies():
    rng = np.random.default_rng(0)
    acc = rng.random((1, 3, 8))  # 3 runs, points 0..3 clean, 4..7 robust at the same steps
    clean, robust = [0, 1, 2, 3], [4, 5, 6, 7]
    areas = pareto_area_statistic(clean, robust)(acc)[0]
    assert areas.tolist() == pytest.approx([pareto_area(acc[0, r, clean], acc[0, r, robust]) for r in range(3)])
    above = percent_above_average(dict(enumerate(areas)))
    percent = percent_above_average_statistic(clean, robust)(acc)[0]
    assert percent.tolist() == pytest.approx([above[k] for k in range(3)])
    eps = [0, 1 / 255, 2 / 255, 4 / 255]
    assert expected_robustness_statistic(clean, eps)(acc)[0].tolist() == pytest.approx(
        [expected_robustness(eps, acc[0, r, clean].tolist()) for r in range(3)])
    peak = peak_minus_end_statistic(robust)(acc)[0]
    assert peak.tolist() == pytest.approx([acc[0, r, robust].max() - acc[0, r, 7] for r in range(3)])
    r = correlation_statistic(clean, robust)(acc)[0]
    assert r.tolist() == pytest.approx([np.corrcoef(acc[0, k, clean], acc[0, k, robust])[0, 1] for k in range(3)])
    pooled = correlation_statistic(clean, robust, pooled=True)(acc)[0]
    assert pooled == pytest.approx(np.corrcoef(acc[0][:, clean].ravel(), acc[0][:, robust].ravel())[0, 1])
    assert contrast(peak_minus_end_statistic(robust), 2, 0)(acc)[0] == pytest.approx(peak[2] - peak[0])


def test_the_interval_of_an_accuracy_difference_agrees_with_the_paired_interval():
    # Resampling images jointly for both runs is what makes the bootstrap paired: its interval for the difference at
    # one point is close to Newcombe's paired interval, and far narrower than resampling each run on its own.
    rng = np.random.default_rng(1)
    correct = nested(400, np.array([[0.62], [0.55]]), 0.03, rng)
    result = paired_bootstrap(outcomes(correct), lambda acc: acc[:, 0, 0] - acc[:, 1, 0], n_boot=4000, seed=3)
    low, high = newcombe_paired_interval(paired_table(correct[0, 0], correct[1, 0]))
    assert result.value == pytest.approx(correct[0, 0].mean() - correct[1, 0].mean())
    assert result.low == pytest.approx(low, abs=0.012) and result.high == pytest.approx(high, abs=0.012)
    assert result.low > 0 and "400 images" in result.basis


def test_intervals_cover_the_true_value_about_95_percent_of_the_time():
    # 200 simulated studies of two runs with a 4-point robust curve each, on 150 shared images; the statistic is the
    # difference of their expected robustness; the truth is that of the populations the images are drawn from.
    thresholds = np.array([[0.8, 0.6, 0.45, 0.3], [0.75, 0.62, 0.5, 0.33]])
    flip, eps = 0.05, [0, 1 / 255, 2 / 255, 3 / 255]
    population = thresholds * (1 - flip) + (1 - thresholds) * flip
    statistic = contrast(expected_robustness_statistic([0, 1, 2, 3], eps), 1, 0)
    truth = statistic(population[None])[0]
    rng, covered = np.random.default_rng(11), 0
    for trial in range(200):
        result = paired_bootstrap(outcomes(nested(150, thresholds, flip, rng)), statistic, n_boot=400, seed=trial)
        covered += result.low <= truth <= result.high
    assert 0.92 <= covered / 200 <= 0.98  # 0.95 +- 2 standard errors of 200 trials


def test_two_level_with_one_seed_is_the_one_level_bootstrap():
    data = outcomes(nested(64, np.array([[0.7, 0.4], [0.6, 0.5]]), 0.05, np.random.default_rng(2)))
    statistic = contrast(peak_minus_end_statistic([0, 1]), 0, 1)
    one = paired_bootstrap(data, statistic, n_boot=300, seed=5)
    two = two_level_bootstrap([data], statistic, n_boot=300, seed=5)
    assert np.array_equal(one.replicates, two.replicates)
    assert (one.value, one.low, one.high) == (two.value, two.low, two.high)


def test_two_level_intervals_carry_the_spread_between_seeds():
    rng = np.random.default_rng(4)
    # Three seeds whose runs differ by +0.2, 0.0 and -0.2: the images of each seed pin its difference down, the
    # seeds do not; the interval must span most of the seeds' spread, centred on their mean.
    seeds = [outcomes(nested(2000, np.array([[0.5 + shift], [0.5]]), 0.0, rng)) for shift in (0.2, 0.0, -0.2)]
    statistic = lambda acc: acc[:, 0, 0] - acc[:, 1, 0]  # noqa: E731
    result = two_level_bootstrap(seeds, statistic, n_boot=2000, seed=0)
    assert result.value == pytest.approx(0.0, abs=0.02)
    assert result.low < -0.1 and result.high > 0.1
    # the mean of 3 seeds drawn from {+0.2, 0, -0.2}: a spread of 0.163 / sqrt(3) = 0.094 (images add ~0.01)
    assert 0.08 < result.replicates.std() < 0.11
    assert "3 seeds" in result.basis
    one = paired_bootstrap(seeds[1], statistic, n_boot=2000, seed=0)
    assert one.high - one.low < 0.25 * (result.high - result.low)


def test_the_bootstrap_is_reproducible_per_seed_and_per_run_statistics_give_per_run_intervals():
    data = outcomes(nested(100, np.array([[0.7, 0.5, 0.6, 0.4], [0.6, 0.6, 0.5, 0.5]]), 0.05,
                           np.random.default_rng(3)))
    areas = pareto_area_statistic([0, 1], [2, 3])
    first, again = paired_bootstrap(data, areas, n_boot=200, seed=1), paired_bootstrap(data, areas, n_boot=200, seed=1)
    assert np.array_equal(first.replicates, again.replicates) and first.replicates.shape == (200, 2)
    assert not np.array_equal(first.replicates, paired_bootstrap(data, areas, n_boot=200, seed=2).replicates)
    assert np.all(first.low <= first.value) and np.all(first.value <= first.high)
    assert first.estimate(1).value == pytest.approx(first.value[1])


def test_bad_statistics_and_settings_are_refused():
    data = outcomes(np.ones((2, 2, 10), bool))
    with pytest.raises(ConfigError, match="one value"):
        paired_bootstrap(data, lambda acc: acc.mean(), n_boot=10)
    with pytest.raises(ConfigError, match="n_boot"):
        paired_bootstrap(data, lambda acc: acc[:, 0, 0], n_boot=1)
    with pytest.raises(ConfigError, match="same runs and points"):
        two_level_bootstrap([data, outcomes(np.ones((3, 2, 10), bool))], lambda acc: acc[:, 0, 0])
    with pytest.raises(ConfigError, match="ascending"):
        expected_robustness_statistic([0, 1], [0.1, 0.2])
    # a replicate where every area is 0 has no average to be above: NaN there, not an error mid-bootstrap
    assert np.isnan(percent_above_average_statistic([0], [1])(np.zeros((2, 3, 2)))).all()
