"""seeded(): one definition, deterministic inside, invisible to the caller's random stream."""

import torch
from torch import nn

from robustft import seeding
from robustft.models import backbone, embedded_vit, timm_source
from robustft.strategies import adapter, compacter, lora, peft_tuner, vpt


def test_same_seed_same_weights_and_the_callers_stream_moves_on_as_if_nothing_happened():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeding.seeded(7):
        first = nn.Linear(4, 2).weight.detach().clone()
    assert torch.equal(torch.rand(3), expected)
    with seeding.seeded(7):
        assert torch.equal(nn.Linear(4, 2).weight, first)


def test_model_heads_and_strategy_modules_are_seeded_by_the_one_helper():
    users = (backbone, embedded_vit, timm_source, adapter, compacter, lora, peft_tuner, vpt)
    assert all(module.seeded is seeding.seeded for module in users)
