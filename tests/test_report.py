import math

import pandas as pd
import pytest

from robustft.report import RunRecord, build_report


def synthetic_run(name: str, strategy: str, peak: float) -> RunRecord:
    rows = []
    steps = [0, 50, 100, 130, 160, 300]
    for i, step in enumerate(steps):
        clean = 0.1 + 0.8 * i / (len(steps) - 1)
        robust = peak * math.sin(math.pi * i / (len(steps) - 1)) + 0.02
        for split, value, attack, eps, metric in [
            ("test", clean, None, 0.0, "accuracy"),
            ("train", clean + 0.05, None, 0.0, "accuracy"),
            ("test", robust, "pgd", 1 / 255, "robust_accuracy"),
            ("ood:digits", clean * 0.6, None, 0.0, "accuracy"),
            ("optim", 0.5 / (1 + i), None, 0.0, "loss"),
            ("optim", 4 / 255 * i / 5, None, 0.0, "eps_train"),
        ]:
            rows.append({"step": step, "epoch": 0, "split": split, "metric": metric, "attack": attack, "eps": eps,
                         "value": value, "n": 512, "ci_low": max(0.0, value - 0.04), "ci_high": min(1.0, value + 0.04)})
    for k in range(5):  # a final robust curve and expected robustness
        rows.append({"step": 300, "epoch": 0, "split": "test", "metric": "robust_accuracy", "attack": "apgd-ce",
                     "eps": k / 255, "value": 0.9 - 0.2 * k, "n": 512, "ci_low": None, "ci_high": None})
    rows.append({"step": 300, "epoch": 0, "split": "test", "metric": "expected_robustness", "attack": "apgd-ce",
                 "eps": 4 / 255, "value": 0.5, "n": 512, "ci_low": None, "ci_high": None})
    rows.append({"step": 300, "epoch": 0, "split": "test", "metric": "check:zero_gradients", "attack": "pgd",
                 "eps": 1 / 255, "value": 1.0, "n": 512, "ci_low": None, "ci_high": None,
                 "extra": {"message": "input gradients are zero for 40% of samples"}})
    config = {"model": {"name": "mobilenet_v2"}, "data": {"name": "fashion-mnist"},
              "strategy": {"name": strategy}, "objective": {"name": "adversarial"},
              "eps": {"schedule": "scheduled", "value": "4/255"}}
    return RunRecord(name, config, {"strategy": {"share": 0.0123}}, pd.DataFrame(rows))


def test_report_writes_page_and_figures(tmp_path):
    runs = [synthetic_run("bitfit-run", "bitfit", 0.4), synthetic_run("<script>alert(1)</script>", "full", 0.2)]
    page = build_report(runs, tmp_path / "report", group_by="strategy")
    text = page.read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for name in ["tradeoff", "robust_curve", "ood", "trajectory_0", "trajectory_1"]:
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / "report" / f"{name}.pdf").exists()
    assert text.count("data:image/png;base64,") == 5
    assert "90.0" in text  # final clean test accuracy in percent
    assert "1.23%" in text  # trainable share from the summary
    assert "input gradients are zero" in text  # fired check surfaces with its explanation
    assert "Pareto area" in text and "+" in text  # frontier table with % vs average


def test_report_needs_runs(tmp_path):
    with pytest.raises(ValueError):
        build_report([], tmp_path)
