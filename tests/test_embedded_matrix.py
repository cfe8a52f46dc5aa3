"""Every objective x eps schedule really trains the embedded MobileNetV2 on embedded Fashion-MNIST (short runs).

Issue 4's acceptance: an embedded-scale run of each combination finishes on CPU with its metrics, summary and
checkpoints. Short (6 optimiser steps on 96 images) so the whole matrix takes a few minutes; correctness of each
piece is tested elsewhere on tiny models, this proves they compose on the real backbone and data.
"""

import json

import pytest

from robustft.config import from_dict, section_from_dict
from robustft.training.schedules import eps_schedule
from robustft.training.trainer import train

OBJECTIVES = ["standard", "adversarial", "trades"]
SCHEDULES = ["zero", "constant", "scheduled", "linear", "uniform", "auto"]
EPS = 2 / 255
# Per-step schedule over 6 steps (2 epochs x 3 batches): T1 = 1, T2 = 4 steps, so scheduled and linear are
# part-way at the step-3 evaluation. The eps recorded at an evaluation is the one the last step trained with
# (step index 2 for the step-3 evaluation, 5 for step 6; the step-0 evaluation records the first step's).
TRAINED_STEP = {0: 0, 3: 2, 6: 5}
EXPECTED_EPS = {
    "zero": [0.0, 0.0, 0.0],
    "constant": [EPS, EPS, EPS],
    "scheduled": [0.0, EPS * (2 - 1) / (4 - 1), EPS],  # 0 before T1, then linear to eps_g at T2
    "linear": [0.0, EPS * 2 / 4, EPS],  # T1 = 0
    # auto: one completed epoch cannot show a plateau (patience 1 needs a second epoch without progress)
    "auto": [0.0, 0.0, 0.0],
}


# The standard objective trains on clean images whatever eps says: with any schedule but zero it is refused
# (tests/test_config_ramp.py), so the matrix pairs it with zero only.
PAIRS = [(o, s) for o in OBJECTIVES for s in SCHEDULES if o != "standard" or s == "zero"]


@pytest.mark.slow
@pytest.mark.needs_assets
@pytest.mark.parametrize(("objective", "schedule"), PAIRS)
def test_objective_x_schedule_on_the_embedded_default(tmp_path, objective, schedule):
    eps_section = {"schedule": schedule, "value": "2/255", "t1": 1, "t2": 4, "per": "step", "patience": 1}
    config = {
        "name": f"{objective}-{schedule}", "output_dir": str(tmp_path), "seed": 0, "device": "cpu",
        "model": {"name": "mobilenet_v2", "pretrained": True, "image_size": 32},
        "data": {"name": "fashion-mnist", "image_size": 32, "limit_train": 96, "limit_val": 32, "limit_test": 32},
        "strategy": {"name": "full"},
        "objective": {"name": objective, "attack": "pgd", "steps": 2},
        "eps": eps_section,
        "optim": {"batch_size": 32, "lr": 1.0e-3},
        "train": {"epochs": 2},
        "eval": {"schedule": "epoch", "subset": 32, "batch_size": 64, "splits": ["val", "test"],
                 "attack": {"name": "pgd", "steps": 2, "step_size": "0.5eps"}, "eps": ["1/255"], "final": None,
                 "ood": False},  # 2 steps of 0.5 eps reach eps (the default 0.25/255 would not: refused)
        "logging": {"progress": False},
    }
    result = train(from_dict(config))
    records = [json.loads(line) for line in (result.path / "metrics.jsonl").read_text().splitlines()]
    steps = sorted({r["step"] for r in records})
    assert steps == [0, 3, 6]  # 2 epochs x 3 batches, evaluated at 0 and at each epoch end

    # The training eps the schedule gave (recorded whatever the objective; standard's loss ignores it).
    optim = {(r["metric"], r["step"]): r for r in records if r["split"] == "optim"}
    train_eps = [optim[("eps", step)]["value"] for step in steps]
    if schedule == "uniform":  # U[0, eps_g] per step, reproducible from (seed, step)
        assert all(0 < e <= EPS for e in train_eps) and len(set(train_eps)) == 3
        sched = eps_schedule(section_from_dict("eps", eps_section), 2, 6, 3, seed=0)
        expected = [sched(TRAINED_STEP[s] // 3, TRAINED_STEP[s]) for s in steps]
    else:
        expected = EXPECTED_EPS[schedule]
    assert train_eps == pytest.approx(expected, abs=1e-9)
    # The loss records name the objective that produced them (one per evaluation after training started).
    assert [optim[("loss", step)]["attack"] for step in steps[1:]] == [objective, objective]

    clean = [r for r in records if r["split"] == "test" and r["metric"] == "accuracy" and r["attack"] == "clean"]
    robust = [r for r in records if r["split"] == "test" and r["metric"] == "accuracy" and r["attack"] == "pgd"]
    assert len(clean) == 3 and len(robust) == 3
    assert all(r["value"] <= c["value"] for r, c in zip(robust, clean, strict=True))  # per-sample worst case
    assert (result.path / "checkpoints" / "last.pt").is_file() and (result.path / "summary.json").is_file()
    assert result.summary["objective"] == objective and result.summary["eps_schedule"] == schedule
