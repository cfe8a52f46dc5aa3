"""Paired statistics on the same images: McNemar, Newcombe's paired interval, power, alignment of runs' outcomes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustft.analysis import evidence
from robustft.analysis.paired import (
    PairedTable,
    align_outcomes,
    images_to_resolve,
    images_to_resolve_paired,
    mcnemar_exact,
    newcombe_paired_interval,
    paired_difference,
    paired_table,
)
from robustft.errors import ConfigError

statsmodels = pytest.importorskip("statsmodels")
from statsmodels.stats.contingency_tables import mcnemar  # noqa: E402
from statsmodels.stats.proportion import confint_proportions_2indep  # noqa: E402


def comonotone(n: int, accuracies: tuple[float, ...], flip: float = 0.0, seed: int = 0) -> np.ndarray:
    """bool (len(accuracies), n): image i is right for a run when its difficulty u_i is below the run's accuracy, so
    the runs' verdicts are strongly positively correlated (a few flipped at random with ``flip``)."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    verdicts = u[None, :] < np.asarray(accuracies)[:, None]
    return verdicts ^ (rng.random(verdicts.shape) < flip)


@pytest.mark.parametrize("table", [(59, 6, 16, 80), (10, 0, 0, 5), (3, 4, 4, 9), (0, 1, 0, 0), (50, 13, 2, 7),
                                   (0, 30, 31, 0), (100, 0, 9, 3)])
def test_mcnemar_exact_is_statsmodels(table):
    both, only_a, only_b, neither = table
    ours = mcnemar_exact(PairedTable(*table))
    theirs = mcnemar([[both, only_a], [only_b, neither]], exact=True)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-12, abs=1e-15)
    assert ours.statistic == float(theirs.statistic)


def test_paired_interval_of_a_published_table():
    # Cavo et al. (2012) in Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), ch. 8:
    # the Newcombe square-and-add interval is -0.0621 (-0.1186 to -0.0046).
    table = PairedTable(59, 6, 16, 80)
    low, high = newcombe_paired_interval(table)
    assert (round(table.difference, 4), round(low, 4), round(high, 4)) == (-0.0621, -0.1186, -0.0046)


@pytest.mark.parametrize("table", [(10, 10, 5, 5), (20, 3, 6, 1), (4, 2, 2, 1), (0, 7, 0, 3), (3, 5, 2, 4)])
def test_without_correlation_it_is_statsmodels_independent_newcombe_interval(table):
    # 0 <= ad - bc <= n/2, which the continuity correction takes to phi = 0, or an empty margin (0, 7, 0, 3): with
    # phi = 0 the paired interval is the independent-samples one.
    both, only_a, only_b, neither = table
    n = sum(table)
    assert 0 <= both * neither - only_a * only_b <= n / 2
    low, high = confint_proportions_2indep(both + only_a, n, both + only_b, n, method="newcomb")
    assert newcombe_paired_interval(PairedTable(*table)) == pytest.approx((low, high), abs=1e-12)


def test_paired_interval_is_narrower_than_the_independent_one_on_correlated_verdicts():
    verdicts = comonotone(256, (0.62, 0.55), flip=0.03)
    result = paired_difference(verdicts[0], verdicts[1])
    n = verdicts.shape[1]
    a, b = (evidence.accuracy(float(v.mean()), n) for v in verdicts)
    independent = evidence.difference(a, b)
    assert result.value == pytest.approx(independent.value)
    assert result.high - result.low < 0.6 * (independent.high - independent.low)
    assert result.low > 0 > independent.low  # resolved paired, inconclusive as independent
    assert result.p_value < 0.05 and result.table.n == 256 and "n=256" in result.estimate().basis


