"""Compacter's PHM projections become plain frozen layers in a copy that never trains (``as_plain``,
``strategies.plain_projections``, run by ``attacks.prepare_for_attack``): the same function and input gradient."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from robustft import strategies
from robustft.attacks import prepare_for_attack
from robustft.strategies.compacter import PHMProjection, PHMRules
from test_fast_paths import input_gradient


def _projection(channel_dim: int, seed: int = 0) -> PHMProjection:
    torch.manual_seed(seed)
    projection = PHMProjection(8, 12, 4, 2, PHMRules(4, 0.5, ("shared",)), "shared", channel_dim, zero=False)
    with torch.no_grad():
        projection.bias.normal_()
    return projection


@pytest.mark.parametrize("channel_dim, shape", [(1, (3, 8, 5, 5)), (-1, (3, 7, 8))])
def test_as_plain_computes_the_projection_and_its_input_gradient(channel_dim, shape):
    projection = _projection(channel_dim)
    plain = projection.as_plain()
    assert isinstance(plain, nn.Conv2d if channel_dim == 1 else nn.Linear)
    assert not any(p.requires_grad for p in plain.parameters())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(plain(x), projection(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(input_gradient(plain, x), input_gradient(projection, x), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        projection.t.mul_(2)  # a snapshot: the plain layer keeps the W it was made with
    assert not torch.allclose(plain(x), projection(x))


def test_the_prepared_compacter_copy_has_no_phm_projection_and_the_model_keeps_its_own():
    from robustft.models.tiny import tiny_mobilenet

    model = tiny_mobilenet(num_classes=5)
    strategies.apply(model, "compacter")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("up.t"):
                param.normal_()  # trained: the blocks stay in the copy
    count = sum(isinstance(m, PHMProjection) for m in model.modules())
    assert count > 0
    assert strategies.plain_projections(copy.deepcopy(model)) == count
    prepared = prepare_for_attack(model.eval())
    assert not any(isinstance(m, PHMProjection) for m in prepared.modules())
    assert sum(isinstance(m, PHMProjection) for m in model.modules()) == count  # the model is not touched
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(prepared(images), model(images), rtol=1e-4, atol=1e-4)
