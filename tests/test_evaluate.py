"""Continuous evaluation: fixed subsets, record schema, robust <= clean, curves, presets."""

from __future__ import annotations

import pytest
import torch

from robustft.analysis.statistics import wilson_interval
from robustft.config import ATTACK_PRESETS, load_config, section_from_dict
from robustft.config.schema import AttackSpec
from robustft.data.splits import stratified_subset
from robustft.models.tiny import tiny_cnn
from robustft.training.evaluator import Evaluator, expected_robustness, fixed_subset, record
from test_attacks_support import quadrant_task, trained_tiny_cnn


class Data:
    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 16, 16, generator=generator)
        self.labels = torch.randint(0, 4, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def test_fixed_subset_is_the_same_samples_for_a_seed_and_differs_across_seeds():
    data = Data(100, 0)
    a, b, c = fixed_subset("x", data, 20, 1), fixed_subset("x", data, 20, 1), fixed_subset("x", data, 20, 2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert len(fixed_subset("x", data, None, 0).labels) == 100 == len(fixed_subset("x", data, 500, 0).labels)


def _evaluator(**cfg) -> Evaluator:
    settings = {"subset": 24, "batch_size": 8, "splits": ["val", "test"], "eps": ["2/255", "8/255"],
                "attack": {"name": "pgd", "steps": 3, "step_size": "2/255"}, "curve": "3/255", "ood": True,
                "final": {"name": "fgsm"}, **cfg}
    return Evaluator({"val": Data(40, 1), "test": Data(40, 2)}, {"noisy": Data(40, 3)},
                     section_from_dict("eval", settings), 0, torch.device("cpu"))


def test_records_schema_intervals_and_worst_case_ordering():
    evaluator, model = _evaluator(), tiny_cnn(4)
    records = evaluator(model, step=5, epoch=0.5, final=True)
    for r in records:
        assert set(r) >= {"step", "epoch", "split", "metric", "attack", "eps", "value", "n", "ci_low", "ci_high"}
        assert r["step"] == 5 and r["epoch"] == 0.5
    accuracy = [r for r in records if r["metric"] in ("accuracy", "curve_accuracy")]
    assert all(r["n"] == 24 and r["ci_low"] <= r["value"] <= r["ci_high"] for r in accuracy)
    for split in ("val", "test"):
        values = [r["value"] for r in records if r["split"] == split and r["metric"] == "accuracy"
                  and not r["attack"].startswith("final")]
        assert values == sorted(values, reverse=True)  # clean >= 2/255 >= 8/255 (nested worst case)
    curve = [r for r in records if r["metric"] == "curve_accuracy"]
    assert [round(r["eps"] * 255) for r in curve] == [0, 1, 2, 3]
    (expected,) = [r for r in records if r["metric"] == "expected_robustness"]
    assert expected["value"] == pytest.approx(expected_robustness([r["eps"] for r in curve],
                                                                  [r["value"] for r in curve]))
    assert any(r["split"] == "ood:noisy" and r["attack"] == "clean" for r in records)
    assert {r["attack"] for r in records if r["attack"] and r["attack"].startswith("final")} == {"final:fgsm"}
    assert not model.training


def test_evaluation_is_reproducible_and_leaves_the_training_rng_alone():
    evaluator, model = _evaluator(), tiny_cnn(4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = evaluator(model, step=3, epoch=0.0)
    assert torch.equal(torch.get_rng_state(), before)
    assert evaluator(model, step=3, epoch=0.0) == first


def test_attack_presets_and_overrides_resolve_to_one_attack_spec_when_the_config_is_built():
    cfg = load_config(None, ["eval.attack=paper-a", "eval.final={name: paper-a, steps: 20}"])
    assert cfg.eval.attack == AttackSpec(name="pgd", steps=15, step_size=0.25 / 255, random_start=True, restarts=1)
    assert cfg.eval.final == AttackSpec(name="pgd", steps=20, step_size=0.25 / 255)  # the preset, 20 steps
    assert load_config(None, ["eval.final={name: apgd-ce}"]).eval.final == AttackSpec("apgd-ce", 10, None)
    assert load_config(None, ["eval.attack.step_size=1/255"]).eval.attack.step_size == 1 / 255


def test_expected_robustness_is_the_trapezoid_mean():
    assert expected_robustness([0, 1 / 255, 2 / 255], [0.9, 0.5, 0.1]) == pytest.approx((0.7 + 0.3) / 2)


def test_records_carry_the_wilson_interval_of_robustft_stats():
    item = record(3, 0.5, "test", "accuracy", 0.7, "pgd", 1 / 255, n=10, correct=7)
    assert (item["ci_low"], item["ci_high"]) == wilson_interval(7, 10)
    assert 0 < item["ci_low"] < 0.7 < item["ci_high"] < 1
    assert record(3, 0.5, "test", "accuracy", 0.0, n=10, correct=0)["ci_low"] == 0.0


class _Quantise(torch.nn.Module):
    """Gradient masking by construction: the input is rounded to 4 levels before the network (zero gradient)."""

    def forward(self, x):
        return torch.round(x * 3) / 3


def test_training_run_with_checks_finishes_and_records_the_warnings(tmp_path):
    """eval.checks=true on a gradient-masked model: the run ends and metrics.jsonl holds the check warnings."""
    import json

    from robustft.config import from_dict
    from robustft.models.wrapper import RobustModel
    from robustft.training.trainer import train

    inner = tiny_cnn(4)
    masked = RobustModel(torch.nn.Sequential(_Quantise(), inner.backbone), inner.info)
    masked.info.head = "backbone.1.classifier"
    config = {"name": "masked", "output_dir": str(tmp_path), "device": "cpu", "seed": 0,
              "optim": {"batch_size": 16, "lr": 1.0e-2, "warmup": 1}, "train": {"steps": 2},
              "eval": {"schedule": "every:2", "subset": 16, "batch_size": 16, "splits": ["val", "test"],
                       "attack": {"name": "pgd", "steps": 2, "step_size": "2/255"}, "eps": ["2/255"],
                       "checks": True, "final": {"name": "fgsm"}},
              "logging": {"progress": False}}
    splits = {"train": Data(32, 0), "val": Data(16, 1), "test": Data(16, 2), "ood": {}}
    result = train(from_dict(config), model=masked, datasets=splits)
    records = [json.loads(line) for line in (result.path / "metrics.jsonl").read_text().splitlines()]
    checks = [r for r in records if r["metric"].startswith("check:")]
    assert "check:zero_or_nan_gradients" in {r["metric"] for r in checks}
    assert all(r["value"] == 1.0 and r["split"] == "test" and r["extra"]["message"] for r in checks)


def test_a_preset_is_the_same_attack_spec_at_eval_attack_and_eval_final():
    # One definition (robustft.config.presets), one type: eval.attack=paper-b and eval.final=paper-b are equal.
    for preset, fields in ATTACK_PRESETS.items():
        cfg = load_config(None, [f"eval.attack={preset}", f"eval.final={preset}"])
        assert cfg.eval.attack == cfg.eval.final == section_from_dict("eval", {"attack": fields}).attack


def test_fixed_subset_keeps_the_class_mix_drawn_as_data_splits_are():
    # 90 samples of class 0, 10 of class 1: a 20-sample subset holds 18 and 2, the indices stratified_subset draws
    # for the data splits (a plain random draw gives 1..5 of class 1 depending on the seed).
    data = Data(100, 0)
    data.labels = torch.tensor([0] * 90 + [1] * 10)
    for seed in range(5):
        subset = fixed_subset("x", data, 20, seed)
        assert subset.labels.bincount().tolist() == [18, 2]
        assert torch.equal(subset.images, data.images[stratified_subset(data.labels, 20, seed)])


def test_the_loss_is_recorded_on_the_eval_loss_splits_with_every_sample_attacked():
    """eval.loss=[val]: the mean cross-entropy on val, clean and at each eval eps at the point the attack returns
    for every sample (not only the still-robust ones, as the nested accuracy does): what paper B's tuning reads."""
    import torch.nn.functional as F

    from robustft.attacks import build_attack

    evaluator = _evaluator(loss=["val"], attack={"name": "fgsm", "random_start": False}, eps=["8/255"])
    model = tiny_cnn(4)
    records = [r for r in evaluator(model, step=2, epoch=0.1) if r["metric"] == "loss"]
    assert {r["split"] for r in records} == {"val"} and all(r["n"] == 24 for r in records)
    loss = {(r["attack"], round(r["eps"] * 255)): r["value"] for r in records}
    val = next(subset for subset in evaluator.subsets if subset.name == "val")
    model.eval()
    with torch.no_grad():
        clean = F.cross_entropy(model(val.images), val.labels).item()
        attacked = F.cross_entropy(model(build_attack("fgsm")(model, val.images, val.labels, 8 / 255)),
                                   val.labels).item()
    assert loss == {("clean", 0): pytest.approx(clean, rel=1e-5), ("fgsm", 8): pytest.approx(attacked, rel=1e-4)}
    assert attacked > clean


def test_a_loss_split_that_is_not_evaluated_is_refused_with_the_fix():
    from robustft.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.loss\[0\].*eval.splits=\[test,val\]") as caught:
        load_config(None, ["eval.splits=[test]", "eval.loss=[val]"])
    fix = str(caught.value).split("e.g. ")[1].rstrip(".")
    assert load_config(None, [fix, "eval.loss=[val]"]).eval.loss == ["val"]  # the fix it names works


class Quadrants(Data):
    """The quadrant task the trained tiny CNN of test_attacks_support solves: the attack flips some verdicts."""

    def __init__(self, n: int, seed: int) -> None:
        self.images, self.labels = quadrant_task(n, seed)


def test_every_accuracy_record_has_the_per_image_verdicts_behind_it():
    model = trained_tiny_cnn()
    evaluator = Evaluator({"val": Quadrants(40, 1), "test": Quadrants(40, 2)}, {"noisy": Quadrants(40, 3)},
                          section_from_dict("eval", {
                              "subset": 24, "batch_size": 8, "splits": ["val", "test"], "eps": ["16/255", "64/255"],
                              "attack": {"name": "pgd", "steps": 3, "step_size": "24/255"}, "curve": "3/255",
                              "final": {"name": "fgsm"}}), 0, torch.device("cpu"))
    records, blocks = evaluator.evaluate(model, step=5, epoch=0.5, final=True)
    test = next(s for s in evaluator.subsets if s.name == "test")
    clean = (model(test.images).argmax(1) == test.labels).numpy()
    (first,) = [b for b in blocks if b.split == "test" and b.metric == "accuracy" and b.attacks[0] == "clean"]
    assert first.correct[0].tolist() == clean.tolist() and first.image_ids.tolist() == test.ids.tolist()
    assert first.correct.sum(1).tolist()[0] > first.correct.sum(1).tolist()[-1]  # the attack flips verdicts
    rows = {(b.split, b.metric, a, e): (b, i) for b in blocks
            for i, (a, e) in enumerate(zip(b.attacks, b.eps, strict=True))}
    accuracy = [r for r in records if r["metric"] in ("accuracy", "curve_accuracy")]
    assert len(rows) == len(accuracy)
    for r in accuracy:
        block, i = rows[(r["split"], r["metric"], r["attack"], r["eps"])]
        assert block.step == 5 and block.correct.shape[1] == r["n"]
        assert int(block.correct[i].sum()) == round(r["value"] * r["n"])
    assert {b.split for b in blocks} == {"val", "test", "ood:noisy"}
    assert evaluator(model, step=5, epoch=0.5, final=True) == records  # __call__: the same records


def test_image_ids_are_indices_in_the_source_split_and_shared_by_runs_on_the_same_data():
    data = Data(100, 0)
    data.indices = torch.arange(1000, 1200, 2)  # a limited split: sample i was row 1000 + 2i of the source split
    subset = fixed_subset("test", data, 20, 1)
    chosen = stratified_subset(data.labels, 20, 1)
    assert subset.ids.tolist() == (1000 + 2 * chosen).tolist()
    assert fixed_subset("test", Data(100, 0), 20, 1).ids.tolist() == chosen.tolist()  # no indices: positions
    one, two = _evaluator(), _evaluator()
    ids = [{b.split: b.image_ids.tolist() for b in e.evaluate(m, 0, 0.0)[1]} for e, m in
           ((one, tiny_cnn(4)), (two, tiny_cnn(4)))]
    assert ids[0] == ids[1] and len(ids[0]["test"]) == 24


def test_checks_of_a_curve_only_evaluation_check_the_final_attack_at_the_curves_end(tmp_path, monkeypatch):
    """Paper B's evaluation (eval.eps empty, the curve and the final attack at eps_g): the checks run at eps_g and
    the final attack, whose number is reported, is the one checked for convergence; a warning is recorded under it."""
    import json

    import robustft.training.evaluator as evaluator
    from robustft.attacks.checks import CheckWarning
    from robustft.config import from_dict
    from robustft.training.trainer import train

    seen = []

    def fake_checks(model, batches, eps, *, attack=None, **options):
        seen.append((eps, attack.name, attack.options.get("steps")))
        return [CheckWarning("attack_not_converged", "stopped early", 0.2)]

    monkeypatch.setattr(evaluator, "run_checks", fake_checks)
    config = {"name": "curve-only", "output_dir": str(tmp_path), "device": "cpu", "seed": 0,
              "optim": {"batch_size": 16, "lr": 1.0e-2, "warmup": 1}, "train": {"steps": 2},
              "eval": {"schedule": "every:2", "subset": 16, "batch_size": 16, "splits": ["val", "test"],
                       "attack": {"name": "apgd-ce", "steps": 5}, "eps": [], "curve": "4/255", "curve_at": "final",
                       "checks": True,
                       "final": {"name": "apgd-ce", "steps": 3}},
              "logging": {"progress": False}}
    splits = {"train": Data(32, 0), "val": Data(16, 1), "test": Data(16, 2), "ood": {}}
    result = train(from_dict(config), model=tiny_cnn(4), datasets=splits)
    assert seen == [(pytest.approx(4 / 255), "apgd-ce", 3)]
    records = [json.loads(line) for line in (result.path / "metrics.jsonl").read_text().splitlines()]
    flagged = [r for r in records if r["metric"] == "check:attack_not_converged"]
    assert len(flagged) == 1 and flagged[0]["attack"] == "final:apgd-ce"
    assert flagged[0]["eps"] == pytest.approx(4 / 255)
