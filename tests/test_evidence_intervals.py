"""robustft.analysis.evidence against scipy and at its boundaries: the intervals the findings' verdicts rest on.

Written from the survivors of `make mutation` on evidence.py (the findings' tests reach it only through verdicts)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.statistics import wilson_interval


def test_accuracy_is_the_wilson_interval_of_its_count_at_the_asked_confidence() -> None:
    none_right = evidence.accuracy(0.0, 100)
    assert (none_right.low, none_right.high) == (0.0, wilson_interval(0, 100)[1])  # k = 0, not at least 1
    wide = evidence.accuracy(0.5, 100, confidence=0.99)
    assert (wide.low, wide.high) == wilson_interval(50, 100, 0.99)
    assert evidence.accuracy(0.5, 100).basis == "Wilson, n=100"
    assert Estimate(0.5, 0.4, 0.6, "3 seeds").as_dict() == {"value": 0.5, "low": 0.4, "high": 0.6, "basis": "3 seeds"}


def test_from_seeds_is_the_student_t_interval_of_the_mean() -> None:
    values = [0.5, 0.6, 0.7]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=0.6, scale=stats.sem(values))
    e = evidence.from_seeds(values)
    assert (e.value, e.basis) == (pytest.approx(0.6), "3 seeds")
    assert e.low == pytest.approx(low, rel=1e-3) and e.high == pytest.approx(high, rel=1e-3)  # a 3-decimal t table
    with pytest.raises(ValueError, match="at least two"):
        evidence.from_seeds([0.5])


def test_t_quantile_at_the_end_of_the_table_and_beyond() -> None:
    assert evidence.t_quantile(30) == pytest.approx(stats.t.ppf(0.975, 30), abs=1e-3)
    assert 1.95 < evidence.t_quantile(31) < stats.t.ppf(0.975, 30)  # past the table: no IndexError
    with pytest.raises(ValueError, match="at least 1"):
        evidence.t_quantile(0)


def test_difference_combines_each_side_from_both_estimates() -> None:
    a, b = Estimate(0.6, 0.5, 0.65, "Wilson, n=100"), Estimate(0.4, 0.3, 0.45, "Wilson, n=100")
    d = evidence.difference(a, b)
    assert d.value == pytest.approx(0.2)
    assert d.low == pytest.approx(0.2 - math.hypot(0.1, 0.05)) and d.high == pytest.approx(0.2 + math.hypot(0.05, 0.1))
    assert d.basis == "Wilson, n=100"  # one basis when both share it, both otherwise
    assert evidence.difference(a, Estimate(0.4, 0.3, 0.5, "3 seeds")).basis == "Wilson, n=100; 3 seeds"


def test_an_interval_touching_zero_does_not_resolve_the_sign() -> None:
    assert evidence.sign(Estimate(0.1, 0.0, 0.2)) == evidence.UNRESOLVED
    assert evidence.sign(Estimate(-0.1, -0.2, 0.0)) == evidence.UNRESOLVED


def test_correlation_is_fishers_interval_from_four_points() -> None:
    x, y = [0.1, 0.4, 0.2, 0.5, 0.9, 0.7], [0.3, 0.2, 0.5, 0.6, 0.8, 0.9]
    for n in (4, 6):
        expected = stats.pearsonr(x[:n], y[:n])
        e = evidence.correlation(x[:n], y[:n])
        assert e is not None and e.value == pytest.approx(expected.statistic)
        assert (e.low, e.high) == pytest.approx(tuple(expected.confidence_interval(0.95)))
    assert evidence.correlation(x[:3], y[:3]) is None
    with pytest.raises(ValueError, match="equal length"):
        evidence.correlation(x, y[:5])


def test_correlation_without_variance_is_none_and_a_perfect_one_stays_in_range() -> None:
    line = [0.1, 0.2, 0.3, 0.4]
    assert evidence.correlation(line, [0.5] * 4) is None and evidence.correlation([0.5] * 4, line) is None
    x = [0.1 * i for i in range(1, 5)]  # for these floats the raw r is 1 + 2e-16: clamped, and atanh stays finite
    for direction in (1, -1):
        e = evidence.correlation(x, [direction * 3.7 * v for v in x])
        assert e is not None and e.value == direction * 1.0 and -1.0 <= e.low <= e.high <= 1.0
