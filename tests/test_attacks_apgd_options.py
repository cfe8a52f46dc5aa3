"""APGD's options and edges: its defaults, bad budgets, eps 0, one sample, no random start, early stop, APGD-T.

Each test counts or records the points the model is queried at (a forward pre-hook), so it checks what APGD did,
not only what it returned. The model is the tiny CNN trained on the quadrant task (tests/test_attacks_support.py).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks import apgd, prepare_for_attack
from robustft.errors import ConfigError
from test_attacks_support import quadrant_task, trained_tiny_cnn

EPS = 8 / 255


def _queried(model: nn.Module) -> tuple[list[torch.Tensor], object]:
    """The inputs of every forward pass of ``model`` from now on, and the hook's handle (remove it after)."""
    seen: list[torch.Tensor] = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen, handle


def _attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float = EPS, **options
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """apgd on ``model`` itself (prepare=False), with the inputs it queried."""
    seen, handle = _queried(model)
    try:
        x_adv = apgd(model, images, labels, eps, prepare=False, generator=torch.Generator().manual_seed(0), **options)
    finally:
        handle.remove()
    return x_adv, seen


def test_the_default_budget_is_ten_steps():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(6, seed=1)
    _, seen = _attack(model, images, labels)
    # Untargeted APGD-CE-10 without early stop: x(0), ..., x(10), one pass each and no clean pass.
    assert len(seen) == 11


@pytest.mark.parametrize(("steps", "restarts"), [(0, 1), (1, 0)])
def test_a_budget_below_one_step_or_one_restart_is_a_config_error(steps, restarts):
    images, labels = quadrant_task(2, seed=1)
    with pytest.raises(ConfigError, match=rf"steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}"):
        apgd(trained_tiny_cnn(), images, labels, EPS, steps=steps, restarts=restarts)


def test_eps_zero_returns_the_images_without_querying_the_model():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(4, seed=1)
    x_adv, seen = _attack(model, images, labels, eps=0.0, steps=3)
    assert torch.equal(x_adv, images) and x_adv is not images
    assert seen == []


def test_a_single_sample_is_attacked():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(1, seed=1)
    x_adv, seen = _attack(model, images, labels, steps=3)
    assert len(seen) == 4
    with torch.no_grad():
        clean, attacked = (F.cross_entropy(model(x), labels) for x in (images, x_adv))
    assert attacked > clean


def test_without_random_start_the_first_query_is_the_clean_image():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(4, seed=1)
    _, seen = _attack(model, images, labels, steps=2, random_start=False)
    assert torch.equal(seen[0], images)
    _, seen = _attack(model, images, labels, steps=2, random_start=True)
    assert not torch.equal(seen[0], images)
