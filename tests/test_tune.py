"""``robustft tune``: search spaces checked before Ray starts; ASHA on Ray Tune finds a better lr and stops trials
early; a re-run resumes; best.yaml trains. One Ray instance for the module (2 CPUs)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import robustft
from robustft.config import load_config
from robustft.errors import ConfigError, RobustftError
from robustft.sweep.tune import run_tune
from robustft.sweep.tune_space import Distribution, check_search, parse_distribution, parse_search

TINY = """
name: tiny
output_dir: {out}
seed: 0
device: cpu
model: {{name: tiny-cnn, pretrained: false, image_size: 16}}
data: {{name: digits, image_size: 16, limit_train: 256, limit_val: 64, limit_test: 32}}
strategy: {{name: full}}
objective: {{name: standard}}
eps: {{schedule: zero}}
optim: {{batch_size: 32, lr: 1.0e-6, warmup: 0}}
train: {{steps: 24}}
eval: {{schedule: "every:4", subset: 64, batch_size: 64, splits: [val], eps: [1/255], final: null, ood: false}}
logging: {{progress: false}}
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(out=tmp_path / "runs"))
    return path


def test_distributions_parse():
    assert parse_distribution("loguniform:1e-5:1e-1") == Distribution("loguniform", 1e-5, 1e-1)
    assert parse_distribution("uniform:0:4/255") == Distribution("uniform", 0.0, 4 / 255)
    assert parse_distribution("choice:full,lora,[a,b]").choices == ("full", "lora", "[a,b]")
    assert list(parse_search([])) == ["optim.lr", "optim.weight_decay"]  # the clean-accuracy protocol's space
    assert parse_search([])["optim.lr"] == Distribution("loguniform", 1e-5, 1e-1)


@pytest.mark.parametrize(("text", "message"), [
    ("normal:0:1", "unknown distribution"), ("loguniform:0:1", "positive"), ("uniform:1:0", "lower bound"),
    ("uniform:1", "two bounds"), ("uniform:a:1", "not a number"), ("choice:", "needs values"),
])
def test_bad_distributions_are_clear_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_distribution(text)


def test_bad_search_items():
    for items, message in ((["optim.lr"], "KEY=DIST"), (["optim.lr=uniform:0:1", "optim.lr=uniform:0:2"], "twice")):
        with pytest.raises(ConfigError, match=message):
            parse_search(items)


def test_search_values_are_validated_against_the_config(tmp_path):
    config = write_config(tmp_path)
    with pytest.raises(ConfigError, match="optim.lrr"):
        check_search(config, parse_search(["optim.lrr=loguniform:1e-4:1e-1"]), [], "val/clean/accuracy")
    with pytest.raises(ConfigError, match="optim.weight_decay"):
        check_search(config, parse_search(["optim.weight_decay=uniform:-1:1"]), [], "val/clean/accuracy")
    with pytest.raises(ConfigError, match="--metric"):
        check_search(config, parse_search([]), [], "test/clean/accuracy")  # test is not evaluated


