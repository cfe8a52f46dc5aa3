"""Attacking the model object itself (``prepare=False``) leaves it as found: every module's train/eval mode, every
parameter's ``requires_grad`` and ``.grad``, and the BatchNorm statistics; also when the attack fails midway.

With the default ``prepare=True`` the attack runs on a copy, so only ``prepare=False`` shows whether
``attacks.base.attack_mode`` restores what it changed (the objectives' crafting and ``eval`` use that path).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from robustft.attacks import build_attack
from robustft.attacks.base import attack_mode
from robustft.models.tiny import tiny_cnn

FAST = {"fgsm": {}, "pgd": {"steps": 2}, "apgd-ce": {"steps": 2}, "apgd-t": {"steps": 2, "n_target_classes": 2},
        "square": {"n_queries": 5}, "cascade": {"steps": 2, "n_target_classes": 2, "n_queries": 5}}


def _model_in_a_mixed_state() -> torch.nn.Module:
    """Train mode except one BatchNorm, one frozen parameter, a .grad on the head's weight only."""
    model = tiny_cnn(num_classes=5, width=4, seed=2).train()
    model.backbone.features[1].eval()
    model.backbone.features[0].weight.requires_grad_(False)
    model.backbone.classifier.weight.grad = torch.full_like(model.backbone.classifier.weight, 3.0)
    return model


def _state(model: torch.nn.Module) -> dict:
    return {"modes": {name: m.training for name, m in model.named_modules()},
            "flags": {name: p.requires_grad for name, p in model.named_parameters()},
            "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
            "buffers": {name: b.clone() for name, b in model.named_buffers()}}


def _assert_same(after: dict, before: dict) -> None:
    assert after["modes"] == before["modes"]
    assert after["flags"] == before["flags"]
    assert after["grads"].keys() == before["grads"].keys()
    for name, grad in before["grads"].items():
        assert (after["grads"][name] is None) == (grad is None), name
        assert grad is None or torch.equal(after["grads"][name], grad), name
    # eval mode while attacking: adversarial batches do not move the running statistics
    assert all(torch.equal(after["buffers"][name], b) for name, b in before["buffers"].items())


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 8, 8, generator=generator), torch.randint(0, 5, (6,), generator=generator)


@pytest.mark.parametrize("name", sorted(FAST))
def test_attacking_the_model_itself_restores_its_state(name):
    model = _model_in_a_mixed_state()
    before = _state(model)
    images, labels = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the once-per-process "BatchNorm in train mode" notice
        x_adv = build_attack(name, **FAST[name], prepare=False)(model, images, labels, 8 / 255)
    assert (x_adv - images).abs().max() > 0  # the attack ran
    _assert_same(_state(model), before)


class StopError(RuntimeError):
    pass


@pytest.mark.parametrize("name", ["pgd", "apgd-ce", "fgsm"])
def test_an_attack_that_fails_midway_restores_the_state_too(name):
    model = _model_in_a_mixed_state()
    calls = []

    def fail_on_second_forward(module, inputs):
        # inside the attack: the model is in eval mode and frozen at this point
        assert not module.training and not any(p.requires_grad for p in module.parameters())
        calls.append(1)
        if len(calls) == 2:
            raise StopError("stop")

    model.register_forward_pre_hook(fail_on_second_forward)
    before = _state(model)
    images, labels = _batch()
    with warnings.catch_warnings(), pytest.raises(StopError):
        warnings.simplefilter("ignore")
        build_attack(name, **FAST[name], prepare=False)(model, images, labels, 8 / 255)
    _assert_same(_state(model), before)


def test_attack_mode_restores_on_an_exception():
    model = _model_in_a_mixed_state()
    before = _state(model)
    with warnings.catch_warnings(), pytest.raises(StopError):
        warnings.simplefilter("ignore")
        with attack_mode(model):
            assert not any(m.training for m in model.modules())
            assert not any(p.requires_grad for p in model.parameters())
            raise StopError("inside")
    _assert_same(_state(model), before)
