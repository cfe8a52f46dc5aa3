"""`robustft reproduce paper-a|paper-b --scale embedded`: every claim's runs as a grid, and its plan."""

from __future__ import annotations

import pandas as pd
import pytest

from robustft.analysis.findings import paper_b_run_names
from robustft.cli import main
from robustft.errors import ConfigError
from robustft.runs import Run
from robustft.sweep.cost_model import Throughput, run_cost
from robustft.sweep.embedded_cost import EMBEDDED_SPEEDS, packed_wall, run_seconds
from robustft.sweep.study import paper_study, resolve_study


def configs_of(paper, tmp_path, selection=None):
    study = paper_study(paper, "embedded", selection)
    _, configs = resolve_study(study, tmp_path)
    return study, {c["name"]: c for c in configs}


def test_paper_a_runs_seven_strategies_on_both_backbones_and_both_tasks(tmp_path):
    study, configs = configs_of("paper-a", tmp_path)
    seen = {(c["model"]["name"], c["data"]["name"], c["strategy"]["name"]) for c in configs.values()}
    assert len(seen) == len(configs) == 2 * 2 * 7
    assert {m for m, _, _ in seen} == {"mobilenet_v2", "vit_small_dinov2"}
    assert {d for _, d, _ in seen} == {"fashion-mnist", "emoji"}
    vit = [c for c in configs.values() if c["model"]["name"] == "vit_small_dinov2"]
    assert {c["model"]["image_size"] for c in vit} == {56} and {c["data"]["image_size"] for c in vit} == {56}
    # the ViT's full fine-tuning keeps its 10x smaller lr; its other strategies share 5e-4
    assert {c["strategy"]["name"]: c["optim"]["lr"] for c in vit if c["data"]["name"] == "emoji"} == {
        "full": 5e-5, **{s: 5e-4 for s in ("linear", "bitfit", "lora", "ia3", "adapter", "compacter")}}
    emoji = configs["a-mobilenet-v2-emoji-lora"]
    assert emoji["data"]["ood"] == ["emoji@gaussian_noise:3", "emoji@contrast:3"]
    # arms of one (backbone, task) differ only in strategy and optimiser: one paper A study each for the findings
    assert len({arm.label for arm in study.arms}) == len(study.arms)


def test_paper_b_runs_three_eps_g_with_references_the_findings_pair(tmp_path):
    _, configs = configs_of("paper-b", tmp_path)
    fix = {(c["model"]["name"], c["data"]["name"], c["eps"]["value"]) for c in configs.values()
           if c["eps"]["schedule"] == "constant"}
    assert {e for _, _, e in fix} == {"1/255", "2/255", "4/255"} and len(fix) == 2 * 2 * 3
    scheduled = {k for k, c in configs.items() if c["eps"]["schedule"] == "scheduled"}
    assert len(scheduled) == 12
    references = {k for k, c in configs.items() if c["objective"]["name"] == "standard"}
    assert len(references) == 12
    for reference in references:  # each is the reference of the adversarial runs of its backbone, task and eps_g
        prefix = reference.removesuffix("-standard")
        runs = [Run(name=k, config=c, metrics=pd.DataFrame()) for k, c in configs.items()
                if k.startswith(prefix)]
        assert reference in paper_b_run_names(runs) and len(runs) >= 3
    # linear warm-up, uniform and auto: at the cheapest configuration only
    secondary = sorted(k for k, c in configs.items() if c["eps"]["schedule"] in ("linear", "uniform", "auto"))
    assert secondary == [f"b-mobilenet-v2-fashion-mnist-4_255-{s}" for s in ("auto", "linear", "uniform")]


def test_every_paper_b_run_evaluates_at_each_epoch_end_as_auto_needs(tmp_path):
    _, configs = configs_of("paper-b", tmp_path, {"schedules": "auto"})
    assert len(configs) == 12
    for config in configs.values():
        steps_per_epoch = config["data"]["limit_train"] // config["optim"]["batch_size"]
        every = int(config["eval"]["schedule"].removeprefix("every:"))
        assert steps_per_epoch % every == 0, config["name"]


