import html
import math
import re

import pandas as pd
import pytest

from robustft.analysis import compare_runs, pareto_area, percent_above_average
from robustft.report import build_report
from robustft.report.html import describe
from robustft.runs import Run

STEPS = [0, 50, 100, 130, 160, 300]


def _record(step, split, metric, attack, eps, value, extra=None):
    return {"step": step, "epoch": 0, "split": split, "metric": metric, "attack": attack, "eps": eps, "value": value,
            "n": 512, "ci_low": max(0.0, value - 0.04) if metric == "accuracy" else None,
            "ci_high": min(1.0, value + 0.04) if metric == "accuracy" else None, "extra": extra}


def synthetic_run(name: str, strategy: str, peak: float, data: str = "fashion-mnist", attack: str = "pgd",
                  eps: float = 1 / 255, eval_attack: dict | None = None, robust: bool = True) -> Run:
    """Records in the trainer's schema (see robustft.runs.records): clean accuracy is attack 'clean' at eps 0.

    Clean accuracy rises 0.1 -> 0.9 over the six evaluations; robust accuracy (``attack`` at ``eps``) rises to
    ``peak`` + 0.02 mid-run and falls back (paper A's shape).
    """
    rows = []
    for i, step in enumerate(STEPS):
        clean = 0.1 + 0.8 * i / (len(STEPS) - 1)
        rows.append(_record(step, "test", "accuracy", "clean", 0.0, clean))
        rows.append(_record(step, "train", "accuracy", "clean", 0.0, clean + 0.05))
        if robust:
            rows.append(_record(step, "test", "accuracy", attack, eps,
                                peak * math.sin(math.pi * i / (len(STEPS) - 1)) + 0.02))
        rows.append(_record(step, "ood:digits", "accuracy", "clean", 0.0, clean * 0.6))
        rows.append(_record(step, "optim", "loss", "adversarial", None, 0.5 / (1 + i)))
        rows.append(_record(step, "optim", "eps", None, None, 4 / 255 * i / 5))
    for k in range(5):  # the robust curve at the last step, then the final strong evaluation
        rows.append(_record(300, "test", "curve_accuracy", "clean" if k == 0 else "pgd", k / 255, 0.9 - 0.2 * k))
        if k:
            rows.append(_record(300, "test", "accuracy", "final:apgd-ce", k / 255, 0.85 - 0.2 * k))
    rows.append(_record(300, "test", "expected_robustness", "pgd", 4 / 255, 0.5))
    rows.append(_record(300, "test", "check:zero_gradients", "pgd", 1 / 255, 1.0,
                        extra={"message": "input gradients are zero for 40% of samples"}))
    config = {"model": {"name": "mobilenet_v2"}, "data": {"name": data},
              "strategy": {"name": strategy}, "objective": {"name": "adversarial"},
              "eps": {"schedule": "scheduled", "value": "4/255"}}
    if eval_attack is not None:
        config["eval"] = {"attack": eval_attack}
    return Run(name=name, config=config, summary={"strategy": {"trainable_share": 0.0123}}, metrics=pd.DataFrame(rows))


def frontier_rows(text: str, runs: bool = False) -> list[tuple[str, ...]]:
    """(group, area, vs average) of every frontier-table row of a page, in page order; with ``runs``, (group, runs,
    area cell, vs average)."""
    rows = re.findall(r"<tr><td>([^<]*)</td><td>(\d+)</td><td>([0-9.]+(?: &plusmn; [0-9.]+)?)</td>"
                      r"<td>([+-][0-9.]+%|&ndash;)</td>", text)
    return rows if runs else [(group, area, above) for group, _, area, above in rows]


