"""`robustft reproduce ... --scale full`: the papers' grids, selecting part of them, `--plan` and `--tune`.

The expected grids are written out here from the papers' protocols (paper A: Li et al., ICCV 2025; paper B:
Ngnawé et al., ICLR 2026), independently of robustft.sweep.paper_grid's tables.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from robustft.cli import main
from robustft.errors import ConfigError
from robustft.sweep.paper_grid import GRIDS, grid_runs
from robustft.sweep.study import paper_study, resolve_study

STRATEGIES = ["full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter"]
A_ADVERSARIAL = ["cifar10", "cifar100", "caltech256", "cub200", "stanford-dogs"]
DOMAINS = ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]
B_MODELS = ["vit-augreg", "swin-b", "convnext-b", "resnet50-a1", "clip-vit-b16", "clip-convnext-b"]
B_DATASETS = ["cub200", "stanford-dogs", "caltech256", "stanford-cars", "fgvc-aircraft"]
B_SCHEDULES = ["fix", "scheduled", "linear", "uniform", "auto"]
B_EPS = ["4_255", "8_255"]


def expected_a() -> set[str]:
    datasets = [*A_ADVERSARIAL, *(f"domainnet-{d}" for d in DOMAINS)]
    return {f"a-{d}-{s}" for d, s in itertools.product(datasets, STRATEGIES)}


def expected_b(models=B_MODELS, datasets=B_DATASETS, eps=B_EPS, schedules=B_SCHEDULES, standard=True) -> set[str]:
    runs = {f"b-{m}-{d}-{e}-{s}" for m, d, e, s in itertools.product(models, datasets, eps, schedules)}
    return runs | ({f"b-{m}-{d}-standard" for m, d in itertools.product(models, datasets)} if standard else set())


def plan_of(capsys, *argv: str) -> tuple[str, list[str]]:
    """Runs `robustft reproduce ... --plan` and returns its stdout and the run names of its table."""
    assert main(["reproduce", *argv, "--scale", "full", "--plan"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if re.match(r"^\s*[ab]-\S+\s", line)]
    return out, names


def total_hours(out: str) -> float:
    return float(re.search(r"^total: \d+ runs?, ([\d.]+) GPU-hours", out, re.M).group(1))


def test_paper_a_plan_lists_its_77_runs_with_a_gpu_hour_total_and_the_calibration_used(capsys):
    out, names = plan_of(capsys, "paper-a")
    assert len(expected_a()) == 7 * 5 + 7 * 6 == 77
    assert sorted(names) == sorted(expected_a())
    assert "77 runs" in out and total_hours(out) > 0
    assert "calibration: the shipped reference table" in out and "rtx3090.csv" in out


def test_paper_b_plan_lists_its_330_runs_one_reference_per_configuration(capsys):
    out, names = plan_of(capsys, "paper-b")
    assert len(expected_b()) == 6 * 5 * (5 * 2 + 1) == 330
    assert sorted(names) == sorted(expected_b())
    assert "total: 330 runs" in out and total_hours(out) > 0
    assert "clip-convnext-b = model.name timm:convnext_base.clip_laion2b" in out


def test_selection_flags_narrow_the_grid(capsys):
    _, names = plan_of(capsys, "paper-b", "--models", "swin-b,resnet50-a1", "--datasets", "cub200",
                       "--eps", "8/255", "--schedules", "fix,scheduled,standard")
    assert sorted(names) == sorted(expected_b(["swin-b", "resnet50-a1"], ["cub200"], ["8_255"],
                                              ["fix", "scheduled"]))
    _, names = plan_of(capsys, "paper-b", "--models", "resnet50-a1", "--datasets", "imagenette",
                       "--eps", "0.0039215686", "--schedules", "fix")  # extras and eps written as a decimal
    assert names == ["b-resnet50-a1-imagenette-1_255-fix"]
    _, names = plan_of(capsys, "paper-a", "--datasets", "domainnet-real,cifar10", "--strategies", "lora")
    assert names == ["a-cifar10-lora", "a-domainnet-real-lora"]
    _, names = plan_of(capsys, "paper-a", "--eps", "clean")
    assert sorted(names) == sorted(n for n in expected_a() if "domainnet" in n)


def test_a_selection_costs_what_its_runs_cost_in_the_full_plan(capsys):
    full, _ = plan_of(capsys, "paper-b", "--models", "resnet50-a1", "--datasets", "cub200")
    part, _ = plan_of(capsys, "paper-b", "--models", "resnet50-a1", "--datasets", "cub200", "--schedules", "fix")
    rows = {line.split()[0]: float(line.split()[-1]) for line in full.splitlines() if line.strip().startswith("b-")}
    assert total_hours(part) == pytest.approx(sum(v for k, v in rows.items() if k.endswith("-fix")), abs=0.02)


@pytest.mark.parametrize("argv, expected", [
    (["paper-b", "--scale", "full", "--plan", "--models", "vit-huge"], ["vit-huge", "vit-augreg", "clip-convnext-b"]),
    (["paper-a", "--scale", "full", "--plan", "--schedules", "fix"], ["'fix'", "standard"]),
    (["paper-b", "--scale", "full", "--plan", "--eps", "16/255"], ["16/255", "4/255", "9/255 (extra)"]),
    (["paper-a", "--scale", "full", "--plan", "--datasets", "domainnet-real", "--eps", "1/255"], ["no run"]),
    (["paper-b", "--models", "swin-b"], ["--scale embedded has no models value 'swin-b'", "vit-s-dinov2"]),
    (["paper-b", "--plan", "--calibrate"], ["Drop --calibrate"]),
    (["paper-b", "--scale", "full", "--calibrate"], ["add --plan"]),
])
def test_bad_selections_are_clear_errors(argv, expected, capsys, monkeypatch):
    import robustft.cli.study_run as study_run

    def must_not_run(*args, **kwargs):
        raise AssertionError("a bad selection reached the study")

    monkeypatch.setattr(study_run, "execute", must_not_run)  # a broken check fails fast instead of training
    assert main(["reproduce", *argv]) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err


def test_grid_values_are_registered_dataset_names_and_timm_ids():
    import timm

    from robustft.data.loading import resolve_source

    registered_elsewhere = {"cub200", "stanford-dogs"}  # their loaders come with the dataset-loader branch
    for grid in GRIDS.values():
        for value in grid["datasets"]:
            if value.value not in registered_elsewhere:
                resolve_source(value.value)  # an unknown name raises
    for value in GRIDS["paper-b"]["models"]:
        name = value.value.removeprefix("timm:")
        assert name in timm.list_pretrained(name), name  # architecture and pretrained tag both exist


def test_every_grid_config_resolves_and_sets_what_its_axes_say(tmp_path):
    study = paper_study("paper-b", "full", {"models": ["swin-b"], "datasets": ["cub200"], "eps": ["4/255", "8/255"]})
    _, configs = resolve_study(study, tmp_path)
    by_name = {c["name"]: c for c in configs}
    scheduled = by_name["b-swin-b-cub200-8_255-scheduled"]
    assert scheduled["model"]["name"] == "timm:swin_base_patch4_window7_224.ms_in22k_ft_in1k"
    assert (scheduled["eps"]["value"], scheduled["eval"]["eps"], scheduled["eval"]["curve"]) == ("8/255", ["8/255"],
                                                                                               "8/255")
    reference = by_name["b-swin-b-cub200-standard"]
    assert reference["objective"]["name"] == "standard"
    assert reference["eval"]["eps"] == ["4/255", "8/255"] and reference["eval"]["curve"] == "8/255"
    (run,) = grid_runs("paper-a", Path("configs/paper_a"), {"datasets": ["domainnet-painting"], "strategies": ["lora"]})
    assert "eval.eps=[]" in run.overrides
    ood = next(o for o in run.overrides if o.startswith("data.ood="))
    assert sorted(ood.removeprefix("data.ood=[").rstrip("]").split(",")) == sorted(
        f"domainnet:{d}" for d in DOMAINS if d != "painting")


def test_an_unknown_axis_is_refused():
    with pytest.raises(ConfigError, match="not a grid axis"):
        grid_runs("paper-b", Path("configs/paper_b"), {"backbones": ["swin-b"]})


def test_calibrate_probes_each_selected_backbone_and_says_so(monkeypatch, capsys):
    import robustft.sweep.cost_probe as cost_probe

    monkeypatch.setattr(cost_probe, "PROBE_SIZE", 32)  # the real path on CPU, small enough for a test
    probed = []
    real = cost_probe.probe
    monkeypatch.setattr(cost_probe, "probe", lambda arch, **kw: probed.append(arch) or real(arch, **{**kw,
                                                                                                    "repeats": 1}))
    out, names = plan_of(capsys, "paper-b", "--models", "resnet50-a1", "--datasets", "cub200", "--schedules", "fix",
                         "--eps", "8/255", "--calibrate")
    assert probed == ["resnet50"] and names == ["b-resnet50-a1-cub200-8_255-fix"]
    assert "calibration: measured on this machine's cpu by a probe" in out and "at 32 px" in out
    assert total_hours(out) > 0


def test_plan_with_tune_adds_one_asha_search_per_run(capsys):
    from robustft.sweep.cost_model import asha_runs
    from robustft.sweep.plan import tune_budget

    out, _ = plan_of(capsys, "paper-b", "--models", "resnet50-a1", "--datasets", "cub200", "--schedules", "fix",
                     "--eps", "8/255", "--tune", "--tune-trials", "9")
    line = next(line for line in out.splitlines() if line.strip().startswith("b-"))
    hours, tune_hours = (float(v) for v in line.split()[-2:])
    budget = tune_budget(9)
    assert budget.trials == 9
    assert tune_hours == pytest.approx(hours * asha_runs(9, 50, 1, budget.reduction_factor), abs=0.02)
    assert "ASHA searches (one per run: 9 trials" in out


class FakeResult:
    def __init__(self, lr: float) -> None:
        self.best_values = {"optim.lr": lr, "optim.weight_decay": 0.01}


def test_tune_searches_each_run_on_the_study_cluster_then_trains_the_best(monkeypatch, tmp_path):
    import robustft.cli.study_run as study_run
    import robustft.sweep.tune as tune

    calls, trained = [], []

    def fake_tune(config, search=None, **options):
        calls.append((Path(config).name, options))
        where = Path(options["output_dir"])
        where.mkdir(parents=True)
        (where / "tune.json").write_text(json.dumps({"config": str(config), "fixed": list(options["fixed"])}))
        (where / "best.json").write_text(json.dumps({"values": {"optim.lr": 1e-4 * len(calls)}}))
        return FakeResult(1e-4 * len(calls))

    monkeypatch.setattr(tune, "run_tune", fake_tune)
    monkeypatch.setattr(study_run, "execute", lambda study, out, **kw: trained.append(study) or 0)
    argv = ["reproduce", "paper-b", "train.epochs=2", "--tune", "--tune-trials", "4", "--ray-address", "ray://head:1",
            "--gpus-per-run", "0.5", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    arms = trained[0].arms
    assert [c[0] for c in calls] == [a.config.name for a in arms]  # one search per run, from its own config
    for (_, options), arm in zip(calls, arms, strict=True):
        assert options["output_dir"] == tmp_path / "tune" / arm.name
        assert (options["address"], options["gpus_per_trial"], options["trials"]) == ("ray://head:1", 0.5, 4)
        assert options["fixed"][-1] == "train.epochs=2"
    assert arms[1].overrides[-2:] == ("optim.lr=0.0002", "optim.weight_decay=0.01")
    # Re-running reuses the finished searches (same config and overrides) and trains the same values.
    calls.clear()
    assert main(argv) == 0
    assert calls == [] and trained[1].arms[1].overrides[-1] == "optim.lr=0.0002"


def test_reproduce_hands_its_store_to_the_sweep(tmp_path, monkeypatch):
    """``reproduce --executor ray --storage URI`` writes the runs into the store every node reaches, as ``sweep
    --storage`` does (kills: the option parsed but not passed on to ``run_points``)."""
    from robustft.sweep import runner

    seen = []

    def fake_run_points(points, configs, out, **options):
        seen.append(options)
        raise SystemExit(0)  # what was asked is all this test checks; nothing trains

    monkeypatch.setattr(runner, "run_points", fake_run_points)
    monkeypatch.setattr("robustft.sweep.study.run_points", fake_run_points)
    with pytest.raises(SystemExit):
        main(["reproduce", "paper-b", "--executor", "ray", "--storage", "file:///shared/sweep", "--quiet",
              "--output-dir", str(tmp_path)])
    assert seen and seen[0]["storage"] == "file:///shared/sweep" and seen[0]["executor"] == "ray"


def test_a_store_without_ray_is_refused_with_the_fix(tmp_path, capsys):
    assert main(["reproduce", "paper-b", "--storage", "file:///shared/sweep", "--output-dir", str(tmp_path)]) == 2
    assert "add --executor ray" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