def test_naming_a_secondary_schedule_runs_it_everywhere_and_bad_values_list_the_valid_ones(tmp_path):
    _, configs = configs_of("paper-b", tmp_path, {"schedules": "uniform", "eps": "2/255"})
    assert sorted(configs) == sorted(f"b-{m}-{d}-2_255-uniform" for m in ("mobilenet-v2", "vit-s-dinov2")
                                     for d in ("fashion-mnist", "emoji"))
    with pytest.raises(ConfigError, match="fashion-mnist, emoji, elpv \\(extra\\)"):
        paper_study("paper-a", "embedded", {"datasets": "cifar10"})


def test_packing_puts_each_run_on_the_first_slot_to_free():
    assert packed_wall([3.0, 2.0, 2.0], 2) == 4.0
    assert packed_wall([2.0, 2.0, 3.0], 2) == 5.0  # the order matters: run_study's is the plan's
    assert packed_wall([1.0, 2.0, 3.0, 2.0], 1) == 8.0
    assert packed_wall([5.0], 4) == 5.0


def test_a_run_costs_its_start_plus_its_passes_at_the_measured_speeds(tmp_path):
    _, configs = configs_of("paper-a", tmp_path)
    config = configs["a-vit-s-dinov2-emoji-lora"]
    passes, speed = run_cost(config, Throughput(1.0, 1.0)), EMBEDDED_SPEEDS["vit_small_dinov2@56"]
    assert passes.train_passes == 200 * 32
    expected = (speed.start + passes.train_passes * speed.train + passes.eval_passes * speed.attack
                + passes.eval_forward * speed.forward)
    assert run_seconds(config) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="no measured embedded speed for resnet18@32"):
        run_seconds({**config, "model": {"name": "resnet18", "image_size": 32}})


@pytest.mark.parametrize("paper", ["paper-a", "paper-b"])
def test_the_embedded_plan_fits_45_minutes_on_two_cores(paper, capsys):
    assert main(["reproduce", paper, "--plan"]) == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    minutes = float(total.split("estimated wall time ")[1].split(" min")[0])
    assert 0 < minutes <= 45.0
    assert "vit-s-dinov2" in out and "emoji" in out


def _wall(out: str) -> tuple[float, str]:
    total = next(line for line in out.splitlines() if line.startswith("total:"))
    return float(total.split("estimated wall time ")[1].split(" min")[0]), total


def test_the_embedded_plan_packs_the_runs_on_the_jobs_asked_for(capsys):
    assert main(["reproduce", "paper-b", "--plan"]) == 0
    two, _ = _wall(capsys.readouterr().out)
    assert main(["reproduce", "paper-b", "--plan", "--jobs", "1"]) == 0
    one, total = _wall(capsys.readouterr().out)
    assert "on 1 idle cores" in total
    cpu_minutes = float(total.split("runs, ")[1].split(" CPU-minutes")[0])
    assert one == pytest.approx(cpu_minutes, abs=0.1) and two < one  # one at a time: the CPU time, end to end
    assert main(["reproduce", "paper-b", "--plan", "--jobs", "0"]) != 0
    assert "--jobs 0 must be at least 1" in capsys.readouterr().err


def test_the_demo_names_in_one_line_the_claims_it_leaves_to_reproduce(monkeypatch, tmp_path, capsys):
    import json

    import robustft.cli.study_run

    def execute(study, out, **options):
        out.mkdir(parents=True)
        (out / "findings.json").write_text(json.dumps({"findings": [
            {"key": "A.ood_shift_not_method", "verdict": "skipped"}, {"key": "A.peak", "verdict": "holds"},
            {"key": "B.delay_grows_with_eps", "verdict": "skipped"}]}))
        return 0

    monkeypatch.setattr(robustft.cli.study_run, "execute", execute)
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("claims left to")]
    listed = line.split(": ", 1)[1].split(", ")
    assert listed == ["A.attention_on_complex", "A.steeper_with_complexity", "B.delay_grows_with_eps",
                      "B.severity_by_model_and_data", "B.eadv_when_adv_equal", "A.ood_shift_not_method"]
