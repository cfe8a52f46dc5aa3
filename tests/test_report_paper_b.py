"""The report's paper B section holds paper B's runs only (adversarial runs and their standard references, not a
paper A study reported beside them), puts under "adversarial @ eps_g" only accuracies at eps_g, prints no t-test
without pairs, names RFT-fix in the schedule figure's panels without their titles overlapping, and says which runs
never perturbed."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import pandas as pd
from tests.test_report_seeds import synthetic_run

from robustft.runs import Run


def paper_a_run(strategy: str, seed: int) -> Run:
    """A standard fine-tuning run of paper A's study beside them: PGD at 1/255 only, another strategy."""
    rows = []
    for epoch in range(4):
        rows += [dict(step=10 * epoch, epoch=epoch, split="test", metric="accuracy", attack="clean", eps=0.0,
                      value=0.2 + 0.2 * epoch),
                 dict(step=10 * epoch, epoch=epoch, split="test", metric="accuracy", attack="pgd", eps=1 / 255,
                      value=0.1)]
    config = {"name": f"a-{strategy}-seed-{seed}", "seed": seed, "model": {"name": "mobilenet_v2"},
              "data": {"name": "fashion-mnist"}, "strategy": {"name": strategy}, "objective": {"name": "standard"},
              "eps": {"schedule": "zero", "value": "4/255"}}
    return Run(name=config["name"], config=config, metrics=pd.DataFrame(rows))


def reference_run(seed: int) -> Run:
    """Paper B's standard reference: the adversarial runs' config but for the objective and the eps schedule."""
    run = synthetic_run("full", "zero", seed)
    run.config["objective"] = {"name": "standard"}
    run.metrics = run.metrics[run.metrics["attack"] != "final:apgd-ce"]  # evaluated at 1/255 only
    run.metrics.loc[run.metrics["attack"] == "apgd-ce", "eps"] = 1 / 255
    return run


def study() -> list[Run]:
    adversarial = [synthetic_run("full", schedule, seed) for schedule in ("constant", "scheduled") for seed in range(3)]
    return [*adversarial, *[reference_run(seed) for seed in range(3)],
            *[paper_a_run(strategy, 0) for strategy in ("lora", "bitfit")]]


def schedule_values(tmp_path, runs, figures=None):
    from robustft.report.seed_tables import seed_sections

    def figure(fig, name, out, caption):
        if figures is not None:
            figures[name] = fig
        else:
            plt.close(fig)
        return {"src": f"{name}.png", "caption": caption}

    metrics = pd.concat([r.metrics.assign(run=r.name) for r in runs], ignore_index=True)
    return seed_sections(runs, metrics, tmp_path, figure)["schedules"]


def test_the_schedule_tables_hold_paper_bs_runs_and_eps_g_numbers_only(tmp_path):
    section = schedule_values(tmp_path, study())
    pooled = {row["schedule"]: row for row in section["pooled"]["rows"]}
    assert pooled["zero"]["runs"] == "3"  # the 3 references, not paper A's lora and bitfit runs
    assert pooled["zero"]["final_robust"] is None  # their PGD at 1/255 is not an accuracy at eps_g = 4/255
    assert pooled["constant"]["final_robust"] is not None
    titles = section["pooled"]["columns"]
    assert "per-image worst case of" in titles["final_robust"]  # which attack the number is: both, image by image
    pairs = [row["n"] for row in section["tests"]["rows"]]
    assert pairs and "0" not in pairs  # "zero vs constant" pairs nothing (another objective): no row


def test_a_run_that_never_perturbed_is_not_shown_as_its_schedule(tmp_path):
    runs = study()
    runs[3].summary = {"perturbed_steps": 0}  # scheduled, seed 0: trained at eps 0 throughout
    for run in runs[4:6]:
        run.summary = {"perturbed_steps": 12}
    section = schedule_values(tmp_path, runs)
    pooled = {row["schedule"]: row["runs"] for row in section["pooled"]["rows"]}
    assert pooled["scheduled"] == "2" and pooled["scheduled (never perturbed)"] == "1"


def test_the_schedule_figure_names_rft_fix_and_its_panel_titles_do_not_overlap(tmp_path):
    # Configurations that differ in several settings make long group labels, side by side in one row of panels.
    runs = []
    for schedule, i in itertools.product(("constant", "scheduled"), (0, 1)):
        run = synthetic_run(("full", "compacter")[i], schedule, 0)
        run.config["model"]["name"] = ("mobilenet_v2", "vit_small_dinov2")[i]
        run.config["data"]["name"] = ("fashion-mnist", "fashion-mnist@contrast:3")[i]
        run.config["optim"] = {"lr": (1e-3, 3e-4)[i], "weight_decay": (0.05, 0.01)[i]}
        run.name = run.config["name"] = f"{run.name}-{i}"
        runs.append(run)
    figures = {}
    schedule_values(tmp_path, runs, figures)
    fig = figures["eps_schedules"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    assert any("RFT-fix" in t.get_text() for t in titles) and any("Epsilon-Scheduling" in t.get_text()
                                                                  for t in titles)
    boxes = [t.get_window_extent(renderer) for t in titles]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), [t.get_text() for t in titles]
    plt.close(fig)


def test_panel_titles_name_only_what_varies_among_the_schedules_runs(tmp_path):
    # The paper A runs beside them vary strategy and objective; among paper B's runs only the schedule varies, so
    # the panels need no more than paper B's names (the demo's titles had run to a dozen lines of settings).
    figures = {}
    schedule_values(tmp_path, study(), figures)
    fig = figures["eps_schedules"]
    assert sorted(ax.get_title() for ax in fig.axes if ax.get_title()) == ["Epsilon-Scheduling (scheduled)",
                                                                          "RFT-fix (constant)"]
    plt.close(fig)
