"""Paired t-tests between eps schedules (paper B): runs of two schedules matched on everything else.

Paper B compares schedules on the same (dataset, backbone, eps, seed); ``DEFAULT_MATCH`` also matches strategy
and objective, so that a sweep over strategies x schedules pairs like with like. The test is
``scipy.stats.ttest_rel`` (scipy is a core dependency: scikit-learn, already core, requires it). The inputs are
``robustft.analysis.seed_stats.run_summaries`` rows; ``seed_stats`` re-exports these names.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats as scipy_stats

from robustft.errors import ConfigError

__all__ = ["DEFAULT_MATCH", "SCHEDULE_METRICS", "PairedTest", "paired_ttest", "schedule_tests"]

# Paper B's numbers per schedule: clean / adversarial at eps_g / expected robustness (its table's columns,
# ``seed_stats.schedule_table``, and what ``schedule_tests`` compares).
SCHEDULE_METRICS = ("final_clean", "final_robust", "e_adv")
# Paper B pairs schedules over (dataset, backbone, eps, seed); strategy and objective are matched too so that a
# sweep over strategies x schedules pairs like with like.
DEFAULT_MATCH = ("dataset", "backbone", "strategy", "objective", "eps_g", "seed")


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``metric`` between schedules ``a`` and ``b`` over matched configurations.

    ``mean_difference`` is mean(b - a); ``t`` and ``p`` (two-sided) are ``scipy.stats.ttest_rel(b, a)``'s,
    NaN with fewer than 2 pairs (or when every difference is equal, where the test is undefined).
    """

    metric: str
    a: str
    b: str
    n_pairs: int
    mean_a: float
    mean_b: float
    mean_difference: float
    t: float
    p: float


def paired_ttest(summaries: pd.DataFrame, metric: str, a: str, b: str, factor: str = "schedule",
                 match: Sequence[str] = DEFAULT_MATCH) -> PairedTest:
    """Paired t-test of ``metric`` between ``factor == a`` and ``factor == b`` runs with equal ``match`` columns.

    Args:
        summaries: ``run_summaries`` output (or any table with the factor, match and metric columns).
        metric: the number compared, e.g. ``e_adv``.
        a, b: the two values of ``factor`` (a is the reference, e.g. ``constant``: paper B's RFT-fix).
        factor: the column that differs within a pair.
        match: the columns a pair agrees on (paper B: dataset, backbone, eps, seed).

    Raises:
        ConfigError: a missing column, or two runs of one schedule with equal ``match`` values (the match is
            ambiguous: add the column on which they differ to ``match``).
    """
    missing = [c for c in (factor, metric, *match) if c not in summaries.columns]
    if missing:
        raise ConfigError(f"paired_ttest: no column {missing} in the summaries; columns are {list(summaries.columns)}.")
    keys = list(match)
    sides = {}
    for name in (a, b):
        side = summaries[summaries[factor].astype(str) == str(name)]
        side = side.assign(**{k: side[k].astype(str) for k in keys})
        duplicated = side.duplicated(keys, keep=False)
        if duplicated.any():
            runs = list(side.loc[duplicated, "run"]) if "run" in side else []
            shared = dict(zip(keys, side.loc[duplicated, keys].iloc[0], strict=True))
            raise ConfigError(f"paired_ttest: several {factor}={name} runs share {shared} ({runs[:4]}); add the "
                              "column they differ in to match=.")
        sides[name] = side.set_index(keys)[metric].astype(float)
    pairs = pd.concat([sides[a].rename("a"), sides[b].rename("b")], axis=1, join="inner").dropna()
    t = p = math.nan
    if len(pairs) >= 2:
        with warnings.catch_warnings():  # equal differences: scipy warns and returns a NaN / inf t, kept as is
            warnings.simplefilter("ignore", RuntimeWarning)
            result = scipy_stats.ttest_rel(pairs["b"], pairs["a"])
        t, p = float(result.statistic), float(result.pvalue)
    return PairedTest(metric, str(a), str(b), len(pairs), float(pairs["a"].mean()) if len(pairs) else math.nan,
                      float(pairs["b"].mean()) if len(pairs) else math.nan,
                      float((pairs["b"] - pairs["a"]).mean()) if len(pairs) else math.nan, t, p)


def schedule_tests(summaries: pd.DataFrame, reference: str | None = None,
                   metrics: Sequence[str] = SCHEDULE_METRICS, match: Sequence[str] = DEFAULT_MATCH) -> pd.DataFrame:
    """Every schedule against ``reference`` (default ``constant``, paper B's RFT-fix, else the first in order) on
    each metric: one ``PairedTest`` per row. Pairs that cannot be formed unambiguously are left out.
    """
    schedules = sorted(summaries["schedule"].dropna().astype(str).unique())
    if len(schedules) < 2:
        return pd.DataFrame(columns=list(PairedTest.__dataclass_fields__))
    if reference is None:
        reference = "constant" if "constant" in schedules else schedules[0]
    rows = []
    for other in schedules:
        if other == reference:
            continue
        for metric in metrics:
            try:
                rows.append(paired_ttest(summaries, metric, reference, other, "schedule", match).__dict__)
            except ConfigError:
                continue
    return pd.DataFrame(rows, columns=list(PairedTest.__dataclass_fields__))
