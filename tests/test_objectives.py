"""Objectives: values, eval-mode crafting, eps=0 skipping, TRADES' ball constraint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustft.training.objectives import OBJECTIVES, ObjectiveContext, get_objective, trades_inner_max


def _context(calls: list, **kwargs) -> ObjectiveContext:
    def attack(model, images, labels, eps):
        calls.append((model.training, eps))
        return (images + eps).clamp(0, 1)

    return ObjectiveContext(attack=attack, **kwargs)


def test_registry_lists_the_three_objectives():
    assert OBJECTIVES.names() == ["adversarial", "standard", "trades"]


def test_standard_is_cross_entropy_in_train_mode(tiny_cnn, tiny_batch):
    images, labels = tiny_batch
    tiny_cnn.eval()
    loss, logits = get_objective("standard")(tiny_cnn, images, labels, 0.1, ObjectiveContext())
    assert tiny_cnn.training
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))


def test_adversarial_crafts_in_eval_mode_then_updates_in_train_mode(tiny_cnn, tiny_batch):
    images, labels = tiny_batch
    calls: list = []
    modes: list = []
    context = _context(calls, train_mode=lambda m: (modes.append("train"), m.train()))
    loss, logits = get_objective("adversarial")(tiny_cnn, images, labels, 4 / 255, context)
    assert calls == [(False, 4 / 255)]
    assert modes == ["train"] and tiny_cnn.training
    tiny_cnn.train()
    expected = F.cross_entropy(tiny_cnn((images + 4 / 255).clamp(0, 1)), labels)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("name", ["adversarial", "trades"])
def test_eps_zero_skips_the_attack_and_equals_standard(name, tiny_cnn, tiny_batch):
    images, labels = tiny_batch
    calls: list = []
    torch.manual_seed(0)
    loss, _ = get_objective(name)(tiny_cnn, images, labels, 0.0, _context(calls))
    assert calls == []
    torch.manual_seed(0)
    reference, _ = get_objective("standard")(tiny_cnn, images, labels, 0.0, ObjectiveContext())
    torch.testing.assert_close(loss, reference)


def test_trades_inner_max_stays_in_the_ball_and_raises_kl(tiny_cnn, tiny_batch):
    images, _ = tiny_batch
    eps = 8 / 255
    tiny_cnn.train()
    adversarial = trades_inner_max(tiny_cnn, images, eps, steps=5)
    assert tiny_cnn.training  # mode restored
    assert (adversarial - images).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    tiny_cnn.eval()
    with torch.no_grad():
        natural = F.softmax(tiny_cnn(images), 1)
        kl_adv = F.kl_div(F.log_softmax(tiny_cnn(adversarial), 1), natural, reduction="sum")
        kl_noise = F.kl_div(F.log_softmax(tiny_cnn((images + 0.001 * torch.randn_like(images)).clamp(0, 1)), 1),
                            natural, reduction="sum")
    assert kl_adv > kl_noise


def _hand_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) || softmax(q)) averaged over the batch, written out: sum_c p_c (log p_c - log q_c) / N."""
    p, log_p, log_q = p_logits.softmax(1), p_logits.log_softmax(1), q_logits.log_softmax(1)
    return (p * (log_p - log_q)).sum() / len(p_logits)


def _fixed_inner_max(monkeypatch, adversarial: torch.Tensor) -> None:
    import robustft.training.objectives as objectives

    monkeypatch.setattr(objectives, "trades_inner_max", lambda model, images, eps, steps, step_size=None: adversarial)


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_loss_is_natural_ce_plus_beta_kl(beta, tiny_cnn, tiny_batch, monkeypatch):
    # The reference's update (yaodongyu/TRADES): train-mode forward passes over x and x' SEPARATELY, so each is
    # normalised with its own BatchNorm statistics (tiny_cnn has BatchNorm), then CE(f(x), y) + beta * KL.
    images, labels = tiny_batch
    # A large fixed x' (the inner maximisation is replaced) so that the KL term is far from 0 on an untrained CNN.
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)).sign()
    adversarial = (images + 0.25 * noise).clamp(0, 1)
    _fixed_inner_max(monkeypatch, adversarial)
    loss, logits = get_objective("trades")(tiny_cnn, images, labels, 8 / 255,
                                           ObjectiveContext(beta=beta, prepare_attack=False))
    tiny_cnn.train()
    with torch.no_grad():
        natural, adversarial_logits = tiny_cnn(images), tiny_cnn(adversarial)
    labels_p = natural.log_softmax(1)[torch.arange(len(labels)), labels]
    expected = -labels_p.mean() + beta * _hand_kl(natural, adversarial_logits)
    torch.testing.assert_close(logits, natural)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    if beta:
        assert _hand_kl(natural, adversarial_logits) > 1e-4  # the KL term is really there


