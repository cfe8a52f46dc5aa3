"""The cost model of `reproduce --plan`: hand-computed runs, ASHA's budget, the tables, and the probe."""

from __future__ import annotations

import itertools
import math

import pytest

from robustft.config import load_config
from robustft.config.schema import to_dict
from robustft.errors import ConfigError
from robustft.sweep.cost_model import Throughput, asha_runs, attacked_steps, run_cost
from robustft.sweep.cost_probe import probe, reference_calibration
from robustft.sweep.cost_tables import architecture, dataset_size, reference_throughput

SMALL_B = ["data.name=tv:FGVCAircraft", "optim.batch_size=100", "train.epochs=10", "eps.t1=2", "eps.t2=6",
           "eps.value=4/255", "objective.steps=7", "eval.subset=500", "eval.splits=[val,test]", "eval.eps=[4/255]",
           "eval.curve=4/255", "eval.curve_at=final", "eval.ood=false"]


def config(*overrides: str, file: str = "configs/paper_b/scheduled.yaml") -> dict:
    return to_dict(load_config(file, list(overrides)))


def test_a_hand_computed_epsilon_scheduling_run():
    # FGVC-Aircraft: 6,667 train pool - 667 validation = 6,000 images = 60 steps of 100; 10 epochs = 600 steps.
    # eps > 0 from epoch 3 (alpha(T1 = 2) = 0) to 9: 7 epochs = 420 steps of 1 + 7 passes, 180 clean steps.
    # training: 100 x (180 + 420 x 8) = 354,000 forward+backward passes.
    # 11 evaluations (every epoch and step 0) of 500 val + 500 test: 1,000 clean forwards and 1,000 x 10 APGD
    # passes at 4/255 each; the curve 1..4/255 once (curve_at final): 500 x 4 x 10 and 500 forwards; the final
    # APGD-CE-10 at 4/255: 500 x 10.
    cost = run_cost(config(*SMALL_B), Throughput(train=0.01, forward=0.002))
    assert (cost.train_images, cost.steps, cost.attacked_steps, cost.evaluations) == (6000, 600, 420, 11)
    assert cost.train_passes == 354_000
    assert cost.eval_passes == 11 * 1000 * 10 + 500 * 4 * 10 + 500 * 10 == 135_000
    assert cost.eval_forward == 11 * 1000 + 500 == 11_500
    assert cost.seconds == pytest.approx(489_000 * 0.01 + 11_500 * 0.002)
    assert cost.gpu_hours == pytest.approx(4913 / 3600)


def test_the_curve_at_every_evaluation_costs_every_point():
    every = run_cost(config(*SMALL_B, "eval.curve_at=every"), Throughput(1.0, 1.0))
    final = run_cost(config(*SMALL_B), Throughput(1.0, 1.0))
    assert every.eval_passes - final.eval_passes == 10 * 500 * 4 * 10  # 10 more points of the 4-point curve
    assert every.eval_forward - final.eval_forward == 10 * 500


@pytest.mark.parametrize("schedule, attacked_epochs", [("fix", 10), ("scheduled", 7), ("linear", 9), ("uniform", 10),
                                                       ("standard", 0), ("auto", 4)])
def test_attacked_steps_follow_each_schedule(schedule, attacked_epochs):
    file = f"configs/paper_b/{'fix' if schedule == 'standard' else schedule}.yaml"
    extra = ("objective.name=standard", "eps.schedule=zero") if schedule == "standard" else ()
    # linear: T1 = 0 so epoch 0 is clean; auto: a flat history plateaus after patience 5 -> T1 = 5, eps > 0 from 6.
    cfg = config(*SMALL_B, *extra, file=file)
    assert attacked_steps(cfg, 600, 60) == attacked_epochs * 60


def test_trades_updates_on_clean_and_adversarial_images():
    cost = run_cost(config(*SMALL_B, "objective.name=trades", "eps.schedule=constant"), Throughput(1.0, 1.0))
    assert cost.train_passes == 100 * 600 * (2 + 7)


def test_paper_a_domainnet_prices_its_five_ood_splits_and_no_attack():
    cfg = config("data.name=domainnet:clipart", "eval.eps=[]", "data.ood=[domainnet:real,domainnet:sketch]",
                 "train.steps=100", file="configs/paper_a/lora.yaml")
    cost = run_cost(cfg, Throughput(1.0, 1.0))
    # paper A's schedule over 100 steps: 0, 50, 100; 3 splits of 1000 and 2 OOD splits of 1000, forward only
    assert (cost.evaluations, cost.eval_passes, cost.train_passes) == (3, 0, 100 * 128)
    assert cost.eval_forward == 3 * (3 * 1000 + 2 * 1000)


def test_asha_budget_by_hand():
    # 8 trials, rungs 1, 3, 9, 27 of 50: 8 x 1 + 8/3 x 2 + 1 x 6 + 1 x 18 + 1 x 23 (at least the best one goes on)
    assert asha_runs(8, 50, 1, 3) == pytest.approx((8 + 16 / 3 + 6 + 18 + 23) / 50)
    assert asha_runs(9, 9, 1, 3) == pytest.approx((9 + 3 * 2 + 1 * 6) / 9)  # rungs 1, 3: 9 is the budget itself
    assert asha_runs(1, 10, 10, 2) == 1.0  # one trial to the end is one run
    with pytest.raises(ConfigError, match="grace"):
        asha_runs(4, 10, 11, 3)


def test_tables_place_every_grid_backbone_and_dataset():
    from robustft.sweep.paper_grid import GRIDS

    for grid in GRIDS.values():
        for model, data in itertools.product(grid["models"], grid["datasets"]):
            train, infer = reference_throughput(architecture(model.value))
            assert 0 < train < infer  # a training step costs more than a forward pass
            pool, test = dataset_size(data.value)
            assert pool > 0 and test > 0
    assert architecture("hf:google/vit-base-patch16-224-in21k") == "vit_base_patch16_224"
    assert reference_throughput("vit_base_patch16_clip_224") == reference_throughput("vit_base_patch16_224")
    assert dataset_size("tv:CIFAR10@fog:3") == (50_000, 10_000)
    assert dataset_size("my-data", limit_train=300, limit_test=100) == (300, 100)
    for bad in (lambda: architecture("embedded:mobilenet_v2"), lambda: dataset_size("my-data"),
                lambda: reference_calibration(["test_vit"])):
        with pytest.raises(ConfigError):
            bad()


def test_probe_divides_the_timed_passes_by_repeats_and_batch():
    ticks = iter([0.0, 6.0, 10.0, 13.0])  # train: 6 s, forward: 3 s, for 3 repeats of a batch of 2
    speed = probe("test_vit", image_size=32, batch_size=2, repeats=3, device="cpu", clock=lambda: next(ticks))
    assert speed == Throughput(train=1.0, forward=0.5)


def test_probe_runs_a_tiny_model_on_cpu():
    speed = probe("test_vit", image_size=32, batch_size=2, repeats=1, device="cpu")
    assert math.isfinite(speed.train) and speed.train > 0 and math.isfinite(speed.forward) and speed.forward > 0
