"""Wilson score interval: known values, coverage of the point estimate, bounds, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustft.analysis.statistics import wilson_interval
from robustft.errors import ConfigError


def test_known_values():
    # Wilson 95% for 5/10 is 0.2366..0.7634; for 0/10 the upper bound is 0.2775 (standard tables).
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(1 - 0.2775, abs=1e-4)


def test_wider_at_higher_confidence_and_narrower_with_more_samples():
    l95, h95 = wilson_interval(30, 100)
    l99, h99 = wilson_interval(30, 100, confidence=0.99)
    assert l99 < l95 and h99 > h95
    l_big, h_big = wilson_interval(300, 1000)
    assert h_big - l_big < h95 - l95


def test_no_samples_means_nothing_known():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(st.integers(0, 500), st.integers(0, 500))
def test_interval_contains_estimate_and_stays_in_unit_range(k, extra):
    n = k + extra
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= high <= 1.0
    if n:
        assert low <= k / n <= high


@pytest.mark.parametrize("k, n, confidence", [(-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0), (1, 5, 0.0)])
def test_bad_input_raises_config_error(k, n, confidence):
    with pytest.raises(ConfigError):
        wilson_interval(k, n, confidence)


# ----------------------------------------------------------------------------------------------------------------
# Intervals over seeds (robustft.analysis.evidence)


@pytest.mark.parametrize("m", [2, 5, 31, 41, 200])
def test_seed_intervals_use_the_student_t_quantile_for_every_number_of_seeds(m):
    from scipy import stats as scipy_stats

    from robustft.analysis import evidence

    values = [0.4 + 0.01 * (i % 7) for i in range(m)]
    e = evidence.from_seeds(values)
    sd = float(np_std(values))
    expected = scipy_stats.t.ppf(0.975, m - 1) * sd / m ** 0.5
    assert e.high - e.value == pytest.approx(expected, rel=1e-9)  # beyond 30 seeds too: t, not the normal z


def np_std(values):
    import numpy as np

    return np.std(values, ddof=1)


def test_seed_intervals_of_accuracies_stay_in_the_unit_range():
    # Two seeds far apart: the Student-t interval of their mean reaches far outside [0, 1] (a report printed
    # "60.0% [-194.1, 314.1]"); an accuracy's interval is clipped to what an accuracy can be.
    from robustft.analysis import evidence
    from robustft.analysis.findings_base import combine, interval_text

    e = combine([evidence.accuracy(0.2, 100), evidence.accuracy(1.0, 100)])
    assert e.value == pytest.approx(0.6) and (e.low, e.high) == (0.0, 1.0)
    assert interval_text(e) == "60.0% [0.0, 100.0]"
    difference = evidence.from_seeds([-0.9, 0.9], bounds=(-1.0, 1.0))
    assert (difference.low, difference.high) == (-1.0, 1.0)
    assert evidence.from_seeds([-0.9, 0.9]).low < -1.0  # unbounded unless told


def test_a_bonferroni_confidence_widens_the_seed_interval():
    from scipy import stats as scipy_stats

    from robustft.analysis import evidence

    plain, wide = evidence.from_seeds([0.1, 0.2, 0.4]), evidence.from_seeds([0.1, 0.2, 0.4], confidence=0.99)
    ratio = scipy_stats.t.ppf(0.995, 2) / scipy_stats.t.ppf(0.975, 2)
    assert (wide.high - wide.value) == pytest.approx(ratio * (plain.high - plain.value))
