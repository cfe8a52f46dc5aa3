"""The report's seed and schedule sections: spreads, attainment bands, paper B's table with t-tests, and the
eps-schedule figure, on synthetic runs (3 seeds x 2 strategies x 2 schedules)."""

import re
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from robustft.analysis.seed_stats import run_summaries
from robustft.report import build_report
from robustft.report.schedule_figure import schedule_curves
from robustft.runs import Run

EPS = 4 / 255


def synthetic_run(strategy: str, schedule: str, seed: int, epochs: int = 6) -> Run:
    rng = np.random.default_rng(zlib.crc32(f"{strategy}{schedule}{seed}".encode()))
    delay = 2 if schedule == "scheduled" else 0
    rows = []
    for epoch in range(epochs + 1):
        alpha = min(1.0, max(0.0, (epoch - 1) / 3)) if schedule == "scheduled" else 1.0
        clean = (0.1 + 0.12 * epoch * (1.5 if delay else 0.6)) + rng.normal(0, 0.02)
        robust = 0.05 + 0.03 * epoch + rng.normal(0, 0.01)
        step = 10 * epoch
        rows += [dict(step=step, epoch=epoch, split="val", metric="accuracy", attack="clean", eps=0.0, value=clean),
                 dict(step=step, epoch=epoch, split="test", metric="accuracy", attack="clean", eps=0.0, value=clean),
                 dict(step=step, epoch=epoch, split="test", metric="accuracy", attack="apgd-ce", eps=EPS,
                      value=robust),
                 dict(step=step, epoch=epoch, split="optim", metric="eps", attack=None, eps=None, value=alpha * EPS)]
    rows += [dict(step=10 * epochs, epoch=epochs, split="test", metric="expected_robustness", attack="apgd-ce",
                  eps=EPS, value=robust * 1.5),
             dict(step=10 * epochs, epoch=epochs, split="test", metric="accuracy", attack="final:apgd-ce", eps=EPS,
                  value=robust - 0.01)]
    config = {"name": f"b-strategy-{strategy}-eps.schedule-{schedule}-seed-{seed}", "seed": seed,
              "model": {"name": "mobilenet_v2"}, "data": {"name": "fashion-mnist"}, "strategy": {"name": strategy},
              "objective": {"name": "adversarial"}, "eps": {"schedule": schedule, "value": "4/255"}}
    return Run(name=config["name"], config=config, metrics=pd.DataFrame(rows))


def runs():
    return [synthetic_run(st, sc, s) for st in ("full", "bitfit") for sc in ("constant", "scheduled") for s in range(3)]


def section_values(tmp_path, runs):
    """seed_sections' values, with figures drawn but not saved; and the names of the figures drawn."""
    from robustft.report.seed_tables import seed_sections

    drawn = []

    def figure(fig, name, out, caption):
        drawn.append(name)
        plt.close(fig)
        return {"src": f"{name}.png", "caption": caption}

    metrics = pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True)
    return seed_sections(runs, metrics, tmp_path, figure), drawn


def sections(tmp_path, runs):
    """The sections' HTML, rendered by the report's template, and the names of the figures drawn."""
    from robustft.report.html import seed_sections_html

    values, drawn = section_values(tmp_path, runs)
    return seed_sections_html(values), drawn


def test_sections_have_spreads_bands_schedule_table_ttest_and_figure(tmp_path):
    page, drawn = sections(tmp_path, runs())
    assert "Seeds and spreads" in page and "Eps schedules (paper B)" in page
    assert "schedule=scheduled, strategy=full" in page  # groups: everything but the seed
    assert "&plusmn;" in page
    assert drawn == ["pareto_bands", "eps_schedules"]
    # the t-test row of E.adv: 6 pairs (2 strategies x 3 seeds), p as scipy computes it
    summaries = run_summaries(runs()).set_index(["strategy", "seed", "schedule"])["e_adv"].unstack()
    expected = scipy_stats.ttest_rel(summaries["scheduled"], summaries["constant"])
    row = re.search(r"<td>scheduled vs constant</td><td>E.adv</td><td>(\d+)</td><td>[^<]*</td><td>[^<]*</td>"
                    r"<td>([^<]*)</td>", page)
    assert row is not None and int(row.group(1)) == 6
    assert float(row.group(2)) == float(f"{expected.pvalue:.3g}")


SCRIPT = "<script>alert(1)</script>"


