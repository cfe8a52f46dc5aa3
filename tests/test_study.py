"""Studies: the demo's and the papers' arms, their configs (shipped and packaged), progress, and `reproduce`."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import torch

from robustft.config import load_config, section_from_dict
from robustft.errors import ConfigError
from robustft.models.tiny import tiny_cnn
from robustft.sweep.paper_grid import REFERENCE_OVERRIDES
from robustft.sweep.study import (
    PAPER_A_STRATEGIES,
    demo_study,
    paper_study,
    resolve_study,
    shipped_configs,
)
from robustft.sweep.study_progress import StudyProgress, last_step, planned_steps, relative_cost
from robustft.training.evaluator import Evaluator

ROOT = Path(__file__).resolve().parents[1]


def test_demo_study_has_every_strategy_with_its_own_lr_and_the_three_paper_b_arms(tmp_path):
    study = demo_study()
    points, configs = resolve_study(study, tmp_path)
    by_name = {c["name"]: c for c in configs}
    assert [a.label for a in study.arms if a.paper == "A"] == list(PAPER_A_STRATEGIES)
    strategies = {by_name[f"a-{s}"]["strategy"]["name"] for s in PAPER_A_STRATEGIES}
    assert strategies == set(PAPER_A_STRATEGIES)
    assert len({by_name[f"a-{s}"]["optim"]["lr"] for s in PAPER_A_STRATEGIES}) >= 3  # not one lr for all
    assert by_name["a-full"]["optim"]["lr_schedule"] == "linear"  # paper A: full FT linear decay
    for s in PAPER_A_STRATEGIES:
        cfg = by_name[f"a-{s}"]
        assert cfg["eval"]["schedule"] == "paper-a" and cfg["eval"]["eps"] == ["1/255"]
        assert len(cfg["data"]["ood"]) >= 2 and cfg["objective"]["name"] == "standard"
        assert cfg["output_dir"] == str(tmp_path)
    fix, sched, ref = by_name["b-fix"], by_name["b-scheduled"], by_name["b-standard"]
    assert (fix["eps"]["schedule"], sched["eps"]["schedule"], ref["objective"]["name"]) == ("constant", "scheduled",
                                                                                           "standard")
    assert fix["eps"]["value"] == sched["eps"]["value"] == "32/255"
    assert fix["eval"]["curve"] == "32/255" and fix["eval"]["final"]["name"] == "apgd-ce"
    # The reference differs from RFT-fix only in what is tested: the training perturbation.
    strip = ("name", "objective", "eps")
    assert {k: v for k, v in fix.items() if k not in strip} == {k: v for k, v in ref.items() if k not in strip}


def test_attack_steps_reach_every_evaluated_eps(tmp_path):
    from robustft.config import from_dict

    for quick in (False, True):
        for cfg in resolve_study(demo_study(quick), tmp_path)[1]:
            evaluation = from_dict(cfg).eval
            if evaluation.attack.step_size is not None and evaluation.eps:  # None: APGD's adaptive step
                assert evaluation.attack.steps * evaluation.attack.step_size >= max(evaluation.eps), cfg["name"]


def test_quick_is_the_same_study_on_less(tmp_path):
    full = {c["name"]: c for c in resolve_study(demo_study(), tmp_path)[1]}
    quick = {c["name"]: c for c in resolve_study(demo_study(quick=True), tmp_path)[1]}
    assert set(full) == set(quick)
    for name, cfg in quick.items():
        assert cfg["strategy"] == full[name]["strategy"] and cfg["objective"] == full[name]["objective"]
        assert relative_cost(cfg) < relative_cost(full[name]) / 3


def test_the_demo_runs_longest_first_by_what_their_parts_cost(tmp_path):
    """Paper B's full fine-tuning reference trains every weight for 124 steps: it costs more than a parameter-efficient
    run of 150 steps and must not be left to run alone at the end (it was, when cost was steps alone); linear
    probing, the cheapest update, goes last."""
    costs = {c["name"]: relative_cost(c) for c in resolve_study(demo_study(), tmp_path)[1]}
    order = sorted(costs, key=lambda name: -costs[name])
    assert order[:2] == ["b-fix", "b-scheduled"] and order[-1] == "a-linear"
    assert all(costs["b-standard"] > costs[f"a-{s}"] for s in ("bitfit", "lora", "ia3", "adapter", "compacter"))
    assert costs["a-full"] > costs["a-lora"] > costs["a-bitfit"] > costs["a-linear"]
    evaluated = resolve_study(demo_study(), tmp_path)[1][0]
    silent = {**evaluated, "eval": {**evaluated["eval"], "eps": [], "ood": False}}
    assert relative_cost(silent) < relative_cost(evaluated)  # its evaluation counts


def test_packaged_demo_configs_are_the_shipped_ones():
    shipped = sorted(p.relative_to(ROOT / "configs" / "demo") for p in (ROOT / "configs" / "demo").rglob("*.yaml"))
    package = ROOT / "src" / "robustft" / "sweep" / "study_configs" / "demo"
    assert shipped == sorted(p.relative_to(package) for p in package.rglob("*.yaml"))
    for relative in shipped:
        assert (package / relative).read_text() == (ROOT / "configs" / "demo" / relative).read_text(), relative
    assert "study_configs/**/*.yaml" in (ROOT / "pyproject.toml").read_text()  # installed by pip


def test_a_pip_install_uses_the_packaged_configs_and_says_what_is_missing(monkeypatch, tmp_path):
    import robustft.sweep.study as study_module

    fake = tmp_path / "site-packages" / "robustft" / "sweep" / "study.py"
    (fake.parent / "study_configs" / "demo").mkdir(parents=True)
    monkeypatch.setattr(study_module, "__file__", str(fake))
    assert shipped_configs("demo") == fake.parent / "study_configs" / "demo"
    with pytest.raises(Exception, match="clone the repository"):
        shipped_configs("paper_b_embedded")


@pytest.mark.parametrize("paper, scale, folder", [("paper-a", "embedded", "paper_a_embedded"),
                                                  ("paper-a", "full", "paper_a"),
                                                  ("paper-b", "embedded", "paper_b_embedded"),
                                                  ("paper-b", "full", "paper_b")])
def test_paper_studies_run_every_shipped_file_with_its_own_settings(paper, scale, folder, tmp_path):
    study = paper_study(paper, scale)
    files = {a.config.name for a in study.arms}
    shipped = {p.name for p in (ROOT / "configs" / folder).glob("*.yaml") if not p.name.startswith("_")}
    assert files == shipped
    _, configs = resolve_study(study, tmp_path)  # every arm validates
    if paper == "paper-b":
        # one standard fine-tuning reference per (model, dataset) at full scale; embedded: per (model, dataset,
        # eps_g), evaluated as the adversarial runs at that eps_g (2 backbones x 2 tasks x 3 eps_g)
        references = [c for c in configs if c["name"].endswith("-standard")]
        assert len(references) == (30 if scale == "full" else 12)
        for reference in references:
            assert reference["objective"]["name"] == "standard" and reference["eps"]["schedule"] == "zero"
        assert ("objective.name=standard", "eps.schedule=zero") == REFERENCE_OVERRIDES


def test_unknown_paper_or_scale_is_a_clear_error():
    with pytest.raises(ConfigError, match="paper-a or paper-b"):
        paper_study("paper-c")
    with pytest.raises(ConfigError, match="embedded or full"):
        paper_study("paper-a", "huge")


def test_progress_counts_runs_and_reads_steps_from_the_running_runs(tmp_path):
    configs = [{"name": "a", "output_dir": str(tmp_path), "train": {"steps": 100}, "objective": {"name": "standard"}},
               {"name": "b", "output_dir": str(tmp_path), "train": {"epochs": 2, "steps": None},
                "data": {"limit_train": 640}, "optim": {"batch_size": 64},
                "objective": {"name": "adversarial", "steps": 7}}]
    # no dataset named, so steps alone: 20 updates + 20 x 7 attack steps at 0.3 of an update each
    assert planned_steps(configs[1]) == 20 and relative_cost(configs[1]) == pytest.approx(20 * (1 + 7 * 0.3))
    # the demo's paper B runs: 2,000 images in batches of 64 are 31 full batches (the trainer drops the 32nd)
    demo_b = {"train": {"epochs": 4}, "data": {"limit_train": 2000}, "optim": {"batch_size": 64}}
    assert planned_steps(demo_b) == 124
    assert planned_steps({**demo_b, "optim": {"batch_size": 64, "accumulate": 2}}) == 60
    stream = io.StringIO()
    progress = StudyProgress(configs, stream=stream, live=False)

    class Point:
        name = "a"

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "lock").write_text(json.dumps({"pid": 1}) + "\n")  # a killed earlier attempt's holder
    os.utime(tmp_path / "a" / "lock", (time.time() - 60, time.time() - 60))
    progress.update("start", Point())
    (tmp_path / "a" / "metrics.jsonl").write_text(json.dumps({"step": 0}) + "\n" + json.dumps({"step": 50}) + "\n")
    assert last_step(tmp_path / "a") == 50
    with open(tmp_path / "a" / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 60, "val')  # a writer mid-line: the last complete record's step
    assert last_step(tmp_path / "a") == 50
    # handed to the executor, but no process holds its lock yet (Ray submits every run at once): queued
    assert "1 queued" in progress.line() and "running" not in progress.line()
    assert progress.fraction() == 0.0
    (tmp_path / "a" / "lock").write_text(json.dumps({"pid": 2}) + "\n")  # the trainer took the lock
    progress._refresh()
    assert "started a" in stream.getvalue() and "queued" not in progress.line()
    assert progress.fraction() == pytest.approx(50 / (100 + 62))
    assert "[0/2 runs] running a 50/100" in progress.line()

    class Result:
        name, status, error = "a", "finished", None

    class Stopped:
        name, status, error = "a", "interrupted", None

    progress.update("done", Stopped())  # stopped by a signal: not counted as done, no longer running
    assert "[0/2 runs]" in progress.line() and "running" not in progress.line()
    progress.update("start", Point())
    progress.update("done", Result())
    assert progress.fraction() == pytest.approx(100 / 162) and "[1/2 runs]" in progress.line()
    assert "finished a" in stream.getvalue() and "left" in progress.line()


def test_curve_at_final_evaluates_the_robust_curve_of_the_final_model_only():
    class Data:
        def __init__(self) -> None:
            generator = torch.Generator().manual_seed(0)
            self.images = torch.rand(16, 3, 16, 16, generator=generator)
            self.labels = torch.randint(0, 4, (16,), generator=generator)

        def __len__(self) -> int:
            return 16

        def __getitem__(self, i):
            return self.images[i], int(self.labels[i])

    settings = {"subset": 16, "batch_size": 16, "splits": ["test"], "eps": [], "curve": "2/255",
                "attack": {"name": "pgd", "steps": 2, "step_size": "1/255"}, "final": {"name": "fgsm"}}
    model = tiny_cnn(4)
    for curve_at, expected in (("every", True), ("final", False)):
        evaluator = Evaluator({"test": Data()}, {}, section_from_dict("eval", {**settings, "curve_at": curve_at}), 0,
                              torch.device("cpu"))
        during = {r["metric"] for r in evaluator(model, step=1, epoch=0.1)}
        at_end = {r["metric"] for r in evaluator(model, step=2, epoch=0.2, final=True)}
        assert ("curve_accuracy" in during) is expected and ("expected_robustness" in during) is expected
        assert {"curve_accuracy", "expected_robustness"} <= at_end
    assert load_config(None, ["eval.curve_at=final"]).eval.curve_at == "final"
    with pytest.raises(ConfigError):
        load_config(None, ["eval.curve_at=sometimes"])
