"""Trade-off analysis across runs: Pareto frontiers, their areas, and paper A's comparisons.

Paper A treats every evaluation of a (strategy, dataset) run as a point (clean accuracy, robust accuracy); the
Pareto frontier of that cloud (maximising both) and the area under it summarise how well a strategy trades
accuracy for robustness. The area is the hypervolume dominated by the frontier with the origin as reference
(inferred: paper A does not state the reference): the union of the rectangles [0, clean] x [0, robust]. Strategies are
compared by "% above the average area" over the strategies compared; ``compare_runs`` does that per dataset and
per tracked attack / eps, as paper A does per dataset (points under different threat models are not comparable).

Written here: it is a few lines of numpy, and no maintained library computes a 2-D hypervolume with these
conventions without heavy dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustft.analysis.pareto import pareto_area
from robustft.config.units import format_eps
from robustft.runs import records


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
        metrics: long-form records (``robustft.runs.records`` says what each means) with a ``run`` column.
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
    """Pareto area per group, as the mean of its runs' (seeds') own areas, and its % above the groups' average.

    A group of several runs (seeds of one strategy) is summarised by the mean and the spread of the per-run areas:
    the frontier of the union of their points would grow with every seed added (the union is the attainment picture
    of ``analysis.attainment_band``, "reached by at least one seed", not a strategy's area).

    Args:
        points: output of ``tradeoff_points`` (optionally with a grouping column such as strategy); without a ``run``
            column each group is one cloud.
        group_by: the column whose groups are compared (paper A: the strategy).

    Returns:
        DataFrame with columns group, area (mean over the group's runs, in [0, 1]), area_std (sample standard
        deviation, NaN for one run), n_runs, percent_above_average (of the mean areas), n_points, best_clean,
        best_robust; sorted by area, largest first.
    """
    rows = []
    for group, part in points.groupby(group_by):
        runs = part.groupby("run") if "run" in part.columns and group_by != "run" else [(group, part)]
        areas = np.array([pareto_area(cloud["clean"], cloud["robust"]) for _, cloud in runs], dtype=float)
        rows.append({"group": group, "area": float(areas.mean()),
                     "area_std": float(areas.std(ddof=1)) if len(areas) > 1 else np.nan, "n_runs": len(areas),
                     "n_points": len(part), "best_clean": float(part["clean"].max()),
                     "best_robust": float(part["robust"].max())})
    columns = ["group", "area", "area_std", "n_runs", "n_points", "best_clean", "best_robust"]
    table = pd.DataFrame(rows, columns=columns)
    if not table.empty and table["area"].sum() > 0:
        above = percent_above_average(dict(zip(table["group"], table["area"], strict=True)))
        table["percent_above_average"] = table["group"].map(above)
    else:
        table["percent_above_average"] = np.nan
    return table.sort_values("area", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------ which runs are compared with which

@dataclass(frozen=True)
class ThreatModel:
    """The robust accuracy a trade-off table compares: one attack (with its settings) at one eps.

    ``settings`` is the tracked attack's configuration (``eval.attack`` of the run's config, without its name) as
    text, or "" when the run's config does not say; records name the attack but not its steps or step size, and
    PGD-10 and PGD-15 points on one frontier would compare two attacks.
    """

    attack: str
    eps: float
    settings: str = ""

    def label(self) -> str:
        """e.g. ``pgd @ 1/255 (steps 15, step_size 0.25/255, ...)``."""
        text = f"{self.attack} @ {format_eps(self.eps)}"
        return f"{text} ({self.settings})" if self.settings else text


@dataclass
class Comparison:
    """One trade-off table: runs on one dataset, tracked under one threat model, grouped into frontiers.

    Attributes:
        dataset: the runs' ``data`` label.
        threat: the attack and eps of every robust point.
        points: ``tradeoff_points`` rows (run, step, clean, robust) plus the ``group`` column.
        table: ``frontier_table(points, "group")``: each group's mean per-run area, its spread, and % above the
            average of this table's groups.
        left_out: runs on this dataset that are in another table but not in this one, each with the reason.
    """

    dataset: str
    threat: ThreatModel
    points: pd.DataFrame
    table: pd.DataFrame
    left_out: dict[str, str] = field(default_factory=dict)


def attack_settings(config: Mapping[str, Any], attack: str) -> str:
    """The tracked attack's settings from a resolved config's ``eval.attack`` when it names ``attack``, else ""."""
    spec = (config.get("eval") or {}).get("attack") if isinstance(config, Mapping) else None
    if not isinstance(spec, Mapping) or spec.get("name") != attack:
        return ""
    parts = []
    for key, value in spec.items():
        if key == "name" or value is None or value == {}:
            continue
        parts.append(key if value is True else f"{key} {value}")
    return ", ".join(parts)


def tracked_threats(metrics: pd.DataFrame, configs: Mapping[str, Mapping[str, Any]] | None = None,
                    split: str = "test") -> dict[str, list[ThreatModel]]:
    """For each run, the threat models of the robust accuracy tracked during training on ``split``.

    Args:
        metrics: long-form records with a ``run`` column.
        configs: each run's resolved config (for the attack settings); None: attack and eps only.
        split: the split whose robust records count.

    Returns:
        ``{run: [ThreatModel, ...]}`` sorted by attack then eps; a run without tracked robust records maps to [].
    """
    configs = configs or {}
    df = metrics[(metrics["split"] == split) & records.is_robust(metrics) & metrics["attack"].notna()]
    threats: dict[str, list[ThreatModel]] = {str(run): [] for run in metrics["run"].unique()}
    eps = pd.to_numeric(df["eps"], errors="coerce").round(12)
    for (run, attack, value), _ in df.assign(eps=eps).groupby(["run", "attack", "eps"]):
        threats[str(run)].append(ThreatModel(str(attack), float(value),
                                             attack_settings(configs.get(str(run), {}), str(attack))))
    return threats


def compare_runs(metrics: pd.DataFrame, labels: Mapping[str, Mapping[str, str]], group_by: str = "run",
                 configs: Mapping[str, Mapping[str, Any]] | None = None,
                 split: str = "test") -> tuple[list[Comparison], dict[str, str]]:
    """Paper A's comparison per dataset and threat model: one frontier table for each (dataset, attack, eps).

    Paper A computes each strategy's frontier and its "% above average" per dataset; pooling datasets would
    compare a CIFAR-10 frontier with a Caltech-256 one. Robust accuracies under different attacks or eps are not
    comparable either, so a run enters every table of its dataset whose threat model it was tracked under; each
    table names the runs of its dataset that are in another table, and runs in no table are returned apart, each
    with the reason.

    Args:
        metrics: long-form records with a ``run`` column.
        labels: each run's labels (``report.html.describe``): ``data`` names its dataset, ``group_by`` its group.
        group_by: the label whose values are the table's groups (``run``: each run is its own group).
        configs: each run's resolved config, so that the same attack with other settings is another table.
        split: the split whose accuracies are paired.

    Returns:
        (comparisons sorted by dataset, then attack, eps and settings; ``{run: reason}`` of the runs in no table).
    """
    threats = tracked_threats(metrics, configs, split)
    for run in labels:  # a run without records is in no table either, and the page should say so
        threats.setdefault(str(run), [])
    tracked = metrics[(metrics["split"] == split) & ~records.is_final(metrics)]
    clean_runs = set(tracked.loc[records.is_clean(tracked), "run"].astype(str))
    by_dataset: dict[str, list[str]] = {}
    # A grid over backbones (paper B's six, a full-scale study) compares strategies per backbone and dataset: one
    # backbone's frontier against another's is not a strategy comparison.
    several_models = len({str(labels.get(run, {}).get("model", "?")) for run in threats}) > 1
    for run in threats:
        label = labels.get(run, {})
        key = str(label.get("data", "?"))
        by_dataset.setdefault(f"{label.get('model', '?')} on {key}" if several_models else key, []).append(run)
    comparisons = []
    for dataset in sorted(by_dataset):
        runs = by_dataset[dataset]
        for threat in sorted({t for run in runs for t in threats[run]}, key=lambda t: (t.attack, t.eps, t.settings)):
            members = [run for run in runs if threat in threats[run]]
            points = tradeoff_points(metrics[metrics["run"].isin(members)], split, attack=threat.attack, eps=threat.eps)
            if points.empty:
                continue
            points["group"] = points["run"].map(
                lambda name: name if group_by == "run" else labels.get(name, {}).get(group_by, name))
            left_out = {run: _why_left_out(threat, threats[run], run in clean_runs, split)
                        for run in runs if run not in set(points["run"])}
            comparisons.append(Comparison(dataset, threat, points, frontier_table(points, "group"), left_out))
    placed = {run for comparison in comparisons for run in comparison.points["run"]}
    unplaced = {run: _why_left_out(None, threats[run], run in clean_runs, split)
                for run in threats if run not in placed}
    for comparison in comparisons:  # a run in no table is named once, with the unplaced, not under every table
        comparison.left_out = {run: why for run, why in comparison.left_out.items() if run not in unplaced}
    return comparisons, unplaced


def _why_left_out(threat: ThreatModel | None, tracked: list[ThreatModel], has_clean: bool, split: str) -> str:
    """Why a run is not in the table of ``threat`` (None: not in any table)."""
    if not has_clean:
        return f"no clean {split} accuracy tracked during training"
    if not tracked:
        return f"no robust {split} accuracy tracked during training"
    if threat is None or threat in tracked:
        return f"no evaluation step with both clean and robust {split} accuracy"
    same_attack_eps = [t for t in tracked if (t.attack, t.eps) == (threat.attack, threat.eps)]
    if same_attack_eps:
        return f"evaluated with other attack settings ({'; '.join(t.settings or 'unknown' for t in same_attack_eps)})"
    return f"not evaluated under {threat.attack} @ {format_eps(threat.eps)}; tracked: " \
           f"{', '.join(t.label() for t in tracked)}"
