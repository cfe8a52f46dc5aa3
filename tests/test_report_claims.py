"""The report's cross-study panels (report.claims_figures): frontiers per task with their steepness, onset against
eps_g, suboptimal transfer per backbone and task; shown values equal the computed ones, absent runs leave a line."""

from __future__ import annotations

import re

import matplotlib
import pandas as pd
import pytest

from robustft.report import build_report
from robustft.report.claims_figures import NEEDS, claims_sections, steepness
from robustft.runs import Run

matplotlib.use("Agg")


def _rows(step, split, clean, robust=None, eps=1 / 255, epoch=None):
    rows = [{"step": step, "epoch": float(step if epoch is None else epoch), "split": split, "metric": "accuracy",
             "attack": "clean", "eps": 0.0, "value": clean, "n": 100.0}]
    if robust is not None:
        rows.append({**rows[0], "attack": "pgd", "eps": eps, "value": robust})
    return rows


def paper_a_run(name, task, strategy, points, model="mobilenet_v2"):
    metrics = pd.DataFrame([r for i, (c, rb) in enumerate(points) for r in _rows(10 * i, "test", c, rb)])
    config = {"name": name, "model": {"name": model}, "data": {"name": task}, "strategy": {"name": strategy},
              "objective": {"name": "standard"}, "eps": {"schedule": "zero", "value": "4/255"}}
    return Run(name=name, config=config, summary={}, metrics=metrics)


def paper_b_run(name, schedule, eps, val_clean, test_clean, objective="adversarial", task="emoji"):
    rows = [r for epoch, v in enumerate(val_clean) for r in _rows(epoch, "val", v, epoch=epoch)]
    rows += _rows(len(val_clean) - 1, "test", test_clean, epoch=len(val_clean) - 1)
    config = {"name": name, "model": {"name": "vit_small_dinov2"}, "data": {"name": task},
              "strategy": {"name": "full"}, "objective": {"name": objective},
              "eps": {"schedule": schedule, "value": eps}}
    return Run(name=name, config=config, summary={"detection": {"num_classes": 10}}, metrics=pd.DataFrame(rows))


FRONTIER_RUNS = [
    paper_a_run("easy-lora", "fashion-mnist", "lora", [(0.5, 0.4), (0.7, 0.3), (0.8, 0.1)]),  # 0.3 / 0.3 = 1.00
    paper_a_run("easy-bitfit", "fashion-mnist", "bitfit", [(0.6, 0.2), (0.9, 0.15)]),  # 0.05 / 0.3 = 0.17
    paper_a_run("hard-lora", "emoji", "lora", [(0.2, 0.1), (0.4, 0.0)]),  # 0.1 / 0.2 = 0.50
    paper_a_run("hard-bitfit", "emoji", "bitfit", [(0.3, 0.2)]),  # one point: a flat frontier, 0
]


def test_frontiers_per_task_show_each_frontiers_computed_steepness(tmp_path):
    assert steepness([0.5, 0.7, 0.8], [0.4, 0.3, 0.1]) == pytest.approx(1.0)
    assert steepness([0.3], [0.2]) == 0.0 and steepness([], []) is None
    found = claims_sections(FRONTIER_RUNS, tmp_path, lambda fig, name, out, caption: {"src": name, "caption": caption})
    (panel,) = found["frontiers"]
    shown = {(r["task"], r["strategy"]): r["steepness"] for r in panel["rows"]}
    assert shown == {("emoji", "bitfit"): "0.00", ("emoji", "lora"): "0.50", ("emoji", "mean"): "0.25",
                     ("fashion-mnist", "bitfit"): "0.17", ("fashion-mnist", "lora"): "1.00",
                     ("fashion-mnist", "mean"): "0.58"}
    assert found["onset"] is None and found["transfer"] is None
    assert found["absent"] == [NEEDS["onset"], NEEDS["transfer"]]


def test_one_task_per_backbone_draws_no_frontier_panel(tmp_path):
    one_task = [run for run in FRONTIER_RUNS if run.config["data"]["name"] == "emoji"]
    assert claims_sections(one_task, tmp_path, lambda *a: {}) is None


