"""Detections on synthetic metrics: onset of adaptation, robust peak, transfer failure and suboptimal transfer."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from robustft.analysis.diagnostics import (
    clean_curve,
    default_threshold,
    final_metrics,
    onset_of_adaptation,
    robust_curve,
    robust_peak,
    summarize,
    transfer_diagnosis,
)

EPS1, EPS4 = 1 / 255, 4 / 255


def clean(step: int, value: float, split: str = "val", style: str = "named") -> dict:
    attack = "clean" if style == "named" else None
    return {"step": step, "epoch": step // 100, "split": split, "metric": "accuracy", "attack": attack,
            "eps": 0.0 if style == "named" else None, "value": value}


def robust(step: int, value: float, eps: float = EPS1, split: str = "test", style: str = "named") -> dict:
    metric = "accuracy" if style == "named" else "robust_accuracy"
    return {"step": step, "epoch": step // 100, "split": split, "metric": metric, "attack": "pgd", "eps": eps,
            "value": value}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


@pytest.mark.parametrize("classes, expected", [(10, 0.2), (2, 1.0), (40, 0.05), (200, 0.05), (None, 0.05)])
def test_default_threshold_is_max_of_5_percent_and_twice_chance(classes: int | None, expected: float) -> None:
    assert default_threshold(classes) == pytest.approx(expected)


@pytest.mark.parametrize("style", ["named", "null"])
def test_onset_is_the_first_validation_point_above_the_threshold(style: str) -> None:
    rows = [clean(s, v, "val", style) for s, v in [(0, 0.1), (100, 0.19), (200, 0.21), (300, 0.15), (400, 0.9)]]
    rows += [clean(s, 0.99, "test", style) for s in (0, 100)]  # test split must not decide the onset
    onset = onset_of_adaptation(frame(rows), num_classes=10)
    assert onset == {"step": 200, "epoch": 2, "value": 0.21, "threshold": 0.2, "split": "val"}


def test_onset_threshold_override_and_never_reached() -> None:
    df = frame([clean(0, 0.04), clean(100, 0.06)])
    assert onset_of_adaptation(df, num_classes=200)["step"] == 100  # paper B's 5% on a 200-class task
    assert onset_of_adaptation(df, num_classes=200, threshold=0.5) is None
    assert onset_of_adaptation(df, num_classes=10) is None
    assert onset_of_adaptation(frame([]), num_classes=10) is None


def test_onset_falls_back_to_test_when_there_is_no_validation_split() -> None:
    onset = onset_of_adaptation(frame([clean(0, 0.1, "test"), clean(50, 0.5, "test")]), 10)
    assert onset is not None and onset["split"] == "test" and onset["step"] == 50


def test_duplicate_steps_keep_the_last_record() -> None:
    curve = clean_curve(frame([clean(0, 0.1), clean(100, 0.3), clean(100, 0.4)]), "val")
    assert list(curve["step"]) == [0, 100] and list(curve["value"]) == [0.1, 0.4]


@pytest.mark.parametrize("style", ["named", "null"])
def test_robust_peak_inherit_then_degrade(style: str) -> None:
    values = [(0, 0.20), (50, 0.24), (400, 0.25), (1000, 0.12), (3000, 0.05)]
    rows = [robust(s, v, EPS1, style=style) for s, v in values]
    rows += [robust(s, 0.9, EPS4, style=style) for s, _ in values]  # a larger eps must not be mixed in
    rows += [{**robust(3000, 0.99), "attack": "final:apgd-ce"}]  # nor the final strong evaluation
    peak = robust_peak(frame(rows))
    assert peak["step"] == 400 and peak["value"] == 0.25 and peak["eps"] == pytest.approx(EPS1)
    assert peak["initial"] == 0.20 and peak["final"] == 0.05
    assert peak["drop"] == pytest.approx(0.20) and peak["degraded"] is True
    assert robust_peak(frame(rows), eps=EPS4)["value"] == 0.9


def test_robust_peak_of_a_rising_curve_is_not_degraded_and_ties_keep_the_earliest() -> None:
    rising = robust_peak(frame([robust(s, 0.1 * i) for i, s in enumerate((0, 10, 20))]))
    assert rising["step"] == 20 and rising["degraded"] is False
    flat = robust_peak(frame([robust(s, 0.3) for s in (0, 10, 20)]))
    assert flat["step"] == 0 and flat["drop"] == 0.0
    assert robust_peak(frame([clean(0, 0.5)])) is None


def test_robust_curve_defaults_to_the_smallest_eps() -> None:
    df = frame([robust(0, 0.5, EPS4), robust(0, 0.7, EPS1), robust(10, 0.6, EPS1)])
    assert list(robust_curve(df, "test")["value"]) == [0.7, 0.6]


def test_transfer_failure_and_suboptimal_transfer_against_a_reference() -> None:
    reference = frame([clean(0, 0.1, "test"), clean(500, 0.80, "test")])
    failed = frame([clean(0, 0.1, "test"), clean(500, 0.12, "test")])
    diagnosis = transfer_diagnosis(failed, reference, num_classes=10)
    assert diagnosis["transfer_failure"] is True and diagnosis["failure_threshold"] == 0.2
    assert diagnosis["suboptimal_transfer"] is True and diagnosis["clean_gap"] == pytest.approx(0.68)
    fine = transfer_diagnosis(frame([clean(500, 0.70, "test")]), reference, num_classes=10)
    assert fine["transfer_failure"] is False and fine["suboptimal_transfer"] is False
    assert fine["clean_gap"] == pytest.approx(0.10)
    assert transfer_diagnosis(frame([clean(500, 0.70, "test")]), reference, 10, suboptimal_gap=0.05)[
        "suboptimal_transfer"
    ]


def test_transfer_without_reference_judges_only_failure() -> None:
    diagnosis = transfer_diagnosis(frame([clean(0, 0.03, "test")]), None, num_classes=200)
    assert diagnosis["transfer_failure"] is True and diagnosis["failure_threshold"] == 0.05
    assert diagnosis["clean_gap"] is None and diagnosis["suboptimal_transfer"] is False
    empty = transfer_diagnosis(frame([]))
    assert empty["final_clean"] is None and empty["transfer_failure"] is False


def test_final_metrics_keys_and_values() -> None:
    rows = [clean(0, 0.1), clean(100, 0.5), robust(100, 0.2),
            {"step": 100, "epoch": 1, "split": "optim", "metric": "loss", "attack": None, "eps": None,
             "value": None}]
    final = final_metrics(frame(rows))
    assert final["val/clean/accuracy"] == {"value": 0.5, "step": 100}
    assert final["test/pgd/accuracy@1/255"] == {"value": 0.2, "step": 100}
    assert final["optim/none/loss"] == {"value": None, "step": 100}


def test_summarize_is_json_serialisable_without_nan() -> None:
    rows = [clean(s, v) for s, v in [(0, 0.1), (100, 0.6)]] + [clean(s, v, "test") for s, v in [(0, 0.1), (100, 0.6)]]
    rows += [robust(0, 0.3), robust(100, 0.1)]
    rows += [{"step": 50, "epoch": 0, "split": "optim", "metric": "loss", "attack": None, "eps": None,
              "value": float("nan")}]
    summary = summarize(frame(rows), num_classes=10, reference_df=frame([clean(100, 0.9, "test")]))
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text)["onset"]["step"] == 100
    assert summary["robust_peak"]["step"] == 0 and summary["robust_peak"]["degraded"] is True
    assert summary["transfer"]["suboptimal_transfer"] is True
    assert summary["steps"] == 100 and summary["chance"] == 0.1
    empty = summarize(frame([]), num_classes=10)
    assert empty["onset"] is None and empty["robust_peak"] is None and empty["steps"] is None


def test_summary_final_and_detection_final_name_every_record_alike(tmp_path) -> None:
    # One key function (robustft.runs.records.record_key): a record written without an attack ("null" style) is
    # val/clean/accuracy in summary["final"] and in summary["detection"]["final"] (they used to differ).
    from types import SimpleNamespace

    from robustft.config import load_config
    from robustft.runs.records import record_key
    from robustft.training.components import summarize_run

    rows = [clean(100, 0.5, style="null"), clean(100, 0.4, "test"), robust(100, 0.2),
            {"step": 100, "epoch": 1, "split": "optim", "metric": "lr", "attack": None, "eps": None, "value": 0.1}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_run(SimpleNamespace(path=tmp_path), load_config(None), None, 10, wall_seconds=1.0,
                            eval_seconds=0.0, total_steps=100)
    assert set(summary["final"]) == set(summary["detection"]["final"]) == {
        "val/clean/accuracy", "test/clean/accuracy", "test/pgd/accuracy@1/255", "optim/none/lr"}
    assert summary["final"]["val/clean/accuracy"] == 0.5
    assert record_key({"split": "test", "metric": "accuracy", "attack": "final:apgd-ce", "eps": 4 / 255}) == \
        "test/final:apgd-ce/accuracy@4/255"
    assert record_key({"split": "optim", "metric": "eps", "attack": "pgd", "eps": 4 / 255}) == "optim/pgd/eps"