def hostile_runs():
    """Two seeds of one configuration whose run name and strategy name are markup (a run directory's name and
    config.yaml are whatever its author wrote), and a second configuration, so the group label shows the strategy."""
    out = []
    for strategy in (SCRIPT, "full"):
        for seed in range(2):
            run = synthetic_run(strategy, "constant", seed)
            run.name = f"{SCRIPT}-{strategy}-seed-{seed}"
            run.config["name"] = run.name
            out.append(run)
    return out


def test_seed_sections_pass_names_as_plain_text_not_pre_escaped_html(tmp_path):
    values, _ = section_values(tmp_path, hostile_runs())
    groups = [row["group"] for row in values["spread"]["table"]["rows"]]
    assert f"strategy={SCRIPT}" in groups  # the raw text: escaping is the template's job, done once
    strategies = {row["strategy"] for row in values["schedules"]["per_configuration"]["rows"]}
    assert SCRIPT in strategies


def test_markup_in_run_and_strategy_names_is_escaped_in_the_seed_tables(tmp_path):
    page, _ = sections(tmp_path, hostile_runs())
    assert "Seeds and spreads" in page and "Eps schedules (paper B)" in page
    assert "<script" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<td>strategy={escaped}</td>" in page  # the spread table's and the bands table's group cells
    assert page.count(f"<td>{escaped}</td>") == 1  # the per-configuration schedule table's strategy cell
    one_group, _ = sections(tmp_path, hostile_runs()[:2])  # one configuration: its label is the run name
    assert "<script" not in one_group and f"<td>{escaped}-{escaped}</td>" in one_group


def test_seed_tables_render_cells_rows_and_dashes_as_before(tmp_path):
    page, _ = sections(tmp_path, runs())
    # one line per table, a row per group, the header then spreads as "mean &plusmn; std" (what the page showed
    # when seed_tables built the HTML itself; the whole page was compared byte for byte when this moved)
    spread = re.search(r"<table><thead><tr><th>configuration</th><th>seeds</th><th>clean</th>.*?</table>", page)
    assert spread is not None and "\n" not in spread.group(0)
    assert spread.group(0).count("<tr>") == 1 + 4
    row = re.search(r"<tr><td>schedule=constant, strategy=bitfit</td><td>3</td><td>(\d+\.\d) &plusmn; "
                    r"(\d+\.\d)</td>", spread.group(0))
    assert row is not None
    assert spread.group(0).count("<td>&ndash;</td>") == 4  # no OOD split: a dash in each group's OOD cell


def test_a_single_seed_standard_run_adds_no_section(tmp_path):
    run = synthetic_run("full", "constant", 0)
    run.config["objective"] = {"name": "standard"}
    assert sections(tmp_path, [run]) == ("", [])


@pytest.mark.slow
def test_the_report_page_embeds_the_sections(tmp_path):
    page = build_report(runs(), tmp_path, title="seeds").read_text()
    assert "Seeds and spreads" in page and "Eps schedules (paper B)" in page
    for name in ("pareto_bands", "eps_schedules"):
        assert (tmp_path / f"{name}.png").is_file() and (tmp_path / f"{name}.pdf").is_file()


def test_schedule_curves_give_alpha_and_validation_accuracy():
    run = synthetic_run("full", "scheduled", 0)
    accuracy, alpha = schedule_curves(run.metrics, EPS)
    assert alpha["alpha"].tolist()[:5] == [0.0, 0.0, 1 / 3, 2 / 3, 1.0]
    assert accuracy["epoch"].tolist() == list(range(7))


def test_report_draws_a_bounded_number_of_trajectories(tmp_path, monkeypatch):
    from robustft.report import html as report_html

    monkeypatch.setattr(report_html, "MAX_TRAJECTORIES", 1)
    monkeypatch.setattr(report_html, "seed_sections", lambda *args: [])
    runs = [synthetic_run("full", "constant", seed) for seed in range(2)]
    page = build_report(runs, tmp_path).read_text()
    assert (tmp_path / "trajectory_0.png").is_file() and not (tmp_path / "trajectory_1.png").exists()
    assert "The first 1 of 2 runs" in page


def test_figures_leave_out_a_legend_of_hundreds_of_runs():
    from robustft.report import figures

    def curves(n):
        return pd.DataFrame([{"run": f"r{i}", "eps": e, "value": 0.5 - e, "e_adv": 0.3} for i in range(n)
                             for e in (0.0, EPS)])

    few, many = figures.robust_curve_figure(curves(3)), figures.robust_curve_figure(curves(figures.MAX_LEGEND + 1))
    assert few.axes[0].get_legend() is not None
    assert many.axes[0].get_legend() is None
    assert any("legend left out" in t.get_text() for t in many.axes[0].texts)
    plt.close("all")
