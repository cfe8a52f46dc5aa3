"""Every objective with every strategy: one real trainer update changes exactly the trainable parameters."""

from __future__ import annotations

import itertools

import pytest
import torch
from tests.test_train import tiny_splits

from robustft.config import from_dict
from robustft.models.tiny import tiny_cnn, tiny_vit
from robustft.strategies import STRATEGIES, StrategyNotApplicableError
from robustft.training.trainer import build_trainer

OBJECTIVES = ["standard", "adversarial", "trades"]
# Strategies that need an option to mean anything.
NAMES = {"peft": "peft:loha"}  # a registry family entry: train one of its members
OPTIONS = {"partial": {"patterns": ["features\\.1\\.", "classifier|head"]}}


def _vit_splits():
    splits = tiny_splits()
    for name in ("train", "val", "test"):
        splits[name].images = torch.nn.functional.interpolate(splits[name].images, size=32)
    return splits


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_each_strategy_trains_under_each_objective(strategy, tmp_path):
    applied, families = 0, set()
    for family, objective in itertools.product(("cnn", "vit"), OBJECTIVES):
        if families and family not in families:
            break  # one family the strategy applies to is enough here (test_strategies covers both)
        model = tiny_cnn(4) if family == "cnn" else tiny_vit(4)
        splits = tiny_splits() if family == "cnn" else _vit_splits()
        config = {"name": f"{family}-{objective}", "output_dir": str(tmp_path), "device": "cpu",
                  "strategy": {"name": NAMES.get(strategy, strategy), "options": OPTIONS.get(strategy, {})},
                  "objective": {"name": objective, "steps": 1},
                  "optim": {"batch_size": 16, "lr": 0.05, "warmup": 0}, "train": {"steps": 2, "epochs": None},
                  "eval": {"subset": 4, "splits": ["test"], "eps": [], "final": None, "ood": False},
                  "logging": {"progress": False}}
        try:
            trainer = build_trainer(from_dict(config), model=model, datasets=splits)
        except StrategyNotApplicableError:
            continue
        applied += 1
        families.add(family)
        trainer._on_progress()
        trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        loss = trainer.update(itertools.repeat((splits["train"].images[:16], splits["train"].labels[:16])), 8 / 255)
        assert torch.isfinite(torch.tensor(loss))
        changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
        assert changed, f"{strategy}/{objective}/{family}: nothing trained"
        assert changed <= trainable, f"{strategy}/{objective}/{family}: frozen parameters moved: {changed - trainable}"
    assert applied == 3, f"{strategy} applies to neither tiny model"
