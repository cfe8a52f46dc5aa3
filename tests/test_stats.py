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
