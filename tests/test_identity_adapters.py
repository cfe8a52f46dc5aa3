"""Adapters still at their zero init are exact identities, and ``strategies.merge`` drops them (with Compacter's
shared rules once no block uses them): at step 0 an adapted model's prepared copy is the plain backbone's, so a
study evaluates step 0 once for every strategy (``training.evaluation_reuse``). Any non-zero entry of an
up-projection keeps the block."""

from __future__ import annotations

import copy

import pytest
import torch

from robustft import strategies
from robustft.attacks import prepare_for_attack
from robustft.errors import ConfigError
from robustft.strategies.hooks import attached
from test_fast_paths import BACKBONES, input_gradient, pretrained_like

ADAPTERS = ("adapter", "compacter")


def _models(backbone: str, name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the plain backbone, the same backbone with ``name`` applied at init), both pretrained-like, eval mode."""
    plain = BACKBONES[backbone]()
    pretrained_like(plain, torch.Generator().manual_seed(0))
    adapted = copy.deepcopy(plain)
    strategies.apply(adapted, name)
    return plain.eval(), adapted.eval()


def _images() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_an_adapter_at_init_computes_the_plain_logits_and_input_gradient_bit_for_bit(backbone, name):
    plain, adapted = _models(backbone, name)
    assert attached(adapted) and all(child.is_identity() for _, _, child in attached(adapted))
    images = _images()
    with torch.no_grad():
        assert torch.equal(adapted(images), plain(images))
    assert torch.equal(input_gradient(adapted, images), input_gradient(plain, images))


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_merge_drops_identity_adapters_and_their_rules(backbone, name):
    plain, adapted = _models(backbone, name)
    merged = strategies.merge(copy.deepcopy(adapted), strict=True)  # nothing left that cannot be exported plain
    assert attached(merged) == []
    assert merged.state_dict().keys() == plain.state_dict().keys()
    assert repr(prepare_for_attack(merged)) == repr(prepare_for_attack(plain))
    images = _images()
    with torch.no_grad():
        assert torch.equal(prepare_for_attack(adapted)(images), prepare_for_attack(plain)(images))
    assert torch.equal(input_gradient(prepare_for_attack(adapted), images),
                       input_gradient(prepare_for_attack(plain), images))


def _up_tensors(name: str, child: torch.nn.Module) -> list[torch.Tensor]:
    return [child.up.weight, child.up.bias] if name == "adapter" else [child.up.t, child.up.bias]


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("which", [0, 1])
def test_one_non_zero_up_entry_keeps_that_block_and_the_shared_rules(name, which):
    _, adapted = _models("tiny-mobilenet", name)
    blocks = attached(adapted)
    assert len(blocks) > 1
    target = blocks[1][2]
    with torch.no_grad():
        _up_tensors(name, target)[which].view(-1)[0] = 1e-30  # any non-zero value, however small
    assert not target.is_identity()
    assert [child.is_identity() for _, _, child in blocks].count(False) == 1
    merged = strategies.merge(copy.deepcopy(adapted))
    kept = attached(merged)
    assert len(kept) == 1 and kept[0][1] == blocks[1][1]
    assert hasattr(merged, "compacter_rules") == (name == "compacter")
    images = _images()
    with torch.no_grad():
        assert torch.equal(merged(images), adapted(images))
    with pytest.raises(ConfigError, match="cannot be merged"):
        strategies.merge(copy.deepcopy(adapted), strict=True)


def test_a_rule_module_in_use_is_never_dropped():
    _, adapted = _models("tiny-mobilenet", "compacter")
    assert not adapted.compacter_rules.unused_in(adapted)
    merged = strategies.merge(copy.deepcopy(adapted))
    assert adapted.compacter_rules.unused_in(merged)
