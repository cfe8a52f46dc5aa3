import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustft.analysis import (
    frontier_table,
    ood_correlation,
    pareto_area,
    pareto_front,
    percent_above_average,
    tradeoff_points,
)


def test_pareto_front_keeps_only_non_dominated_points():
    clean = [0.2, 0.5, 0.9, 0.4, 0.9]
    robust = [0.6, 0.5, 0.1, 0.3, 0.05]
    front = pareto_front(clean, robust)
    assert front.tolist() == [0, 1, 2]  # (0.4, 0.3) is dominated by (0.5, 0.5); (0.9, 0.05) by (0.9, 0.1)


def test_pareto_area_is_union_of_rectangles():
    # Front (0.2, 0.6), (0.5, 0.5), (0.9, 0.1): 0.2*0.6 + 0.3*0.5 + 0.4*0.1
    assert pareto_area([0.2, 0.5, 0.9, 0.4], [0.6, 0.5, 0.1, 0.3]) == pytest.approx(0.12 + 0.15 + 0.04)
    assert pareto_area([0.7], [0.3]) == pytest.approx(0.21)
    assert pareto_area([], []) == 0.0


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30))
def test_pareto_area_matches_monte_carlo_free_grid_count(points):
    clean, robust = zip(*points, strict=True)
    area = pareto_area(clean, robust)
    # Exact check on a grid: a cell centre is dominated iff some point is >= it on both axes.
    grid = (np.arange(200) + 0.5) / 200
    cx, ry = np.meshgrid(grid, grid, indexing="ij")
    dominated = np.zeros_like(cx, dtype=bool)
    for c, r in points:
        dominated |= (cx <= c) & (ry <= r)
    assert area == pytest.approx(dominated.mean(), abs=2.5 / 200 * 2)
    # Adding a dominated point never changes the area.
    c0, r0 = points[0]
    assert pareto_area([*clean, c0 * 0.5], [*robust, r0 * 0.5]) == pytest.approx(area)


def test_percent_above_average_matches_paper_definition():
    areas = {"bitfit": 0.21, "compacter": 0.09, "lora": 0.14, "adapter": 0.12, "ia3": 0.08, "linear": 0.06,
             "full": 0.11}
    result = percent_above_average(areas)
    mean = sum(areas.values()) / 7
    assert result["bitfit"] == pytest.approx(100 * (0.21 - mean) / mean)
    assert sum(result.values()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        percent_above_average({})


def _records(run, steps, clean, robust, ood=None):
    rows = []
    for i, step in enumerate(steps):
        rows.append({"run": run, "step": step, "split": "test", "metric": "accuracy", "attack": None, "eps": 0.0,
                     "value": clean[i]})
        rows.append({"run": run, "step": step, "split": "test", "metric": "robust_accuracy", "attack": "pgd",
                     "eps": 1 / 255, "value": robust[i]})
        if ood is not None:
            rows.append({"run": run, "step": step, "split": "ood:digits", "metric": "accuracy", "attack": None,
                         "eps": 0.0, "value": ood[i]})
    return rows


def test_tradeoff_points_frontier_table_and_ood_correlation():
    rows = _records("a", [0, 10, 20], [0.1, 0.6, 0.9], [0.1, 0.4, 0.2], ood=[0.05, 0.4, 0.7])
    rows += _records("b", [0, 10, 20], [0.1, 0.5, 0.7], [0.1, 0.1, 0.05], ood=[0.1, 0.3, 0.5])
    df = pd.DataFrame(rows)
    points = tradeoff_points(df)
    assert len(points) == 6 and set(points.columns) == {"run", "step", "clean", "robust"}
    table = frontier_table(points)
    assert table.loc[0, "group"] == "a"  # a dominates b
    assert table["percent_above_average"].sum() == pytest.approx(0.0, abs=1e-9)
    corr = ood_correlation(df)
    assert corr.loc[0, "ood_split"] == "digits" and corr.loc[0, "pearson_r"] > 0.9 and corr.loc[0, "n_points"] == 6


def _seed_points(run, strategy, clean, robust):
    return pd.DataFrame({"run": run, "strategy": strategy, "step": range(len(clean)), "clean": clean,
                         "robust": robust})


def test_a_groups_area_over_seeds_is_the_mean_of_per_seed_areas_not_the_union():
    # Two seeds of one strategy whose clouds complement each other: the union of their points dominates 0.29, more
    # than either seed reaches (0.09 and 0.25); adding seeds would keep growing it.
    one = _seed_points("full-seed-0", "full", [0.1, 0.9], [0.05, 0.1])
    two = _seed_points("full-seed-1", "full", [0.1, 0.5], [0.05, 0.5])
    other = _seed_points("lora-seed-0", "lora", [0.1, 0.6], [0.05, 0.3])
    areas = [pareto_area(one["clean"], one["robust"]), pareto_area(two["clean"], two["robust"])]
    table = frontier_table(pd.concat([one, two, other]), "strategy").set_index("group")
    assert table.loc["full", "area"] == pytest.approx(np.mean(areas))
    assert table.loc["full", "area_std"] == pytest.approx(np.std(areas, ddof=1))
    assert (table.loc["full", "n_runs"], table.loc["lora", "n_runs"]) == (2, 1)
    assert np.isnan(table.loc["lora", "area_std"])
    assert table.loc["full", "area"] <= max(areas)
    # the same seed again under another run name adds its own area, once more, to the mean
    again = frontier_table(pd.concat([one, one.assign(run="full-seed-0-copy")]), "strategy")
    assert again["area"].iloc[0] == pytest.approx(areas[0])
    mean = (np.mean(areas) + 0.18) / 2
    assert table.loc["full", "percent_above_average"] == pytest.approx(100 * (np.mean(areas) - mean) / mean)
