"""The metrics record: its fields, what each combination means, and its name (``split/attack/metric@eps``).

This module is the one description of a record; ``metrics_file`` validates against :data:`METRIC_FIELDS`,
detection, analysis, the report and the trainer read records through the masks and :func:`record_key` here.

A run's ``metrics.jsonl`` holds one record per line in long form (the fields below, in this order). Accuracy
is one metric whose ``attack`` and ``eps`` say under what it was measured:

- clean accuracy: ``metric="accuracy"``, ``attack="clean"`` (or null), ``eps=0`` (or null);
- robust accuracy during training: ``metric="accuracy"``, ``attack=<name>``, ``eps>0``
  (``metric="robust_accuracy"`` is accepted too, for records written by hand or by other tools);
- the final strong evaluation: the same with ``attack="final:<name>"``;
- robust curve points: ``metric="curve_accuracy"`` (eps 0 = clean); expected robustness:
  ``metric="expected_robustness"`` with the curve's attack and its largest eps;
- gradient-masking checks: ``metric="check:<name>"``;
- OOD accuracy: clean accuracy on a split named ``ood:<name>``;
- optimisation: split ``optim`` with metrics ``loss`` and ``train_accuracy`` (attack = the objective),
  ``lr`` and ``eps`` (the training eps), ``diverged`` (the non-finite loss that stopped a run) and
  ``config_change`` (a ``--resume`` override: ``extra = {"key", "old", "new"}``, at the step it took effect).

``extra`` holds anything else: ``off_schedule: true`` on the records of an evaluation the named evaluation
schedule does not hold (the end of training under ``paper-a``, see ``evaluation_points.EvaluationSchedule``), and the
original of a non-finite value written as null (``{"value": "nan"}``).

Every mask function takes a DataFrame of records and returns a boolean mask aligned with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from robustft.config.units import format_eps

# field -> (accepted Python types, required). Order is the column order of every line and DataFrame.
METRIC_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "step": ((int,), True),  # optimiser updates before the measurement (0: the pretrained model)
    "epoch": ((int, float), True),  # step / steps_per_epoch (fractional mid-epoch)
    "split": ((str,), True),  # train | val | test | ood:<name> | optim
    "metric": ((str,), True),  # accuracy | curve_accuracy | expected_robustness | check:* | loss | lr | eps | ...
    "attack": ((str, type(None)), False),  # clean | <attack> | final:<attack> | null (no attack)
    "eps": ((int, float, type(None)), False),  # the attack's L-inf radius in [0, 1] pixel units
    "value": ((int, float, type(None)), True),  # null for a non-finite value (original in extra)
    "n": ((int, type(None)), False),  # samples behind an accuracy
    "ci_low": ((int, float, type(None)), False),  # 95% Wilson interval of an accuracy
    "ci_high": ((int, float, type(None)), False),
    "time": ((int, float, type(None)), False),  # seconds since the run started
    "extra": ((dict, type(None)), False),
}


def sql_type(field: str) -> str:
    """The DuckDB column type of a METRIC_FIELDS field (BIGINT, DOUBLE, VARCHAR or JSON)."""
    accepted = set(METRIC_FIELDS[field][0]) - {type(None)}
    if accepted == {int}:
        return "BIGINT"
    if accepted <= {int, float}:
        return "DOUBLE"
    return "JSON" if accepted == {dict} else "VARCHAR"


def record_key(item: Mapping[str, Any]) -> str:
    """A record's name, ``split/attack/metric`` plus ``@eps`` for an attacked one, used everywhere a record is
    named (summary.json's ``final`` and ``detection.final``, ``checkpoint.best_metric``, TensorBoard, MLflow).

    A record without an attack is named ``clean`` on a data split (it was measured on clean inputs) and
    ``none`` on the ``optim`` split (it measures no inputs): ``val/clean/accuracy``, ``optim/none/lr``,
    ``test/pgd/accuracy@1/255``, ``test/final:apgd-ce/accuracy@4/255`` (eps by ``units.format_eps``).
    """
    attack = item.get("attack")
    split = item["split"]
    named = isinstance(attack, str)
    key = f"{split}/{attack if named else ('none' if split == 'optim' else 'clean')}/{item['metric']}"
    eps = item.get("eps")
    if named and attack != "clean" and split != "optim" and _positive(eps):
        key += f"@{format_eps(float(eps))}"
    return key


def _positive(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


TRAIN_EPS_METRICS = ("eps", "eps_train")
FINAL_PREFIX = "final:"


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def _eps(df: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(_column(df, "eps"), errors="coerce")


def is_final(df: pd.DataFrame) -> pd.Series:
    """Records of the final strong evaluation (attack ``final:<name>``)."""
    return _column(df, "attack").astype(str).str.startswith(FINAL_PREFIX)


def is_clean(df: pd.DataFrame) -> pd.Series:
    """Clean accuracy records (any split, OOD included)."""
    attack, eps = _column(df, "attack"), _eps(df)
    return (df["metric"] == "accuracy") & (attack.isna() | (attack == "clean")) & (eps.isna() | (eps == 0))


def is_robust(df: pd.DataFrame, include_final: bool = False) -> pd.Series:
    """Robust accuracy records: a named attack at eps > 0 (the final evaluation's only if ``include_final``)."""
    attack, eps = _column(df, "attack"), _eps(df)
    named = attack.notna() & (attack != "clean")
    robust = ((df["metric"] == "accuracy") & named & (eps > 0)) | (df["metric"] == "robust_accuracy")
    return robust if include_final else robust & ~is_final(df)


def is_ood(df: pd.DataFrame) -> pd.Series:
    """Records on an OOD split (``ood:<name>``)."""
    return df["split"].astype(str).str.startswith("ood:")


def is_train_eps(df: pd.DataFrame) -> pd.Series:
    """The training-eps records of the optimisation split."""
    return (df["split"] == "optim") & df["metric"].isin(TRAIN_EPS_METRICS)
