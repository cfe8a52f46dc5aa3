"""Kept prepared copies of models with strategy hooks (``attacks.prepared_cache``, ``training.crafting``): refreshed
in place exactly where the copy kept the model's hooks, and then bit for bit what a fresh ``prepare_for_attack``
gives, for every registered strategy x every tiny backbone; a fresh copy wherever the copy differs (merged LoRA /
(IA)3, adapters dropped as identities at init) or a hook is not a strategy's."""

from __future__ import annotations

import pytest
import torch

from robustft.attacks import prepare_for_attack
from robustft.attacks.prepare import PreparedModel
from robustft.attacks.prepared_cache import prepared_copy, refresh_plan
from robustft.errors import MissingAssetError
from robustft.strategies.hooks import attached
from robustft.training.crafting import CraftingCopy
from test_fast_paths import BACKBONES, EMBEDDED, adapted, strategy_names, train_like

# Strategies whose prepared copy keeps the model's hooks once trained (their modules cannot be merged), so it is
# refreshed in place; every other hooked strategy is merged into the copy and prepared afresh at every call.
REFRESHED_WITH_HOOKS = {"adapter", "compacter", "vpt"}
IMAGES = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def _trained(backbone: str, name: str) -> tuple[torch.nn.Module, list[str]]:
    return adapted(backbone, name, BACKBONES[backbone])


def _embedded(backbone: str):
    from robustft.models import build

    def make():
        return build(backbone, 10, pretrained=True, image_size=EMBEDDED[backbone])
    try:
        make()
    except MissingAssetError as error:
        pytest.skip(str(error))
    return make


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_a_kept_copy_refreshed_after_more_training_is_a_fresh_prepare(backbone, name):
    check_refresh(backbone, name, *_trained(backbone, name), IMAGES)


@pytest.mark.slow
@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(EMBEDDED))
def test_a_kept_copy_of_an_embedded_model_refreshed_after_more_training_is_a_fresh_prepare(backbone, name):
    side = EMBEDDED[backbone]
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(3))
    check_refresh(backbone, name, *adapted(backbone, name, _embedded(backbone)), images)


def check_refresh(backbone: str, name: str, model: torch.nn.Module, trainable: list[str], images: torch.Tensor
                  ) -> None:
    hooked = bool(attached(model))
    first = prepared_copy(model)
    crafting = CraftingCopy()
    crafted = crafting(model)
    train_like(model, trainable, torch.Generator().manual_seed(9))  # in place: the same tensor objects
    second, crafted_again = prepared_copy(model), crafting(model)
    refreshed = second is first
    assert refreshed == (crafted_again is crafted)
    if hooked:
        assert refreshed == (name in REFRESHED_WITH_HOOKS), f"{name} on {backbone}: refreshed {refreshed}"
    elif not name.startswith("peft:"):  # peft wraps layers, merged into the copy: prepared afresh
        assert refreshed, f"{name} on {backbone} has no hooks but its copy was not refreshed"
    with torch.no_grad():
        fresh = prepare_for_attack(model)(images)
        assert torch.equal(second(images), fresh)
        assert torch.equal(crafted_again(images), fresh)


def test_adapters_at_their_zero_init_are_prepared_afresh_then_refreshed_once_trained():
    model, trainable = _trained("tiny-mobilenet", "adapter")
    with torch.no_grad():
        for _, _, child in attached(model):
            child.up.weight.zero_(), child.up.bias.zero_()
    crafting = CraftingCopy()
    at_init = crafting(model)
    assert not crafting.refreshable and attached(at_init.model) == []  # the identities were dropped
    train_like(model, trainable, torch.Generator().manual_seed(2))
    trained = crafting(model)
    assert trained is not at_init and crafting.refreshable and attached(trained.model)
    assert crafting(model) is trained


def test_a_user_hook_or_a_changed_hook_set_gets_a_fresh_copy():
    model, _ = _trained("tiny-mobilenet", "adapter")
    crafting = CraftingCopy()
    kept = crafting(model)
    assert crafting(model) is kept
    handle = model.head_module().register_forward_hook(lambda module, args, out: out * 2)
    try:
        assert refresh_plan(model, prepare_for_attack(model)) is None  # a user's hook: its code is unknown
        changed = crafting(model)
        assert changed is not kept and not crafting.refreshable
        assert prepared_copy(model) is not prepared_copy(model)
        with torch.no_grad():
            torch.testing.assert_close(changed(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)
    finally:
        handle.remove()
    assert crafting(model) is not changed  # the hook removed: prepared again, then kept
    assert crafting.refreshable


def test_no_plan_when_a_model_tensor_has_no_place_in_the_copy():
    """The plan reads every tensor of the model: one the copy has no place for (here a module added after the copy
    was made; in practice an adaptation the copy merged or dropped) means the copy is not the model's image."""
    model, _ = _trained("tiny-mobilenet", "full")
    prepared = prepare_for_attack(model)
    assert refresh_plan(model, prepared) is not None
    model.extra = torch.nn.Linear(2, 2)
    assert refresh_plan(model, prepared) is None


def test_no_plan_when_the_copy_runs_other_hooks_than_the_model():
    model, _ = _trained("tiny-mobilenet", "adapter")
    prepared = prepare_for_attack(model)
    assert refresh_plan(model, prepared) is not None
    target = next(m for m in prepared.modules() if m._forward_hooks)
    target._forward_hooks.clear()  # the adapter module is still there, its hook gone: the copy skips it
    assert refresh_plan(model, prepared) is None


def test_a_copy_that_keeps_the_phm_projections_is_refreshed_by_name():
    """Only a plain layer standing for a PHM projection is rewritten through ``write_plain``; a copy that kept the
    projection itself (prepared without ``plain_projections``) has its factors copied like any tensor."""
    import copy

    def keep_projections(model):
        return PreparedModel(copy.deepcopy(model).eval().requires_grad_(False), False)

    model, trainable = _trained("tiny-mobilenet", "compacter")
    crafting = CraftingCopy(prepare=keep_projections)
    kept = crafting(model)
    assert crafting.refreshable and not crafting.plan.derived
    train_like(model, trainable, torch.Generator().manual_seed(5))
    assert crafting(model) is kept
    with torch.no_grad():
        assert torch.equal(kept(IMAGES), model(IMAGES))
