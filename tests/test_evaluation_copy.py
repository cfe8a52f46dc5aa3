"""One prepared copy per run, refreshed at each evaluation point: the same records and outcomes as a fresh copy.

The evaluator used to deep-copy and fold the model at every point; it now refreshes one prepared copy in place
(``training.crafting.CraftingCopy``). The test that this is exact: evaluating a model whose weights change between
points gives, at every point, exactly the records and per-image outcomes of an evaluator that prepares afresh.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from robustft.models.tiny import tiny_cnn
from robustft.strategies import apply
from robustft.training.evaluator import Evaluator
from test_train import tiny_config, tiny_splits


def _evaluator() -> Evaluator:
    splits = tiny_splits()
    # the loss records make any stale weight visible: a mean cross-entropy moves with every logit
    cfg = dataclasses.replace(tiny_config(Path(".")).eval, loss=["test"])
    return Evaluator({k: v for k, v in splits.items() if k != "ood"}, splits["ood"], cfg, 0, torch.device("cpu"))


def _outcomes(blocks) -> list[tuple]:
    return [(b.step, b.split, b.metric, b.attacks, b.eps, b.image_ids.tolist(), b.correct.tolist()) for b in blocks]


def _evaluate_as_training_changes_the_model(model: torch.nn.Module, evaluator: Evaluator) -> list:
    """Records and outcomes at three points; between them the weights AND the BatchNorm statistics change in place
    (as optimiser steps and train-mode forward passes change them)."""
    results = []
    for step in range(3):
        with torch.no_grad():
            for index, (name, tensor) in enumerate([*model.named_parameters(), *model.named_buffers()]):
                if tensor.is_floating_point():
                    noise = torch.randn(tensor.shape, generator=torch.Generator().manual_seed(10 * step + index))
                    tensor.add_(0.2 * noise * (tensor.abs().mean() + 1e-3))
                    if name.endswith("running_var"):
                        tensor.abs_().add_(1e-3)
        records, blocks = evaluator.evaluate(model, step, float(step))
        results.append((records, _outcomes(blocks)))
        model.train()  # the trainer puts the model back in its training mode after a point
    return results


def _fresh_each_point(model: torch.nn.Module) -> list:
    """The same points, each evaluated by a new evaluator (a fresh prepared copy)."""
    class Fresh:
        def evaluate(self, model, step, epoch):
            return _evaluator().evaluate(model, step, epoch)
    return _evaluate_as_training_changes_the_model(model, Fresh())  # type: ignore[arg-type]


def test_the_refreshed_copy_gives_the_records_and_outcomes_of_a_fresh_copy_at_every_point():
    evaluator = _evaluator()
    refreshed = _evaluate_as_training_changes_the_model(tiny_cnn(4), evaluator)
    fresh = _fresh_each_point(tiny_cnn(4))
    assert refreshed == fresh
    assert len({r["value"] for records, _ in refreshed for r in records if r["metric"] == "loss"}) > 3  # it moved
    model = tiny_cnn(4).eval()
    assert evaluator.prepared(model) is evaluator.prepared(model)  # one copy, refreshed (no deep copy per point)


def test_a_model_with_strategy_hooks_is_evaluated_on_a_fresh_copy_and_equals_it():
    model, again = tiny_cnn(4), tiny_cnn(4)
    apply(model, "lora", r=2, alpha=2)
    apply(again, "lora", r=2, alpha=2)
    evaluator = _evaluator()
    assert _evaluate_as_training_changes_the_model(model, evaluator) == _fresh_each_point(again)
    assert evaluator.prepared(model.eval()) is not evaluator.prepared(model.eval())


def test_a_parameter_replaced_by_another_tensor_object_is_seen():
    """A refresh copies from the tensors the copy was planned on; a module whose parameter was replaced (not
    written in place) gets a new copy, else the evaluation would read the old weights."""
    evaluator, model = _evaluator(), tiny_cnn(4)
    evaluator.evaluate(model, 0, 0.0)
    head = model.backbone.classifier
    head.weight = torch.nn.Parameter(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(7)))
    records = evaluator.evaluate(model, 1, 0.0)[0]
    assert records == _evaluator().evaluate(model, 1, 0.0)[0]