def test_trades_fused_pass_pools_batchnorm_statistics_and_is_opt_in(tiny_cnn, tiny_vit, tiny_batch, monkeypatch):
    images, labels = tiny_batch
    adversarial = (0.5 + 0.5 * images).clamp(0, 1)  # brighter: batch statistics unlike the clean half's
    _fixed_inner_max(monkeypatch, adversarial)
    trades = get_objective("trades")
    fused, _ = trades(tiny_cnn, images, labels, 8 / 255, ObjectiveContext(prepare_attack=False, trades_fused=True))
    tiny_cnn.train()
    with torch.no_grad():
        both = tiny_cnn(torch.cat([images, adversarial]))  # one batch: pooled BatchNorm statistics
    ce = F.cross_entropy(both[:16], labels)
    torch.testing.assert_close(fused.detach(), ce + 6.0 * _hand_kl(both[:16], both[16:]), rtol=1e-5, atol=1e-6)
    separate, _ = trades(tiny_cnn, images, labels, 8 / 255, ObjectiveContext(prepare_attack=False))
    assert abs(float(separate.detach()) - float(fused.detach())) > 1e-2  # they differ on a BatchNorm backbone
    # Without BatchNorm (a ViT: LayerNorm is per sample) the fused pass is the same function.
    vit_fused, _ = trades(tiny_vit, images, labels, 8 / 255, ObjectiveContext(prepare_attack=False, trades_fused=True))
    vit_separate, _ = trades(tiny_vit, images, labels, 8 / 255, ObjectiveContext(prepare_attack=False))
    torch.testing.assert_close(vit_fused, vit_separate, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["standard", "adversarial", "trades"])
def test_every_objective_backpropagates_on_a_vit(name, tiny_vit, tiny_batch):
    images, labels = tiny_batch
    loss, logits = get_objective(name)(tiny_vit, images, labels, 2 / 255, _context([], steps=2))
    loss.backward()
    assert logits.shape == (16, 10)
    assert tiny_vit.backbone.head.weight.grad is not None



@pytest.mark.parametrize("name", ["adversarial", "trades"])
def test_inner_attack_computes_no_weight_gradients_and_restores_the_flags(name, tiny_cnn, tiny_batch):
    images, labels = tiny_batch
    tiny_cnn.backbone.features[0].weight.requires_grad_(False)  # a frozen parameter stays frozen
    seen: list = []

    def attack(model, x, y, eps):
        seen.append([p.requires_grad for p in model.parameters()])
        return (x + eps).clamp(0, 1)

    context = ObjectiveContext(attack=attack, steps=2)
    if name == "trades":  # its hand-written inner loop: check through autograd that weights get no gradient
        original = torch.autograd.grad
        context_calls: list = []

        def spying_grad(outputs, inputs, *args, **kwargs):
            context_calls.append([p.requires_grad for p in tiny_cnn.parameters()])
            return original(outputs, inputs, *args, **kwargs)

        torch.autograd.grad = spying_grad
        try:
            loss, _ = get_objective(name)(tiny_cnn, images, labels, 4 / 255, context)
        finally:
            torch.autograd.grad = original
        seen = context_calls
    else:
        loss, _ = get_objective(name)(tiny_cnn, images, labels, 4 / 255, context)
    assert seen and all(not any(flags) for flags in seen)
    loss.backward()
    assert tiny_cnn.backbone.classifier.weight.grad is not None
    assert not tiny_cnn.backbone.features[0].weight.requires_grad
    assert tiny_cnn.backbone.features[1].weight.requires_grad


def test_crafting_model_is_a_prepared_copy_with_the_same_function():
    import torch

    from robustft.models.tiny import tiny_cnn
    from robustft.training.objectives import ObjectiveContext, crafting_model

    model = tiny_cnn(10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepared = crafting_model(model, ObjectiveContext())
    assert prepared is not model and not any(p.requires_grad for p in prepared.parameters())
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(prepared(x), model.eval()(x), atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    assert crafting_model(model, ObjectiveContext(prepare_attack=False)) is model
