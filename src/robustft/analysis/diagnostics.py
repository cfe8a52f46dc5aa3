"""Detections over a run's metrics: onset of task adaptation, robust-accuracy peak, transfer failure.

All functions take a metrics DataFrame of records (``robustft.runs.records`` describes them; what
``robustft.runs.read_metrics`` returns) and read clean and robust accuracy through ``records.is_clean`` and
``records.is_robust``. Final strong evaluations (attack ``"final:<name>"``) are not part of the training curve.

When several records share a step (an evaluation point repeated on resume, or the final evaluation) the last
one in file order wins.

Thresholds (documented choices, all overridable):

* Onset of task adaptation (paper B): the first evaluation after training starts whose validation clean accuracy
  exceeds the threshold (``onset_index``, the one definition summary.json, the seed tables, the report, the demo
  table and the findings use). Step 0 does not count: it is the pretrained model with its untrained head, whose
  accuracy measures the head's class skew, not adaptation. Paper B uses 5%, which is 5x to 13x chance on its
  100-257-class tasks; on a 10-class task 5% is below chance (10%). The default is therefore
  ``max(5%, 2 x chance)``: paper B's value when it is meaningful, "clearly better than guessing" otherwise.
  ``sustained=True`` asks for a variant: the first evaluation from which accuracy stays above the threshold.
* Transfer failure (paper B): final clean accuracy below the same ``max(5%, 2 x chance)`` threshold, i.e. the
  model never adapted to the task.
* Suboptimal transfer (paper B): final clean accuracy more than ``suboptimal_gap`` (default 0.15 = 15 points)
  below a standard fine-tuning reference run. Adversarial training at small eps costs a few clean points on
  its own; paper B's suboptimal cases lose tens of points (e.g. 7.7% vs 73.8%), so 15 points separates the two.
* Robust peak (paper A, inherit-then-degrade): the maximum of the robust-accuracy curve; the run "degraded"
  when the final robust accuracy is more than ``degrade_tolerance`` (default 0.02) below the peak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from robustft.runs import records

__all__ = [
    "DEFAULT_SUBOPTIMAL_GAP",
    "clean_curve",
    "default_threshold",
    "final_metrics",
    "onset_index",
    "onset_of_adaptation",
    "onset_threshold",
    "robust_curve",
    "robust_peak",
    "summarize",
    "transfer_diagnosis",
]

PAPER_B_ONSET = 0.05
DEFAULT_SUBOPTIMAL_GAP = 0.15
DEFAULT_DEGRADE_TOLERANCE = 0.02
_SPLIT_PREFERENCE = {"onset": ("val", "test", "train"), "final": ("test", "val", "train")}


def default_threshold(num_classes: int | None) -> float:
    """``max(5%, 2 x chance)``: paper B's onset/failure threshold, raised for tasks with few classes."""
    if not num_classes or num_classes < 1:
        return PAPER_B_ONSET
    return max(PAPER_B_ONSET, 2.0 / num_classes)


def _empty(df: pd.DataFrame | None) -> bool:
    return df is None or len(df) == 0 or "metric" not in df.columns


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def _is_clean(df: pd.DataFrame) -> pd.Series:
    return records.is_clean(df) & ~records.is_final(df)


def _is_robust(df: pd.DataFrame) -> pd.Series:
    return records.is_robust(df, include_final=False)


def _curve(rows: pd.DataFrame) -> pd.DataFrame:
    """step-sorted (step, epoch, value) with one row per step (the last written wins); NaN values dropped."""
    if len(rows) == 0:
        return pd.DataFrame(columns=["step", "epoch", "value"])
    rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"), _order=range(len(rows)))
    rows = rows.dropna(subset=["value"]).sort_values(["step", "_order"]).drop_duplicates("step", keep="last")
    return rows[["step", "epoch", "value"]].reset_index(drop=True)


def _pick_split(df: pd.DataFrame, mask: pd.Series, preference: tuple[str, ...]) -> str | None:
    present = set(df.loc[mask, "split"])
    return next((split for split in preference if split in present), None)