def test_images_to_resolve_gives_the_asked_power_in_simulation():
    only_a, only_b = 0.12, 0.05
    n = int(images_to_resolve_paired(only_a, only_b, power=0.8))
    assert n == 270  # Connor (1987): (1.95996 sqrt(.17) + 0.84162 sqrt(.17 - .07^2))^2 / .07^2 = 269.9, by hand
    rng = np.random.default_rng(0)
    counts = rng.multinomial(n, [only_a, only_b, 1 - only_a - only_b], size=400)
    rejected = np.mean([mcnemar_exact(PairedTable(0, int(a), int(b), int(n - a - b))).p_value < 0.05
                        for a, b, _ in counts])
    assert 0.72 <= rejected <= 0.88
    assert images_to_resolve_paired(0.1, 0.1) == math.inf
    assert images_to_resolve_paired(0.12, 0.05, power=0.9) > n


def test_images_to_resolve_an_interval_scales_its_half_width():
    touching = evidence.Estimate(0.05, 0.0, 0.11)  # the near edge at 0: resolved at this n, with power 0.5
    assert images_to_resolve(touching, 200, power=0.5) == 200
    assert images_to_resolve(evidence.Estimate(0.05, -0.05, 0.15), 200, power=0.5) == 800  # twice as wide: 4n
    assert images_to_resolve(evidence.Estimate(-0.05, -0.2, 0.05), 200, power=0.5) == 800  # the side of 0 counts
    assert images_to_resolve(touching, 200, power=0.8) > 200
    assert images_to_resolve(evidence.Estimate(0.0, -0.1, 0.1), 200) == math.inf


def _table(points: list[tuple], ids: np.ndarray, verdicts: np.ndarray) -> pd.DataFrame:
    rows = [(*p, len(ids), ids, v) for p, v in zip(points, verdicts, strict=True)]
    return pd.DataFrame(rows, columns=["step", "split", "metric", "attack", "eps", "n", "image_ids", "correct"])


def test_align_outcomes_pairs_verdicts_by_image_id_on_the_shared_images():
    points = [(0, "test", "accuracy", "clean", 0.0), (0, "test", "accuracy", "pgd", 1 / 255),
              (0, "ood:x", "accuracy", "clean", 0.0)]
    a = _table(points, np.array([5, 1, 9, 3]), np.array([[1, 0, 1, 1], [1, 0, 0, 1], [0, 1, 1, 0]], bool))
    b = _table(points, np.array([3, 9, 1, 7]), np.array([[0, 1, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0]], bool))
    aligned = align_outcomes([a, b], points)
    test, ood = aligned.samples
    assert test.image_ids.tolist() == [1, 3, 9] and test.columns.tolist() == [0, 1] and ood.columns.tolist() == [2]
    assert test.correct[0].tolist() == [[0, 1, 1], [0, 1, 0]]  # run a at ids 1, 3, 9
    assert test.correct[1].tolist() == [[1, 0, 1], [0, 0, 1]]  # run b at ids 1, 3, 9
    assert aligned.unshared == {"test": 2, "ood:x": 2}
    assert aligned.correct_at(points[2]).tolist() == [[1, 0, 1], [0, 1, 1]]
    assert align_outcomes([a, b], [(0, "test", "accuracy", "pgd", 1 / 255 + 1e-18)]).samples[0].image_ids.size == 3
    assert aligned.accuracy()[:, 0].tolist() == pytest.approx([2 / 3, 2 / 3])
    with pytest.raises(ConfigError, match="no per-image outcomes at .*'fgsm'"):
        align_outcomes([a, b], [(0, "test", "accuracy", "fgsm", 1 / 255)])
    c = _table(points, np.array([100, 101, 102, 103]), np.ones((3, 4), bool))
    with pytest.raises(ConfigError, match="share no evaluated image on test"):
        align_outcomes([a, c], points)


def test_misaligned_verdicts_are_refused():
    with pytest.raises(ConfigError, match="same images"):
        paired_table(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ConfigError, match="at least one image"):
        newcombe_paired_interval(PairedTable(0, 0, 0, 0))
