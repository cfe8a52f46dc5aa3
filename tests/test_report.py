import math

import pandas as pd
import pytest

from robustft.report import RunRecord, build_report


def synthetic_run(name: str, strategy: str, peak: float) -> RunRecord:
    """Records in the trainer's schema (see robustft.records): clean accuracy is attack 'clean' at eps 0."""
    rows = []
    steps = [0, 50, 100, 130, 160, 300]

    def add(step, split, metric, attack, eps, value, extra=None):
        rows.append({"step": step, "epoch": 0, "split": split, "metric": metric, "attack": attack, "eps": eps,
                     "value": value, "n": 512, "ci_low": max(0.0, value - 0.04) if metric == "accuracy" else None,
                     "ci_high": min(1.0, value + 0.04) if metric == "accuracy" else None, "extra": extra})

    for i, step in enumerate(steps):
        clean = 0.1 + 0.8 * i / (len(steps) - 1)
        add(step, "test", "accuracy", "clean", 0.0, clean)
        add(step, "train", "accuracy", "clean", 0.0, clean + 0.05)
        add(step, "test", "accuracy", "pgd", 1 / 255, peak * math.sin(math.pi * i / (len(steps) - 1)) + 0.02)
        add(step, "ood:digits", "accuracy", "clean", 0.0, clean * 0.6)
        add(step, "optim", "loss", "adversarial", None, 0.5 / (1 + i))
        add(step, "optim", "eps", None, None, 4 / 255 * i / 5)
    for k in range(5):  # the robust curve at the last step, then the final strong evaluation
        add(300, "test", "curve_accuracy", "clean" if k == 0 else "pgd", k / 255, 0.9 - 0.2 * k)
        if k:
            add(300, "test", "accuracy", "final:apgd-ce", k / 255, 0.85 - 0.2 * k)
    add(300, "test", "expected_robustness", "pgd", 4 / 255, 0.5)
    add(300, "test", "check:zero_gradients", "pgd", 1 / 255, 1.0,
        extra={"message": "input gradients are zero for 40% of samples"})
    config = {"model": {"name": "mobilenet_v2"}, "data": {"name": "fashion-mnist"},
              "strategy": {"name": strategy}, "objective": {"name": "adversarial"},
              "eps": {"schedule": "scheduled", "value": "4/255"}}
    return RunRecord(name, config, {"strategy": {"trainable_share": 0.0123}}, pd.DataFrame(rows))


def test_report_writes_page_and_figures(tmp_path):
    runs = [synthetic_run("bitfit-run", "bitfit", 0.4), synthetic_run("<script>alert(1)</script>", "full", 0.2)]
    page = build_report(runs, tmp_path / "report", group_by="strategy")
    text = page.read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for name in ["tradeoff", "robust_curve", "ood", "trajectory_0", "trajectory_1"]:
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / "report" / f"{name}.pdf").exists()
    assert text.count("data:image/png;base64,") == 6  # + the eps-schedule figure of the adversarial runs
    assert "90.0" in text  # final clean test accuracy in percent
    assert "1.23%" in text  # trainable share from the summary
    assert "input gradients are zero" in text  # fired check surfaces with its explanation
    assert "Pareto area" in text and "+" in text  # frontier table with % vs average
    assert "final:apgd-ce@4/255: 5.0" in text  # the final strong evaluation in the overview


def test_report_needs_runs(tmp_path):
    with pytest.raises(ValueError):
        build_report([], tmp_path)


def test_final_curve_uses_one_attack_and_clean_at_zero():
    from robustft.report.html import _final_curves

    run = synthetic_run("r", "full", 0.3)
    curves = _final_curves(run.metrics.assign(run="r"))
    assert curves["run"].unique().tolist() == ["r (pgd)"]  # the curve records, not the final attack's
    assert curves.sort_values("eps")["value"].round(6).tolist() == [0.9, 0.7, 0.5, 0.3, 0.1]
    assert curves["e_adv"].iloc[0] == 0.5