def clean_curve(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """Clean accuracy of ``split`` over training: columns step, epoch, value (in [0, 1]), sorted by step."""
    if _empty(df):
        return _curve(pd.DataFrame())
    return _curve(df[_is_clean(df) & (df["split"] == split)])


def robust_curve(df: pd.DataFrame, split: str, eps: float | None = None) -> pd.DataFrame:
    """Robust accuracy of ``split`` at ``eps`` (default: the smallest eps evaluated) over training."""
    if _empty(df):
        return _curve(pd.DataFrame())
    rows = df[_is_robust(df) & (df["split"] == split)]
    if len(rows) == 0:
        return _curve(rows)
    values = pd.to_numeric(rows["eps"], errors="coerce")
    target = float(values.min()) if eps is None else float(eps)
    return _curve(rows[(values - target).abs() < 1e-9])


def onset_index(steps: Sequence[int], above: Sequence[bool], sustained: bool = False) -> int | None:
    """Where task adaptation starts in a run's evaluations (paper B's onset), the one rule every onset uses.

    Args:
        steps: the evaluations' optimiser steps, ascending (0: the pretrained model with its untrained head).
        above: per evaluation, whether its accuracy (or a bound of it) exceeds the threshold.
        sustained: False (paper B): the first evaluation after step 0 that is above. True: the first evaluation after
            step 0 from which every later one is above.

    Returns:
        The index into ``steps``, or None when adaptation never starts.
    """
    if len(steps) != len(above):
        raise ValueError(f"steps and above differ in length: {len(steps)} and {len(above)}")
    trained = [i for i, step in enumerate(steps) if step > 0]
    if not sustained:
        return next((i for i in trained if above[i]), None)
    onset = None
    for i in reversed(trained):  # walking back from the end: the start of the last run of "above"
        if not above[i]:
            break
        onset = i
    return onset


def onset_threshold(config: Mapping[str, Any] | None, summary: Mapping[str, Any] | None = None,
                    num_classes: int | None = None) -> float:
    """A run's onset threshold: its config's ``detect.onset_threshold``, else ``max(5%, 2 x chance)`` for the number
    of classes its summary records (``detection.num_classes``), else for ``num_classes``."""
    configured = ((config or {}).get("detect") or {}).get("onset_threshold")
    if configured:
        return float(configured)
    recorded = ((summary or {}).get("detection") or {}).get("num_classes") or (summary or {}).get("num_classes")
    return default_threshold(int(recorded) if recorded else num_classes)


def onset_of_adaptation(
    df: pd.DataFrame, num_classes: int | None, threshold: float | None = None, sustained: bool = False
) -> dict[str, Any] | None:
    """Paper B's onset of task adaptation: the first evaluation after training starts whose validation clean
    accuracy exceeds the threshold (``onset_index``).

    Args:
        df: metrics in the long schema.
        num_classes: classes of the task (sets the default threshold ``max(5%, 2 x chance)``).
        threshold: accuracy in (0, 1) to exceed, or None for the default.
        sustained: the variant: the first evaluation from which accuracy stays above the threshold.

    Returns:
        ``{"step", "epoch", "value", "threshold", "split"}`` (the test or train split is used when no validation
        records exist), or None when accuracy never exceeds the threshold or there are no clean records.
    """
    threshold = default_threshold(num_classes) if threshold is None else float(threshold)
    if _empty(df):
        return None
    split = _pick_split(df, _is_clean(df), _SPLIT_PREFERENCE["onset"])
    if split is None:
        return None
    curve = clean_curve(df, split)
    index = onset_index([int(s) for s in curve["step"]], list(curve["value"] > threshold), sustained)
    if index is None:
        return None
    first = curve.iloc[index]
    return {
        "step": int(first["step"]),
        "epoch": _number(first["epoch"]),
        "value": float(first["value"]),
        "threshold": threshold,
        "split": split,
    }


def robust_peak(
    df: pd.DataFrame, split: str | None = None, eps: float | None = None,
    degrade_tolerance: float = DEFAULT_DEGRADE_TOLERANCE,
) -> dict[str, Any] | None:
    """The peak of robust accuracy over training (paper A: inherited, peaks early, then degrades).

    Args:
        df: metrics in the long schema.
        split: which split's curve (default test, else val, else train).
        eps: which eval eps (default the smallest one evaluated: paper A's 1/255).
        degrade_tolerance: how far below the peak the final value must be to call it degraded.

    Returns:
        ``{"step", "epoch", "value", "eps", "split", "initial", "final", "drop", "degraded"}`` or None when no
        robust accuracy was recorded. ``drop = value - final``; ties keep the earliest step.
    """
    if _empty(df):
        return None
    robust = _is_robust(df)
    split = split or _pick_split(df, robust, _SPLIT_PREFERENCE["final"])
    if split is None:
        return None
    rows = df[robust & (df["split"] == split)]
    if len(rows) == 0:
        return None
    values = pd.to_numeric(rows["eps"], errors="coerce")
    target = float(values.min()) if eps is None else float(eps)
    curve = robust_curve(df, split, target)
    if len(curve) == 0:
        return None
    peak = curve.iloc[int(curve["value"].to_numpy().argmax())]
    final = float(curve["value"].iloc[-1])
    drop = float(peak["value"]) - final
    return {
        "step": int(peak["step"]),
        "epoch": _number(peak["epoch"]),
        "value": float(peak["value"]),
        "eps": target,
        "split": split,
        "initial": float(curve["value"].iloc[0]),
        "final": final,
        "drop": drop,
        "degraded": bool(drop > degrade_tolerance),
    }


def _final_clean(df: pd.DataFrame | None) -> tuple[float | None, str | None]:
    if _empty(df):
        return None, None
    split = _pick_split(df, _is_clean(df), _SPLIT_PREFERENCE["final"])
    if split is None:
        return None, None
    curve = clean_curve(df, split)
    return (float(curve["value"].iloc[-1]), split) if len(curve) else (None, None)


def transfer_diagnosis(
    df: pd.DataFrame,
    reference_df: pd.DataFrame | None = None,
    num_classes: int | None = None,
    failure_threshold: float | None = None,
    suboptimal_gap: float = DEFAULT_SUBOPTIMAL_GAP,
) -> dict[str, Any]:
    """Paper B's transfer failure and suboptimal transfer, from the final clean accuracy.

    Args:
        df: the run's metrics.
        reference_df: a standard fine-tuning run of the same model and task (None: suboptimal is not judged).
        num_classes: classes of the task (sets the default failure threshold ``max(5%, 2 x chance)``).
        failure_threshold: final clean accuracy below which transfer failed.
        suboptimal_gap: clean-accuracy points (fraction) below the reference that count as suboptimal.

    Returns:
        ``{"final_clean", "split", "transfer_failure", "failure_threshold", "reference_clean", "clean_gap",
        "suboptimal_transfer", "suboptimal_gap"}``; ``clean_gap = reference_clean - final_clean`` (positive when
        the run is worse), None without a reference; booleans are False when they cannot be judged.
    """
    threshold = default_threshold(num_classes) if failure_threshold is None else float(failure_threshold)
    final_clean, split = _final_clean(df)
    reference_clean, _ = _final_clean(reference_df)
    gap = reference_clean - final_clean if reference_clean is not None and final_clean is not None else None
    return {
        "final_clean": final_clean,
        "split": split,
        "transfer_failure": bool(final_clean is not None and final_clean < threshold),
        "failure_threshold": threshold,
        "reference_clean": reference_clean,
        "clean_gap": gap,
        "suboptimal_transfer": bool(gap is not None and gap > suboptimal_gap),
        "suboptimal_gap": float(suboptimal_gap),
    }


def final_metrics(df: pd.DataFrame) -> dict[str, Any]:
    """The last value of every metric series (named by ``records.record_key``), with the step it was recorded at."""
    if _empty(df):
        return {}
    out: dict[str, Any] = {}
    frame = df.assign(_order=range(len(df))).sort_values(["step", "_order"])
    for _, row in frame.iterrows():
        value = row.get("value")
        out[records.record_key(row)] = {"value": float(value) if _finite(value) else None, "step": int(row["step"])}
    return out


def summarize(
    df: pd.DataFrame,
    num_classes: int | None,
    reference_df: pd.DataFrame | None = None,
    onset_threshold: float | None = None,
    failure_threshold: float | None = None,
    suboptimal_gap: float = DEFAULT_SUBOPTIMAL_GAP,
) -> dict[str, Any]:
    """Everything summary.json records about a run's metrics (JSON-serialisable, no NaN).

    Returns:
        ``{"num_classes", "chance", "steps", "onset", "robust_peak", "transfer", "final"}``: see the functions
        above; ``steps`` is the last evaluated step.
    """
    steps = int(pd.to_numeric(df["step"]).max()) if not _empty(df) else None
    return {
        "num_classes": num_classes,
        "chance": 1.0 / num_classes if num_classes else None,
        "steps": steps,
        "onset": onset_of_adaptation(df, num_classes, onset_threshold),
        "robust_peak": robust_peak(df),
        "transfer": transfer_diagnosis(df, reference_df, num_classes, failure_threshold, suboptimal_gap),
        "final": final_metrics(df),
    }


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> int | float | None:
    if not _finite(value):
        return None
    number = float(value)
    return int(number) if number.is_integer() else number
