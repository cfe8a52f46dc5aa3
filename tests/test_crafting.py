"""The adversarial step's crafting copy: prepared once, refreshed in place, bit for bit a fresh prepare."""

from __future__ import annotations

import torch

from robustft.attacks import prepare_for_attack
from robustft.models.tiny import tiny_cnn
from robustft.strategies import apply
from robustft.training.crafting import CraftingCopy


def _train_a_little(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Two SGD steps in train mode: weights, BatchNorm affine parameters and running statistics all move."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        model.train()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = dict(a.named_parameters()) | dict(a.named_buffers()), dict(b.named_parameters()) | dict(
        b.named_buffers())
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_the_refreshed_copy_holds_exactly_the_tensors_of_a_fresh_prepare_after_training(tiny_batch):
    images, labels = tiny_batch
    model = tiny_cnn(num_classes=10, seed=0).eval()
    crafting = CraftingCopy()
    first = crafting(model)
    assert crafting.refreshable and crafting.folds  # tiny_cnn's conv+BN pairs fold and are re-folded in place
    for _ in range(2):
        _train_a_little(model, images, labels)
        refreshed = crafting(model)
        assert refreshed is first  # no new copy
        fresh = prepare_for_attack(model)
        assert _same_tensors(refreshed, fresh)
        assert torch.equal(refreshed(images), fresh(images))


def test_a_model_with_strategy_hooks_gets_a_fresh_copy_every_call(tiny_batch):
    images, labels = tiny_batch
    model = tiny_cnn(num_classes=10, seed=0)
    apply(model, "lora", r=2, alpha=2)  # LoRA deltas hang on hooks; preparing merges them: not a plain copy
    model.eval()
    crafting = CraftingCopy()
    first = crafting(model)
    assert not crafting.refreshable
    _train_a_little(model, images, labels)
    second = crafting(model)
    assert second is not first
    assert torch.equal(second(images), prepare_for_attack(model)(images))


def test_another_model_object_is_prepared_afresh(tiny_batch):
    images, _ = tiny_batch
    crafting = CraftingCopy()
    crafting(tiny_cnn(num_classes=10, seed=0).eval())
    other = tiny_cnn(num_classes=10, seed=1).eval()
    assert torch.equal(crafting(other)(images), prepare_for_attack(other)(images))


def test_the_objectives_craft_on_the_contexts_typed_crafting_copy(tiny_batch):
    from robustft.training.objectives import ObjectiveContext, crafting_model

    model = tiny_cnn(4).eval()
    held = ObjectiveContext(crafting=CraftingCopy())
    first = crafting_model(model, held)
    assert crafting_model(model, held) is first  # the run's one copy, refreshed in place
    fresh = ObjectiveContext()  # no copy held: a new prepare per call
    assert crafting_model(model, fresh) is not crafting_model(model, fresh)
    assert crafting_model(model, ObjectiveContext(crafting=CraftingCopy(), prepare_attack=False)) is model
