"""The objective really trains at the scheduled eps: the perturbation applied in each training step, measured on
the model's own inputs through the real trainer, has the L-inf norm eps(t) that the schedule (and the log) says.

A trainer that handed the objective eps = 0 would be plain fine-tuning while metrics.jsonl still showed the
schedule's eps; no test of the schedules or the objectives alone can see that. Here a forward pre-hook on the
trained model records every batch of a train-mode forward pass (the update pass; the inner attack runs in eval
mode on a copy), and each recorded image is matched to its clean training image (the images are far apart, so the
nearest one is it): the L-inf distance between the two is the perturbation the update trained on.
"""

from __future__ import annotations

import json

import pytest
import torch

from robustft.config import from_dict
from robustft.models.tiny import tiny_cnn
from robustft.training.trainer import build_trainer

EPS_G = 8 / 255
EPOCHS, STEPS_PER_EPOCH = 4, 4  # 64 training images, batch 16


class TinyData:
    """n seeded 3 x 12 x 12 images in [0.15, 0.85] (no pixel within 8/255 of the box, so no perturbation is clipped
    by it), 4 classes, each class darkening one colour channel (learnable)."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = 0.15 + 0.7 * torch.rand(n, 3, 12, 12, generator=generator)
        self.labels = torch.randint(0, 4, (n,), generator=generator)
        for c in range(4):
            self.images[self.labels == c, c % 3] = 0.15 + 0.3 * (self.images[self.labels == c, c % 3] - 0.15)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def _config(tmp_path, schedule: dict, objective: dict) -> dict:
    return {"name": "eps", "output_dir": str(tmp_path), "device": "cpu", "seed": 0,
            "objective": objective, "eps": {"value": "8/255", "per": "epoch", **schedule},
            "optim": {"batch_size": 16, "lr": 1.0e-2, "warmup": 0},
            "train": {"epochs": EPOCHS},
            "eval": {"schedule": "epoch", "subset": 16, "batch_size": 16, "splits": ["val"],
                     "attack": {"name": "fgsm", "steps": 1}, "eps": ["2/255"], "curve": None, "final": None},
            "checkpoint": {"every_eval": False}, "logging": {"progress": False}}


# (eps section, alpha per epoch or None where only the schedule itself knows it (uniform's draws))
SCHEDULES = {
    "constant": ({"schedule": "constant"}, [1, 1, 1, 1]),
    "scheduled": ({"schedule": "scheduled", "t1": 1, "t2": 3}, [0, 0, 0.5, 1]),
    "linear": ({"schedule": "linear", "t2": 2}, [0, 0.5, 1, 1]),
    "uniform": ({"schedule": "uniform"}, None),
    # patience 1 with a tolerance of 99 points: the plateau is seen at the end of epoch 1 whatever the accuracies,
    # so eps ramps from 0 at epoch 1 to eps_g at the last epoch.
    "auto": ({"schedule": "auto", "patience": 1, "tolerance": 0.99}, [0, 0, 0.5, 1]),
}
OBJECTIVES = {
    "adversarial-pgd": {"name": "adversarial", "attack": "pgd", "steps": 3},
    "adversarial-apgd": {"name": "adversarial", "attack": "apgd-ce", "steps": 3},
    "trades": {"name": "trades", "steps": 6},  # steps of eps/4: enough to reach the ball's boundary
}


def _train_and_measure(tmp_path, schedule: dict, objective: dict):
    """Trains; returns the trainer, its summary, and per step (eps the schedule gives, applied L-inf norms per
    sample of every train-mode forward pass of that step)."""
    train = TinyData(64, 0)
    splits = {"train": train, "val": TinyData(16, 1), "test": TinyData(16, 2)}
    model = tiny_cnn(4, width=4)
    seen: list[torch.Tensor] = []

    def record_update_inputs(module, inputs):
        if module.training:
            seen.append(inputs[0].detach().clone())

    model.register_forward_pre_hook(record_update_inputs)
    trainer = build_trainer(from_dict(_config(tmp_path, schedule, objective)), model=model, datasets=splits, quiet=True)
    steps: list[tuple[float, torch.Tensor]] = []
    update = trainer.update

    def measured_update(batches, eps):
        # what the schedule says for this step, from the trainer's own state (not the eps update is handed)
        step = trainer.step
        scheduled = float(trainer.eps_at(step // trainer.steps_per_epoch, step, list(trainer.val_history)))
        first = len(seen)
        loss = update(batches, eps)
        inputs = torch.cat(seen[first:])
        # L-inf distance of each input to its nearest training image: the applied perturbation's norm
        distance = (inputs[:, None] - train.images[None]).abs().flatten(2).max(dim=2).values.min(dim=1).values
        steps.append((scheduled, distance))
        return loss

    trainer.update = measured_update
    result = trainer.execute()
    assert trainer.steps_per_epoch == STEPS_PER_EPOCH and len(steps) == EPOCHS * STEPS_PER_EPOCH
    return trainer, result, steps


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("objective", ["adversarial-pgd"])
def test_each_training_step_is_perturbed_by_the_scheduled_eps(tmp_path, schedule, objective):
    section, alphas = SCHEDULES[schedule]
    trainer, result, steps = _train_and_measure(tmp_path, section, OBJECTIVES[objective])
    scheduled = [eps for eps, _ in steps]
    if alphas is not None:  # the schedule itself, stated here independently of its code
        expected = [EPS_G * alphas[index // STEPS_PER_EPOCH] for index in range(len(steps))]
        assert scheduled == pytest.approx(expected, abs=1e-7)
    assert max(scheduled) > 0
    for index, (eps, applied) in enumerate(steps):
        # The batch's perturbation reaches eps(t) in L-inf (PGD's sign steps end on the ball's boundary) and no
        # sample's exceeds it; every sample moved (a sample whose worst point was its random start moved by a bit
        # less than eps: the largest of 432 uniform draws in [-eps, eps]); nothing moved at eps 0.
        assert applied.max().item() == pytest.approx(eps, abs=1e-6), index
        assert applied.min().item() >= 0.9 * eps, index
    # The log's eps at each evaluation is the eps the step before it trained on.
    logged = {r["step"]: r["value"] for r in map(json.loads, (result.path / "metrics.jsonl").read_text().splitlines())
              if r["split"] == "optim" and r["metric"] == "eps"}
    for step, value in logged.items():
        if step > 0:
            assert value == pytest.approx(steps[step - 1][1].max().item(), abs=1e-6), step
    # and the summary counts the steps that were perturbed, and the largest eps
    assert result.summary["perturbed_steps"] == sum(eps > 0 for eps in scheduled)
    assert result.summary["train_eps_max"] == pytest.approx(max(scheduled))


@pytest.mark.parametrize("objective", ["adversarial-apgd", "trades"])
def test_other_inner_attacks_are_perturbed_by_the_scheduled_eps(tmp_path, objective):
    section, alphas = SCHEDULES["scheduled"]
    _, result, steps = _train_and_measure(tmp_path, section, OBJECTIVES[objective])
    for index, (eps, applied) in enumerate(steps):
        assert eps == pytest.approx(EPS_G * alphas[index // STEPS_PER_EPOCH], abs=1e-7)
        # TRADES' update pass sees the clean batch too (distance 0); its perturbed half reaches eps(t).
        assert applied.max().item() == pytest.approx(eps, abs=1e-6), index
        assert applied.max().item() <= eps + 1e-6
    assert result.summary["perturbed_steps"] == 2 * STEPS_PER_EPOCH


def test_a_ramp_beyond_a_run_given_in_steps_is_refused_before_training(tmp_path):
    """train.steps=8 at 4 steps per epoch is 2 epochs: T1 = epoch 3 would leave eps 0 throughout. The config alone
    cannot tell (epochs depend on the data), so the trainer checks once it knows, before any run directory."""
    from robustft.errors import ConfigError

    config = _config(tmp_path, {"schedule": "scheduled", "t1": 3, "t2": 5}, OBJECTIVES["adversarial-pgd"])
    config["train"] = {"epochs": None, "steps": 8}
    splits = {"train": TinyData(64, 0), "val": TinyData(16, 1), "test": TinyData(16, 2)}
    with pytest.raises(ConfigError, match=r"eps.t1=3 .* epochs 0-1 \(2 epochs of 4 steps\).*eps.t1=0.25"):
        build_trainer(from_dict(config), model=tiny_cnn(4, width=4), datasets=splits, quiet=True)
    assert not (tmp_path / "eps").exists()
