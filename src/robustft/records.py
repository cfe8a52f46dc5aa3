"""What a metrics record means: one definition shared by detection, analysis and the report.

The trainer writes long-form records (``runs.METRIC_FIELDS``). Accuracy is one metric whose ``attack`` and
``eps`` say under what it was measured:

- clean accuracy: ``metric="accuracy"``, ``attack="clean"`` (or null), ``eps=0`` (or null);
- robust accuracy during training: ``metric="accuracy"``, ``attack=<name>``, ``eps>0``
  (``metric="robust_accuracy"`` is accepted too, for records written by hand or by other tools);
- the final strong evaluation: the same with ``attack="final:<name>"``;
- robust curve points: ``metric="curve_accuracy"`` (eps 0 = clean); expected robustness:
  ``metric="expected_robustness"`` with the curve's attack and its largest eps;
- OOD accuracy: clean accuracy on a split named ``ood:<name>``;
- optimisation: split ``optim`` with metrics ``loss``, ``train_accuracy``, ``lr`` and ``eps`` (the training eps).

Every function takes a DataFrame of records and returns a boolean mask aligned with it.
"""

from __future__ import annotations

import pandas as pd

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