def expected_area(run: Run, attack: str = "pgd") -> float:
    df = run.metrics[run.metrics["split"] == "test"]
    clean = df[(df["attack"] == "clean") & (df["metric"] == "accuracy")].sort_values("step")["value"]
    robust = df[(df["attack"] == attack) & (df["metric"] == "accuracy")].sort_values("step")["value"]
    return pareto_area(clean.to_numpy(), robust.to_numpy())


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
    assert "final:apgd-ce@4/255: 5.0" in text  # the final strong evaluation in the overview
    # The frontier table: one row per strategy, its area and % above the average area, best first.
    areas = {"bitfit": expected_area(runs[0]), "full": expected_area(runs[1])}
    above = percent_above_average(areas)
    assert above["bitfit"] > 0 > above["full"]
    assert frontier_rows(text) == [(group, f"{areas[group]:.4f}", f"{above[group]:+.1f}%") for group in areas]


def test_a_strategys_pareto_area_over_seeds_is_the_mean_of_its_seeds_with_their_spread(tmp_path):
    seeds = [synthetic_run(f"bitfit-seed-{i}", "bitfit", peak) for i, peak in enumerate((0.2, 0.4))]
    runs = [*seeds, synthetic_run("full-seed-0", "full", 0.1)]
    text = build_report(runs, tmp_path / "report", group_by="strategy").read_text()
    areas = [expected_area(run) for run in seeds]
    mean, std = sum(areas) / 2, abs(areas[0] - areas[1]) / 2 ** 0.5
    rows = {row[0]: row[1:] for row in frontier_rows(text, runs=True)}
    assert rows["bitfit"][:2] == ("2", f"{mean:.4f} &plusmn; {std:.4f}")  # not the pooled cloud's (larger) area
    assert rows["full"][:2] == ("1", f"{expected_area(runs[2]):.4f}")


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


def _compare(runs, group_by="strategy"):
    metrics = pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True)
    return compare_runs(metrics, {r.name: describe(r.config) for r in runs}, group_by,
                        configs={r.name: r.config for r in runs})


def test_frontiers_and_percent_above_average_are_per_dataset(tmp_path):
    # BitFit wins on fashion-mnist, full fine-tuning on digits: pooled, each strategy's frontier would be its
    # better dataset's and the two would tie at +0.0%.
    runs = [synthetic_run("fm-bitfit", "bitfit", 0.5, data="fashion-mnist"),
            synthetic_run("fm-full", "full", 0.1, data="fashion-mnist"),
            synthetic_run("dg-bitfit", "bitfit", 0.1, data="digits"),
            synthetic_run("dg-full", "full", 0.5, data="digits")]
    by_name = {r.name: r for r in runs}
    comparisons, unplaced = _compare(runs)
    assert unplaced == {}
    assert [c.dataset for c in comparisons] == ["digits", "fashion-mnist"]
    for comparison, winner, loser in [(comparisons[0], "dg-full", "dg-bitfit"),
                                      (comparisons[1], "fm-bitfit", "fm-full")]:
        areas = {by_name[run].config["strategy"]["name"]: expected_area(by_name[run]) for run in (winner, loser)}
        table = comparison.table.set_index("group")
        assert table["area"].to_dict() == pytest.approx(areas)
        assert table["percent_above_average"].to_dict() == pytest.approx(percent_above_average(areas))
        assert set(comparison.points["run"]) == {winner, loser} and comparison.left_out == {}

    text = build_report(runs, tmp_path / "report", group_by="strategy").read_text()
    assert "<h3>digits: pgd @ 1/255</h3>" in text and "<h3>fashion-mnist: pgd @ 1/255</h3>" in text
    rows = frontier_rows(text)
    assert [group for group, _, _ in rows] == ["full", "bitfit", "bitfit", "full"]  # digits first, best first
    assert rows[0][2] == rows[2][2] and rows[0][2].startswith("+")
    assert (tmp_path / "report" / "tradeoff_1.png").is_file() and (tmp_path / "report" / "tradeoff_2.png").is_file()


