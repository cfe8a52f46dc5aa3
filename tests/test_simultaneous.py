"""Simultaneous bands for picked contrasts, and the vectorised Pareto area the bootstrap computes them from."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from robustft.analysis.pareto import pareto_area, pareto_areas
from robustft.analysis.simultaneous import at_selected, bands, interval_of_max, interval_of_min
from robustft.errors import ConfigError


def test_bands_are_bonferroni_for_independent_contrasts_and_one_contrasts_for_identical_ones():
    rng = np.random.default_rng(0)
    independent = rng.normal(size=(20000, 5))
    bonferroni = stats.norm.ppf(1 - 0.05 / 10)  # two-sided over 5 contrasts: 2.58
    assert bands(np.zeros(5), independent) == pytest.approx(np.full(5, bonferroni), abs=0.06)
    assert bands(np.zeros(5), independent, simultaneous=False) == pytest.approx(np.full(5, 1.96), abs=0.05)
    # five copies of one contrast (evaluations on the same images that always agree): no multiplicity to pay for
    identical = np.repeat(rng.normal(size=(20000, 1)), 5, axis=1)
    assert bands(np.zeros(5), identical) == pytest.approx(np.full(5, 1.96), abs=0.05)
    # half-widths scale with each contrast's own spread
    scaled = independent * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    widths = bands(np.zeros(5), scaled)
    assert widths / widths[0] == pytest.approx([1, 2, 3, 4, 5], rel=0.03)


def test_the_largest_and_smallest_contrast_take_the_simultaneous_band_on_their_uncertain_side():
    rng = np.random.default_rng(1)
    values = np.array([0.03, 0.01, -0.02])
    replicates = values + rng.normal(scale=0.01, size=(20000, 3))
    joint, alone = bands(values, replicates), bands(values, replicates, simultaneous=False)
    top = interval_of_max(values, replicates)
    assert top.value == 0.03
    assert top.low == pytest.approx(np.max(values - joint)) and top.high == pytest.approx(np.max(values + alone))
    bottom = interval_of_min(values, replicates)
    assert bottom.value == -0.02
    assert bottom.low == pytest.approx(np.min(values - alone)) and bottom.high == pytest.approx(np.min(values + joint))
    picked = at_selected(values, replicates, 1, basis="b")
    assert (picked.low, picked.high, picked.basis) == pytest.approx((0.01 - joint[1], 0.01 + joint[1], "b"))


def test_contrasts_without_spread_or_with_missing_replicates_do_not_break_the_band():
    rng = np.random.default_rng(2)
    replicates = np.column_stack([np.zeros(500), rng.normal(size=500)])  # a step minus itself is always 0
    replicates[:10, 1] = np.nan
    for simultaneous in (True, False):
        widths = bands(np.zeros(2), replicates, simultaneous=simultaneous)
        assert widths[0] == 0 and 1.7 < widths[1] < 2.3, simultaneous
    # a constant contrast whose observed value is not its replicates' (a ratio undefined on the observed data) must
    # not blow up the family's band
    replicates[:, 0] = 0.4
    assert bands(np.array([0.5, 0.0]), replicates)[1] < 2.3
    with pytest.raises(ConfigError, match=r"values \(K,\) and replicates \(B, K\)"):
        bands(np.zeros(3), replicates)


def test_vectorised_pareto_areas_equal_the_frontier_area_point_set_by_point_set():
    rng = np.random.default_rng(3)
    clean = np.round(rng.random((400, 6)), 1)  # rounded: ties and duplicated points are common
    robust = np.round(rng.random((400, 6)), 1)
    expected = [pareto_area(c, r) for c, r in zip(clean, robust, strict=True)]
    assert pareto_areas(clean, robust).tolist() == pytest.approx(expected, abs=1e-12)
    assert pareto_areas(clean.reshape(20, 20, 6), robust.reshape(20, 20, 6)).ravel().tolist() == pytest.approx(
        expected, abs=1e-12)
    assert pareto_areas(np.zeros((2, 0)), np.zeros((2, 0))).tolist() == [0.0, 0.0]
