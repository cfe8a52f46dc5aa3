"""Trade-off analysis across runs: Pareto frontiers, their areas, and paper A's comparisons.

Paper A treats every evaluation of a (strategy, dataset) run as a point (clean accuracy, robust accuracy); the
Pareto frontier of that cloud (maximising both) and the area under it summarise how well a strategy trades
accuracy for robustness. The area is the hypervolume dominated by the frontier with the origin as reference
(inferred from the paper, see PAPERS.md): the union of the rectangles [0, clean] x [0, robust]. Strategies are
compared by "% above the average area" over the strategies compared.

Written here: it is a few lines of numpy, and no maintained library computes a 2-D hypervolume with these
conventions without heavy dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from robustft import records
from robustft.pareto import pareto_area, pareto_front  # noqa: F401  (re-exported: analysis is the public entry point)


def percent_above_average(areas: Mapping[str, float]) -> dict[str, float]:
    """Paper A's comparison: (area - mean area) / mean area, in percent, for each key.

    Raises:
        ValueError: for an empty mapping or a zero mean area (nothing to compare against).
    """
    if not areas:
        raise ValueError("no areas to compare")
    mean = float(np.mean(list(areas.values())))
    if mean == 0:
        raise ValueError("every area is zero; the comparison is undefined")
    return {key: 100.0 * (value - mean) / mean for key, value in areas.items()}


def tradeoff_points(metrics: pd.DataFrame, split: str = "test", attack: str | None = None,
                    eps: float | None = None) -> pd.DataFrame:
    """Pairs each evaluation's clean and robust accuracy on ``split`` (one row per run and step).

    Args:
        metrics: long-form records (``robustft.records`` says what each means) with a ``run`` column.
        split: which split's accuracies to pair.
        attack: robust records of this attack only (None: every attack tracked during training, the final
            strong evaluation excluded; where several apply, the lowest accuracy, i.e. the per-sample worst case
            is already inside each record and the worst attack wins across records).
        eps: robust records at this eps only (None: the smallest positive eps present).

    Returns:
        DataFrame with columns run, step, clean, robust.
    """
    df = metrics[metrics["split"] == split]
    clean = df[records.is_clean(df) & ~records.is_final(df)][["run", "step", "value"]]
    robust = df[records.is_robust(df, include_final=attack is not None)]
    if attack is not None:
        robust = robust[robust["attack"] == attack]
    if eps is None and not robust.empty:
        eps = float(pd.to_numeric(robust["eps"]).min())
    if eps is not None:
        robust = robust[np.isclose(pd.to_numeric(robust["eps"]).astype(float), eps)]
    robust = robust.groupby(["run", "step"], as_index=False)["value"].min()
    clean = clean.groupby(["run", "step"], as_index=False)["value"].last()
    merged = clean.merge(robust, on=["run", "step"], suffixes=("_clean", "_robust"))
    return merged.rename(columns={"value_clean": "clean", "value_robust": "robust"})[["run", "step", "clean", "robust"]]


def ood_pairs(metrics: pd.DataFrame, reference_split: str = "test") -> pd.DataFrame:
    """Each OOD split's clean accuracy paired with ``reference_split``'s at the same run and step.

    Returns:
        DataFrame with columns split (``ood:<name>``), run, step, value_ood, value_clean.
    """
    clean_mask = records.is_clean(metrics) & ~records.is_final(metrics)
    clean = metrics[clean_mask & (metrics["split"] == reference_split)][["run", "step", "value"]]
    ood = metrics[clean_mask & records.is_ood(metrics)][["split", "run", "step", "value"]]
    return ood.merge(clean, on=["run", "step"], suffixes=("_ood", "_clean"))


def ood_correlation(metrics: pd.DataFrame, reference_split: str = "test") -> pd.DataFrame:
    """Pearson correlation between each OOD split's accuracy and clean accuracy on ``reference_split``.

    Paper A reports that OOD accuracy tracks clean accuracy (no trade-off); this measures it over every
    evaluation point of every run.

    Returns:
        DataFrame with columns ood_split, pearson_r, n_points (NaN r when fewer than 3 points or no variance).
    """
    rows = []
    for split, paired in ood_pairs(metrics, reference_split).groupby("split"):
        r = float("nan")
        if len(paired) >= 3 and paired["value_ood"].std() > 0 and paired["value_clean"].std() > 0:
            r = float(np.corrcoef(paired["value_ood"], paired["value_clean"])[0, 1])
        rows.append({"ood_split": split.removeprefix("ood:"), "pearson_r": r, "n_points": len(paired)})
    return pd.DataFrame(rows, columns=["ood_split", "pearson_r", "n_points"])


def frontier_table(points: pd.DataFrame, group_by: str = "run") -> pd.DataFrame:
    """Pareto area per group and its % above the groups' average.

    Args:
        points: output of ``tradeoff_points`` (optionally with a grouping column such as strategy).
        group_by: the column whose groups are compared (paper A: the strategy).

    Returns:
        DataFrame with columns group, area, percent_above_average, n_points, best_clean, best_robust.
    """
    rows = []
    for group, part in points.groupby(group_by):
        rows.append({"group": group, "area": pareto_area(part["clean"], part["robust"]), "n_points": len(part),
                     "best_clean": float(part["clean"].max()), "best_robust": float(part["robust"].max())})
    table = pd.DataFrame(rows, columns=["group", "area", "n_points", "best_clean", "best_robust"])
    if not table.empty and table["area"].sum() > 0:
        above = percent_above_average(dict(zip(table["group"], table["area"], strict=True)))
        table["percent_above_average"] = table["group"].map(above)
    else:
        table["percent_above_average"] = np.nan
    return table.sort_values("area", ascending=False).reset_index(drop=True)


from robustft.findings import Finding, findings  # noqa: E402,F401  (re-exported; findings imports pareto, not analysis)