def test_runs_under_other_attacks_or_eps_get_their_own_table_and_the_page_says_who_is_left_out(tmp_path):
    runs = [synthetic_run("paper-a", "bitfit", 0.4, attack="pgd", eps=1 / 255),
            synthetic_run("paper-b", "full", 0.3, attack="apgd-ce", eps=4 / 255),
            synthetic_run("standard", "full", 0.0, robust=False)]
    comparisons, unplaced = _compare(runs)
    assert [c.threat.label() for c in comparisons] == ["apgd-ce @ 4/255", "pgd @ 1/255"]
    apgd, pgd = comparisons
    assert set(apgd.points["run"]) == {"paper-b"} and set(pgd.points["run"]) == {"paper-a"}
    assert pgd.left_out == {"paper-b": "not evaluated under pgd @ 1/255; tracked: apgd-ce @ 4/255"}
    assert apgd.left_out == {"paper-a": "not evaluated under apgd-ce @ 4/255; tracked: pgd @ 1/255"}
    assert unplaced == {"standard": "no robust test accuracy tracked during training"}  # named once, apart
    assert pgd.table["area"].iloc[0] == pytest.approx(expected_area(runs[0]))
    assert apgd.table["area"].iloc[0] == pytest.approx(expected_area(runs[1], attack="apgd-ce"))

    text = build_report(runs, tmp_path / "report", group_by="strategy").read_text()
    for heading in ["fashion-mnist: apgd-ce @ 4/255", "fashion-mnist: pgd @ 1/255"]:
        assert f"<h3>{heading}</h3>" in text
    assert f"<b>paper-b</b>: {html.escape(pgd.left_out['paper-b'])}" in text
    assert "Runs left out of every trade-off table" in text
    assert text.count("<b>standard</b>: no robust test accuracy tracked during training") == 1


def test_the_same_attack_with_other_settings_is_another_table():
    pgd10 = {"name": "pgd", "steps": 10, "step_size": "0.25/255", "random_start": True, "options": {}}
    pgd15 = {**pgd10, "steps": 15}
    runs = [synthetic_run("a", "bitfit", 0.4, eval_attack=pgd10), synthetic_run("b", "full", 0.3, eval_attack=pgd15)]
    comparisons, _ = _compare(runs)
    assert [c.threat.settings for c in comparisons] == ["steps 10, step_size 0.25/255, random_start",
                                                        "steps 15, step_size 0.25/255, random_start"]
    assert comparisons[0].left_out == {"b": "evaluated with other attack settings "
                                            "(steps 15, step_size 0.25/255, random_start)"}


def test_runs_without_clean_records_or_without_a_shared_step_are_named_with_their_reason():
    no_clean = synthetic_run("no-clean", "full", 0.3)
    no_clean.metrics = no_clean.metrics[no_clean.metrics["attack"] != "clean"]
    offset = synthetic_run("offset", "lora", 0.3)  # robust records at steps where clean accuracy was not measured
    robust = (offset.metrics["attack"] == "pgd") & (offset.metrics["metric"] == "accuracy")
    offset.metrics.loc[robust, "step"] += 1
    comparisons, unplaced = _compare([synthetic_run("ok", "bitfit", 0.3), no_clean, offset])
    assert [set(c.points["run"]) for c in comparisons] == [{"ok"}] and comparisons[0].left_out == {}
    assert unplaced == {"no-clean": "no clean test accuracy tracked during training",
                        "offset": "no evaluation step with both clean and robust test accuracy"}


def test_the_page_is_the_shipped_template_with_every_run_value_escaped(tmp_path):
    import importlib.resources

    shipped = importlib.resources.files("robustft.report")
    assert all(shipped.joinpath(name).is_file() for name in ("page.html", "page.css", "figure.html"))
    name = 'x" onload="alert(1)<b>{{ 7 * 7 }}'  # an attribute break-out, a tag and template syntax
    text = build_report([synthetic_run(name, "full", 0.2)], tmp_path / "report").read_text()
    assert 'onload="alert(1)' not in text and "<b>{{" not in text and "49" not in text.split("<body>")[1][:200]
    assert "x&#34; onload=&#34;alert(1)&lt;b&gt;{{ 7 * 7 }}" in text  # in the overview cell and the alt texts