def test_cli_refuses_a_bad_space_before_ray_starts(tmp_path, capsys):
    from robustft.cli import main

    config = write_config(tmp_path)
    assert main(["tune", str(config), "--search", "optim.lr=loguniform:-1:1"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["tune", str(config), "--search", "optim.lr=uniform:0:1", "--grace-period", "99"]) == 2
    assert not (tmp_path / "runs" / "tiny-tune").exists()  # nothing written, no Ray started


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray Tune is in the dev extra: pip install 'robustft[ray]'")
    pytest.importorskip("ray.tune")
    # Workers import robustft from this tree and keep the working directory (absolute paths everywhere).
    source = str(Path(robustft.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_asha_finds_a_better_lr_stops_early_and_resumes(tmp_path, ray_instance):
    config = write_config(tmp_path)
    out = tmp_path / "search"
    search = parse_search(["optim.lr=loguniform:1e-4:3e-1"])
    # cpus_per_trial=2 on the 2-CPU instance: one trial at a time, so the trials reach each rung in a fixed order.
    # Concurrent trials reach it in an order set by timing, and asynchronous HyperBand never stops a trial that
    # is first at a rung or better than all before it: in a loaded CI run every trial could then run to the end.
    settings = dict(trials=6, grace_period=4, reduction_factor=2, seed=0, cpus_per_trial=2)
    result = run_tune(config, search, output_dir=out, **settings)
    trials = result.trials
    assert len(trials) == 6
    start = trials[np.isclose(trials["optim.lr"], 1e-6)]  # the config's own (bad) value is the first trial
    assert len(start) == 1
    assert result.best_values["optim.lr"] != pytest.approx(1e-6)
    assert result.best_metric > float(start["metric"].iloc[0]) + 0.1
    # ASHA stopped some trials before their budget: fewer steps than 6 trials x 24 steps.
    assert result.steps_full == 6 * 24
    assert (~trials["completed"]).any() and result.steps_run < result.steps_full
    # best.yaml is the base config with the best lr, ready for `robustft train`; the trial budget is not in it.
    best = load_config(result.best_yaml)
    assert best.optim.lr == pytest.approx(result.best_values["optim.lr"]) and best.name == "tiny-tuned"

    # A re-run restores the search instead of starting over: no trial trains again.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/metrics.jsonl")}
    again = run_tune(config, search, output_dir=out, **settings)
    assert again.best_values == result.best_values and len(again.trials) == 6
    assert {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/metrics.jsonl")} == stamps
    with pytest.raises(RobustftError, match="other settings"):
        run_tune(config, search, output_dir=out, **{**settings, "trials": 7})

    from robustft.training.trainer import train

    trained = train(result.best_yaml, [f"output_dir={tmp_path / 'final'}", "train.steps=4"], quiet=True)
    assert (trained.path / "summary.json").is_file()


def test_trainer_calls_on_evaluation_after_every_evaluation(tmp_path):
    from robustft.training.trainer import build_trainer

    trainer = build_trainer(write_config(tmp_path), ["train.steps=8"], quiet=True)
    seen = []
    trainer.on_evaluation = lambda step, epoch, values: seen.append((step, values["val/clean/accuracy"]))
    trainer.execute()
    assert [step for step, _ in seen] == [0, 4, 8]
    assert all(0.0 <= value <= 1.0 for _, value in seen)
    # called after the checkpoint: what ASHA saw can be resumed from
    assert (trainer.run.path / "checkpoints" / "last.pt").is_file()


def test_an_interrupted_trial_reports_what_it_has_and_resumes(tmp_path, monkeypatch):
    """What a restored search does with a trial that was cut short: no step trained twice, none lost."""
    tune = pytest.importorskip("ray.tune")
    from robustft.runs import Run
    from robustft.sweep.tune import _trial

    reported = []

    class StopSearchError(Exception):
        pass

    def report(metrics):
        reported.append(metrics["step"])
        if metrics["step"] == 4 and reported.count(4) == 1:
            raise StopSearchError  # the search dies after the checkpoint of step 4

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_context", lambda: type("C", (), {"get_trial_id": lambda self: "t1"})())
    base = load_config(write_config(tmp_path))
    from robustft.config import to_dict

    kwargs = dict(base=to_dict(base), budget=["train.steps=8"], trials_dir=str(tmp_path / "trials"),
                  metric="val/clean/accuracy", threads=1)
    with pytest.raises(StopSearchError):
        _trial({"optim.lr": 0.01}, **kwargs)
    assert reported == [0, 4]
    _trial({"optim.lr": 0.01}, **kwargs)
    assert reported == [0, 4, 0, 4, 8]  # steps 0 and 4 re-reported from metrics.jsonl, then 8 trained
    records = Run(tmp_path / "trials" / "t1").read_records()
    clean = [r["step"] for r in records if (r["split"], r["metric"], r["attack"]) == ("val", "accuracy", "clean")]
    assert clean == [0, 4, 8]
    assert load_config(tmp_path / "trials" / "t1" / "config.yaml").optim.lr == pytest.approx(0.01)


def test_a_trial_stopped_at_its_last_rung_has_its_summary(tmp_path, monkeypatch):
    """ASHA may stop a trial at the budget's rung, i.e. in its last report: the run must be complete by then."""
    tune = pytest.importorskip("ray.tune")
    from robustft.config import to_dict
    from robustft.sweep.tune import _trial

    trial_dir = tmp_path / "trials" / "t1"
    seen = []

    class StoppedByASHAError(Exception):
        pass

    def report(metrics):
        seen.append((metrics["step"], (trial_dir / "summary.json").is_file()))
        if metrics["step"] == 8:
            raise StoppedByASHAError  # what Ray does to a function trainable it stops: the report does not return

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_context", lambda: type("C", (), {"get_trial_id": lambda self: "t1"})())
    base = load_config(write_config(tmp_path))
    with pytest.raises(StoppedByASHAError):
        _trial({"optim.lr": 0.01}, base=to_dict(base), budget=["train.steps=8"], trials_dir=str(tmp_path / "trials"),
               metric="val/clean/accuracy", threads=1)
    # the last report came after the summary (and the final checkpoint) were written
    assert seen == [(0, False), (4, False), (8, True)]


@pytest.mark.slow
@pytest.mark.needs_assets
def test_tune_on_the_embedded_default_beats_a_bad_lr(tmp_path, ray_instance):
    """The embedded default (MobileNetV2 on Fashion-MNIST) with a tiny budget and a deliberately bad lr."""
    fixed = [f"output_dir={tmp_path}", "device=cpu", "optim.lr=1e-7", "optim.batch_size=32", "optim.warmup=0",
             "data.limit_train=320", "data.limit_val=64", "data.ood=[]", "eval.splits=[val]", "eval.subset=64",
             "eval.schedule=every:5", "eval.curve=null", "eval.ood=false", "eval.final=null", "logging.progress=false"]
    result = run_tune("configs/demo.yaml", parse_search(["optim.lr=loguniform:1e-4:1e-2"]), fixed=fixed,
                      output_dir=tmp_path / "search", trials=3, steps=10, grace_period=5, reduction_factor=2)
    start = result.trials[np.isclose(result.trials["optim.lr"], 1e-7)]
    assert result.best_metric > float(start["metric"].iloc[0])
    assert load_config(result.best_yaml).optim.lr == pytest.approx(result.best_values["optim.lr"])


def _stop_before_ray(monkeypatch):
    """run_tune up to the point where it would start Ray (tune.json is written by then)."""
    pytest.importorskip("ray.tune")
    import robustft.sweep.tune as tune_module

    class RayStartedError(Exception):
        pass

    def start_ray(address, cpus):
        raise RayStartedError

    monkeypatch.setattr(tune_module, "_start_ray", start_ray)
    return RayStartedError


def test_a_rerun_with_another_search_or_metric_is_refused(tmp_path, monkeypatch, capsys):
    """The same --output-dir with another --search or --metric would mix two searches in one Ray experiment:
    refused before Ray starts, naming what differs and the fix; the stored search is left as it was."""
    from robustft.cli import main

    ray_started = _stop_before_ray(monkeypatch)
    config, out = write_config(tmp_path), tmp_path / "search"

    def argv(space="optim.lr=loguniform:1e-4:1e-1", metric="val/clean/accuracy", steps="8"):
        return ["tune", str(config), "--search", space, "--metric", metric, "--steps", steps, "--output-dir", str(out)]

    with pytest.raises(ray_started):
        main(argv())
    stored = (out / "tune.json").read_text()
    with pytest.raises(ray_started):  # the same settings: accepted (this is how a search is resumed)
        main(argv())
    for changed, what in (({"space": "optim.lr=loguniform:1e-3:1e-1"}, "search"),
                          ({"metric": "val/clean/loss"}, "metric"), ({"steps": "9"}, "budget")):
        assert main(argv(**changed)) == 2
        err = capsys.readouterr().err
        assert f"{what}:" in err and "another --output-dir" in err and "resume" in err, err
    assert (out / "tune.json").read_text() == stored


def _write_history(run_dir: Path, scores: list[float], every: int = 4) -> None:
    run_dir.mkdir(parents=True)
    lines = [{"step": i * every, "epoch": i * every / 8, "split": "val", "metric": "accuracy", "attack": None,
              "eps": None, "value": score} for i, score in enumerate(scores)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_restored_asha_keeps_the_rungs_of_the_trials_that_ended(tmp_path):
    """Ray Tune restores the scheduler as it was pickled at the start (empty rungs). ResumableASHA refills the
    rungs from the ended trials' metrics.jsonl, so the restored search stops a trial that is behind exactly as
    the uninterrupted one would; Ray's own ASHA, restored, lets it through."""
    pytest.importorskip("ray.tune")
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from robustft.sweep.tune_resume import ResumableASHA

    histories = {"a_00000": [0.1, 0.5, 0.7, 0.8, 0.9], "a_00001": [0.1, 0.6, 0.8, 0.85, 0.9],
                 "a_00002": [0.1, 0.2]}  # a_00002: stopped by ASHA at step 4
    for trial_id, scores in histories.items():
        _write_history(tmp_path / trial_id, scores)
    options = dict(time_attr="step", max_t=16, grace_period=4, reduction_factor=2)

    def scheduler(kind=ResumableASHA):
        made = kind(str(tmp_path), "val/clean/accuracy", **options) if kind is ResumableASHA else kind(**options)
        made.set_search_properties("score", "max")
        return made

    live = scheduler()
    for trial_id, scores in histories.items():
        trial = SimpleNamespace(trial_id=trial_id, status="RUNNING")
        live.on_trial_add(None, trial)
        results = [{"score": s, "step": 4 * i} for i, s in enumerate(scores)]
        for result in results:
            live.on_trial_result(None, trial, result)
        live.on_trial_complete(None, trial, results[-1])

    def rungs(made):
        return [(milestone, dict(recorded)) for milestone, recorded in made._brackets[0]._rungs]

    restored, plain = scheduler(), scheduler(ASHAScheduler)
    for trial_id in histories:
        for made in (restored, plain):
            made.on_trial_add(None, SimpleNamespace(trial_id=trial_id, status="TERMINATED"))
    assert rungs(restored) == rungs(live) and rungs(live)[-1][1]["a_00002"] == 0.2
    assert sorted(restored.replayed) == sorted(histories)
    behind = {"score": 0.3, "step": 8}
    decisions = []
    for made in (live, restored, plain):
        trial = SimpleNamespace(trial_id="a_00003", status="PENDING")
        made.on_trial_add(None, trial)
        made.on_trial_result(None, trial, {"score": 0.55, "step": 4})
        decisions.append(made.on_trial_result(None, trial, behind))
    assert decisions == [TrialScheduler.STOP, TrialScheduler.STOP, TrialScheduler.CONTINUE]


def test_the_head_and_the_body_get_their_own_lr_and_weight_decay(tmp_path):
    """Paper B's protocol tunes the backbone's and the head's lr and decay apart (optim.head_lr,
    optim.head_weight_decay): each AdamW group carries its own, from the config."""
    from robustft.training.trainer import build_trainer

    trainer = build_trainer(write_config(tmp_path), ["optim.lr=1e-4", "optim.head_lr=3e-2", "optim.weight_decay=1e-3",
                                                     "optim.head_weight_decay=5e-6"], quiet=True)
    groups = {group["name"]: group for group in trainer.optimizer.param_groups}
    head = {id(p) for p in trainer.model.backbone.classifier.parameters()}
    assert {id(p) for name in ("head/decay", "head/no_decay") for p in groups[name]["params"]} == head
    assert groups["head/decay"]["lr"] == groups["head/no_decay"]["lr"] == 3e-2
    assert groups["body/decay"]["lr"] == groups["body/no_decay"]["lr"] == 1e-4
    assert groups["head/decay"]["weight_decay"] == 5e-6 and groups["body/decay"]["weight_decay"] == 1e-3
    assert groups["head/no_decay"]["weight_decay"] == groups["body/no_decay"]["weight_decay"] == 0.0
    trainer.run.unlock()
    unset = build_trainer(write_config(tmp_path), ["optim.lr=1e-4", "optim.weight_decay=1e-3", "name=unset"],
                          quiet=True)
    groups = {group["name"]: group for group in unset.optimizer.param_groups}
    assert groups["head/decay"]["lr"] == 1e-4 and groups["head/decay"]["weight_decay"] == 1e-3  # None: the body's
    unset.run.unlock()


ADVERSARIAL = [
    "objective.name=adversarial", "objective.attack=fgsm", "eps.schedule=constant", "eps.value=8/255",
    "eval.attack.name=fgsm", "eval.eps=[8/255]"]


def write_adversarial_config(tmp_path: Path) -> Path:
    """TINY adversarially trained (FGSM at 8/255, evaluated with FGSM at 8/255): the paper-b protocol's default."""
    import yaml

    from robustft.config import to_dict

    path = tmp_path / "adversarial.yaml"
    path.write_text(yaml.safe_dump(to_dict(load_config(write_config(tmp_path), ADVERSARIAL))))
    return path


def test_paper_b_protocol_is_the_authors_search_and_the_default_for_adversarial_configs(tmp_path):
    """Paper B's authors (MaxHeuillet/robust_training, utils/hp_opt.py): lr1 / lr2 on loguniform(1e-6, 1e-1),
    weight_decay1 / 2 on loguniform(1e-6, 1e-2), the cosine scheduler on or off, ASHA reduction factor 2, the
    validation loss minimised (adversarial under adversarial training)."""
    from robustft.sweep.tune_protocol import protocol

    adversarial, standard = load_config(write_adversarial_config(tmp_path)), load_config(write_config(tmp_path))
    preset = protocol(None, adversarial)
    assert (preset.name, preset.metric, preset.mode, preset.reduction_factor) == (
        "paper-b", "val/fgsm/loss@8/255", "min", 2)
    space = parse_search(preset.search)
    assert space == {"optim.lr": Distribution("loguniform", 1e-6, 1e-1),
                     "optim.head_lr": Distribution("loguniform", 1e-6, 1e-1),
                     "optim.weight_decay": Distribution("loguniform", 1e-6, 1e-2),
                     "optim.head_weight_decay": Distribution("loguniform", 1e-6, 1e-2),
                     "optim.lr_schedule": Distribution("choice", choices=("cosine", "constant"))}
    check_search(write_adversarial_config(tmp_path), space, [], preset.metric)  # every value makes a valid config
    assert protocol("paper-b", standard).metric == "val/clean/loss"  # their CE runs minimise the clean loss
    probe = protocol("paper-b", load_config(write_config(tmp_path), ["strategy.name=linear"]))
    assert list(parse_search(probe.search)) == ["optim.head_lr", "optim.head_weight_decay", "optim.lr_schedule"]
    kept = protocol(None, standard)  # standard fine-tuning keeps robustft's earlier search
    assert (kept.name, kept.metric, kept.mode, kept.reduction_factor) == ("clean-accuracy", "val/clean/accuracy",
                                                                          "max", 3)
    assert protocol("clean-accuracy", adversarial) == kept
    with pytest.raises(ConfigError, match="paper-b or clean-accuracy"):
        protocol("paper-c", standard)


def test_the_cli_protocol_reaches_the_search(tmp_path, monkeypatch):
    """What `robustft tune` hands Ray: paper-b for an adversarial config by default, --protocol clean-accuracy
    as before, and the first trial starting from the config's own values (an unset head lr from the body's)."""
    from robustft.cli import main

    ray_started = _stop_before_ray(monkeypatch)
    config = write_adversarial_config(tmp_path)
    for extra, expected in (([], ("val/fgsm/loss@8/255", "min", 2, 5)),
                            (["--protocol", "clean-accuracy"], ("val/clean/accuracy", "max", 3, 2))):
        out = tmp_path / f"search{len(extra)}"
        with pytest.raises(ray_started):
            main(["tune", str(config), "--steps", "8", "--output-dir", str(out), *extra])
        spec = json.loads((out / "tune.json").read_text())
        assert (spec["metric"], spec["mode"], spec["reduction_factor"], len(spec["search"])) == expected
    assert main(["tune", str(config), "--protocol", "paper-c"]) == 2


def test_the_first_trial_starts_from_the_configs_values():
    from robustft.sweep.tune import _start_point

    base = {"optim": {"lr": 3e-4, "head_lr": None, "weight_decay": 0.05, "head_weight_decay": 1e-3}}
    assert _start_point(base, ["optim.lr", "optim.head_lr", "optim.head_weight_decay"]) == {
        "optim.lr": 3e-4, "optim.head_lr": 3e-4, "optim.head_weight_decay": 1e-3}


def test_a_paper_b_trial_reports_the_validation_adversarial_loss(tmp_path, monkeypatch):
    """The trial config records val/<attack>/loss@eps (eval.loss=[val] added for the trials only) and the trial
    reports exactly those values to ASHA."""
    tune = pytest.importorskip("ray.tune")
    from robustft.config import to_dict
    from robustft.runs import Run
    from robustft.sweep.tune import _trial
    from robustft.sweep.tune_space import metric_overrides

    metric = "val/fgsm/loss@8/255"
    base = load_config(write_adversarial_config(tmp_path))
    added = metric_overrides(base, metric)
    assert added == ["eval.loss=[val]"]
    reported = []
    monkeypatch.setattr(tune, "report", lambda metrics: reported.append((metrics["step"], metrics["score"])))
    monkeypatch.setattr(tune, "get_context", lambda: type("C", (), {"get_trial_id": lambda self: "t1"})())
    trial_base = to_dict(load_config(write_adversarial_config(tmp_path), added))
    _trial({"optim.head_lr": 0.01}, base=trial_base, budget=["train.steps=8"], trials_dir=str(tmp_path / "trials"),
           metric=metric, threads=1)
    records = Run(tmp_path / "trials" / "t1").read_records()
    losses = [(r["step"], r["value"]) for r in records
              if (r["split"], r["metric"], r["attack"]) == ("val", "loss", "fgsm")]
    assert reported == losses and [step for step, _ in losses] == [0, 4, 8]
    assert all(value > 0 for _, value in losses)


@pytest.mark.parametrize("config", sorted(str(p) for p in Path("configs").glob("paper_a*/[!_]*.yaml")))
def test_paper_a_configs_tune_on_the_validation_split_they_hold_out(config, tmp_path, monkeypatch):
    """Paper A holds out 10% of train (data.val_fraction=0.1) and evaluates train and test only: the trials add the
    validation split they tune on (not best.yaml); `robustft tune` gets as far as starting Ray."""
    from robustft.cli import main
    from robustft.sweep.tune_space import metric_overrides

    cfg = load_config(config)
    added = metric_overrides(cfg, "val/clean/accuracy")
    assert added == ([] if "val" in cfg.eval.splits else [f"eval.splits=[{','.join([*cfg.eval.splits, 'val'])}]"])
    ray_started = _stop_before_ray(monkeypatch)
    tune = pytest.importorskip("ray.tune")
    handed = {}
    with_parameters = tune.with_parameters
    monkeypatch.setattr(tune, "with_parameters", lambda fn, **kwargs: handed.update(kwargs) or with_parameters(fn))
    with pytest.raises(ray_started):
        main(["tune", config, "--output-dir", str(tmp_path / "search")])
    assert "val" in handed["base"]["eval"]["splits"]  # what each trial trains with


def test_without_a_validation_split_the_refusal_names_a_fix_that_works(tmp_path, monkeypatch):
    tune = pytest.importorskip("ray.tune")
    from robustft.config import to_dict
    from robustft.sweep.tune import _trial
    from robustft.sweep.tune_space import metric_overrides

    config, metric = write_config(tmp_path), "val/clean/accuracy"
    fixed = ["data.val_fraction=0", "eval.splits=[test]"]
    with pytest.raises(ConfigError, match="--set data.val_fraction=0.1") as caught:
        check_search(config, parse_search([]), fixed, metric)
    fix = str(caught.value).split("--set ")[1].split(" ")[0]
    base = check_search(config, parse_search([]), [*fixed, fix], metric)
    added = metric_overrides(base, metric)
    assert added == ["eval.splits=[test,val]"]
    reported = []
    monkeypatch.setattr(tune, "report", lambda metrics: reported.append(metrics["step"]))
    monkeypatch.setattr(tune, "get_context", lambda: type("C", (), {"get_trial_id": lambda self: "t1"})())
    _trial({"optim.lr": 0.01}, base=to_dict(load_config(config, [*fixed, fix, *added])), budget=["train.steps=4"],
           trials_dir=str(tmp_path / "trials"), metric=metric, threads=1)
    assert reported == [0, 4]  # the trial evaluated the validation split and reported it
    # a training or test metric the config does not evaluate: the fix named works too
    with pytest.raises(ConfigError, match=r"--set eval.splits=\[val,test\]"):
        check_search(config, parse_search([]), [], "test/clean/accuracy")
    assert check_search(config, parse_search([]), ["eval.splits=[val,test]"], "test/clean/accuracy")