def test_onset_against_eps_g_and_the_transfer_table(tmp_path):
    runs = [paper_b_run("fix1", "constant", "1/255", [0.1, 0.3, 0.5], 0.60),  # threshold 0.2 (10 classes): epoch 1
            paper_b_run("fix2", "constant", "2/255", [0.1, 0.1, 0.4], 0.50),  # epoch 2
            paper_b_run("fix4", "constant", "4/255", [0.1, 0.1, 0.1], 0.10),  # never
            paper_b_run("sched4", "scheduled", "4/255", [0.3, 0.5, 0.6], 0.70),
            paper_b_run("ref4", "zero", "4/255", [0.5, 0.7, 0.8], 0.80, objective="standard")]
    found = claims_sections(runs, tmp_path, lambda fig, name, out, caption: {"src": name, "caption": caption})
    assert [(r["eps"], r["epoch"], r["step"]) for r in found["onset"]["rows"]] == [
        ("1/255", "1", "1"), ("2/255", "2", "2"), ("4/255", "never", "never")]
    (row,) = [r for r in found["transfer"] if r["eps"] == "4/255"]
    assert (row["reference_clean"], row["fix_clean"], row["gap"], row["scheduled_clean"]) == (
        "80.0", "10.0", "+70.0", "70.0")
    # the 1/255 and 2/255 RFT-fix runs fall back to the backbone's and task's only standard run
    assert {r["eps"]: r["gap"] for r in found["transfer"]} == {"1/255": "+20.0", "2/255": "+30.0", "4/255": "+70.0"}
    assert found["absent"] == [NEEDS["frontiers"]]


def test_the_report_page_renders_the_panels_and_the_absent_line(tmp_path):
    runs = [*FRONTIER_RUNS, paper_b_run("fix4", "constant", "4/255", [0.1, 0.3, 0.5], 0.40),
            paper_b_run("ref4", "zero", "4/255", [0.5, 0.7, 0.8], 0.85, objective="standard")]
    html = build_report(runs, tmp_path / "report", found=[]).read_text(encoding="utf-8")
    assert "Frontiers per task: mobilenet_v2" in html
    assert re.search(r"<tr><td>fashion-mnist</td><td>lora</td><td>easy-lora</td><td>1.00</td>", html)
    assert re.search(r"<tr><td>vit_small_dinov2</td><td>emoji</td><td>4/255</td><td>85.0</td><td>40.0</td>"
                     r"<td>\+45.0</td>", html)
    assert "Onset against eps_g: needs RFT-fix runs" in html
    assert (tmp_path / "report" / "claims-frontiers-mobilenet-v2.png").is_file()


def test_the_reference_is_the_standard_run_set_up_like_rft_fix_not_a_paper_a_run_at_the_same_eps(tmp_path):
    # paper A's runs carry eps.value too (the default 4/255, unused by a standard objective): one listed first must
    # not become RFT-fix's reference when the study's own standard run is there
    study_a = paper_a_run("a-lora", "emoji", "lora", [(0.9, 0.1)], model="vit_small_dinov2")
    study_a.config["eps"]["value"] = "4/255"
    runs = [study_a, paper_b_run("fix4", "constant", "4/255", [0.1, 0.3, 0.5], 0.40),
            paper_b_run("ref4", "zero", "4/255", [0.5, 0.7, 0.8], 0.85, objective="standard")]
    found = claims_sections(runs, tmp_path, lambda fig, name, out, caption: {"src": name, "caption": caption})
    (row,) = found["transfer"]
    assert (row["reference"], row["reference_clean"], row["gap"]) == ("ref4", "85.0", "+45.0")


def test_fractional_onset_epochs_are_shown_to_two_decimals(tmp_path):
    runs = [paper_b_run(f"fix{k}", "constant", f"{k}/255", [0.1, 0.1, 0.5], 0.5) for k in (1, 2)]
    for run, epochs in zip(runs, ([0, 1 / 3, 2 / 3], [0, 2 / 3, 4 / 3]), strict=True):
        val = run.metrics["split"] == "val"
        run.metrics.loc[val, "epoch"] = epochs
    found = claims_sections(runs, tmp_path, lambda fig, name, out, caption: {"src": name, "caption": caption})
    assert [r["epoch"] for r in found["onset"]["rows"]] == ["0.67", "1.33"]


def test_a_strategy_keeps_its_colour_across_tasks_and_the_axes_are_in_percent(tmp_path):
    runs = [*FRONTIER_RUNS, paper_a_run("easy-adapter", "fashion-mnist", "adapter", [(0.55, 0.35)])]
    figures = []
    claims_sections(runs, tmp_path, lambda fig, name, out, caption: figures.append(fig) or {})
    (fig,) = figures
    colours: dict[str, set] = {}
    for ax in fig.axes:
        assert "(%)" in ax.get_xlabel()
        for line in ax.get_lines():
            colours.setdefault(line.get_label().split(" ")[0], set()).add(matplotlib.colors.to_hex(line.get_color()))
        for dots, line in zip(ax.collections, ax.get_lines(), strict=True):  # each run's dots in its line's colour
            assert matplotlib.colors.to_hex(dots.get_facecolor()[0]) == matplotlib.colors.to_hex(line.get_color())
    assert {name: len(c) for name, c in colours.items()} == {"adapter": 1, "bitfit": 1, "lora": 1}
    assert fig.axes[0].get_ylabel() == "robust accuracy at 1/255 (%)"
    (easy,) = [ax for ax in fig.axes if ax.get_title().startswith("fashion-mnist")]
    assert max(x for line in easy.get_lines() for x in line.get_xdata()) == pytest.approx(90.0)