def test_two_studies_runs_of_one_name_get_their_own_row_in_the_report(tmp_path):
    """`robustft report demo1 demo2` where both hold an a-full: two frontiers named by study, not one merged."""
    from robustft.cli import main
    from robustft.runs import Run, load_runs

    made = {}
    for study, peak in (("demo1", 0.2), ("demo2", 0.4)):
        run = synthetic_run("a-full", "full", peak)
        directory = Run.create(tmp_path / study / "a-full", run.config)
        directory.metrics_writer().write([{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
                                          for row in run.metrics.to_dict("records")])
        made[f"{study}/a-full"] = expected_area(run)
    records = load_runs([tmp_path / "demo1", tmp_path / "demo2"])
    assert [r.name for r in records] == ["demo1/a-full", "demo2/a-full"]
    assert main(["report", str(tmp_path / "demo1"), str(tmp_path / "demo2"), "--output-dir",
                 str(tmp_path / "report")]) == 0
    rows = frontier_rows((tmp_path / "report" / "index.html").read_text())
    assert sorted((group, area) for group, area, _ in rows) == sorted(
        (name, f"{area:.4f}") for name, area in made.items())


def test_a_grid_over_backbones_compares_strategies_per_backbone_and_dataset():
    """Paper B's full grid has six backbones: a ViT's frontier is not compared with a ResNet's as if they were two
    strategies on one task (kills: grouping the tables by dataset alone)."""
    runs = [synthetic_run("vit-bitfit", "bitfit", 0.5), synthetic_run("vit-full", "full", 0.1),
            synthetic_run("rn-bitfit", "bitfit", 0.1), synthetic_run("rn-full", "full", 0.5)]
    for run in runs[:2]:
        run.config["model"]["name"] = "vit_base_patch16_224"
    comparisons, _ = _compare(runs)
    assert [c.dataset for c in comparisons] == ["mobilenet_v2 on fashion-mnist",
                                                "vit_base_patch16_224 on fashion-mnist"]
    assert [set(c.points["run"]) for c in comparisons] == [{"rn-bitfit", "rn-full"}, {"vit-bitfit", "vit-full"}]


def test_the_overview_shows_the_robust_curve_beside_the_final_attack_at_its_eps(tmp_path):
    """A nested curve can sit well below the single final attack at the same eps (a newcomer saw 17.0 in the
    overview and 8.0 in paper B's table for one run): both are shown, each named."""
    text = build_report([synthetic_run("a", "bitfit", 0.4)], tmp_path / "r").read_text()
    overview = text.split("<h2>Overview</h2>")[1].split("</table>")[0]
    assert "final:apgd-ce@4/255" in overview and "curve:pgd@4/255" in overview
    assert "10.0" in overview.split("curve:pgd@4/255")[1][:60]  # the curve's 0.9 - 4 x 0.2 at 4/255
    assert "curve:pgd@0" not in overview  # only at the final attack's eps


def _without_checks(run: Run, checks: bool | None) -> Run:
    config = dict(run.config)
    if checks is not None:
        config["eval"] = {"checks": checks}
    metrics = run.metrics[~run.metrics["metric"].astype(str).str.startswith("check:")]
    return Run(name=run.name, config=config, summary=run.summary, metrics=metrics)


def test_the_checks_section_says_whether_any_check_ran(tmp_path):
    quiet = _without_checks(synthetic_run("a", "bitfit", 0.4), None)
    text = build_report([quiet], tmp_path / "none").read_text()
    assert "No gradient-masking check was run" in text and "fired in the" not in text
    checked = _without_checks(synthetic_run("b", "full", 0.2), True)
    text = build_report([quiet, checked], tmp_path / "some").read_text()
    assert "No gradient-masking check fired in the 1 run(s) that ran them; 1 ran none" in text
