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


def _linear_model(classes: int) -> nn.Module:
    """A plain torch classifier on 3 x 4 x 4 images, without robustft's ``.info``: the class count comes from the
    logits alone."""
    g = torch.Generator().manual_seed(classes)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, classes))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, 48, generator=g))
        model[1].bias.zero_()
    return model.eval()


@pytest.mark.parametrize(("classes", "targets"), [(12, 9), (4, 3)])
def test_apgd_t_attacks_the_top_nine_other_classes_or_all_of_them(classes, targets):
    model = _linear_model(classes)
    images = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels = model(images).argmax(1)
    # eps far below every sample's margin: none is fooled, so every target class gets its run over every sample.
    x_adv, seen = _attack(model, images, labels, eps=1e-4, steps=2, targeted=True)
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1), labels)
    assert len(seen) == 1 + targets * 3  # the clean pass, then x(0), x(1), x(2) per target class


def test_apgd_t_needs_four_classes():
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match=r"needs at least 4 classes, the model has 3; use apgd-ce"):
        apgd(_linear_model(3), images, torch.zeros(2, dtype=torch.long), EPS, targeted=True, prepare=False)


def test_early_stop_keeps_attacking_the_last_sample_left():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(2, seed=1)
    labels = torch.stack([(labels[0] + 1) % 4, labels[1]])  # sample 0 is misclassified: it leaves at step 0
    eps = 2 / 255  # sample 1 stays robust: its path is the same with or without early stop
    stopped, _ = _attack(model, images, labels, eps=eps, steps=5, random_start=False, early_stop=True)
    full, _ = _attack(model, images, labels, eps=eps, steps=5, random_start=False, early_stop=False)
    with torch.no_grad():
        logits = model(torch.cat([images[1:], stopped[1:], full[1:]]))
    assert (logits.argmax(1) == labels[1]).all()
    clean_loss, stopped_loss, full_loss = F.cross_entropy(logits, labels[1].repeat(3), reduction="none").tolist()
    assert stopped_loss == pytest.approx(full_loss, rel=1e-4) and stopped_loss > clean_loss + 1e-3


def test_restarts_stop_once_every_sample_is_fooled():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(6, seed=1)
    with torch.no_grad():
        wrong = (model(images).argmax(1) + 1) % 4  # every sample misclassified from the start
    _, seen = _attack(model, images, wrong, steps=2, restarts=3)
    assert len(seen) == 3  # the first run's x(0), x(1), x(2); the later restarts have no sample left


def test_a_later_restart_never_replaces_a_higher_loss_point():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(16, seed=2)
    eps = 2 / 255  # robust here: no sample is fooled, so the second run attacks all of them again
    one, _ = _attack(model, images, labels, eps=eps, steps=3, restarts=1)
    two, _ = _attack(model, images, labels, eps=eps, steps=3, restarts=2)  # same first run (same generator)
    with torch.no_grad():
        logits_one, logits_two = model(one), model(two)
    assert (logits_one.argmax(1) == labels).all() and (logits_two.argmax(1) == labels).all()
    loss_one = F.cross_entropy(logits_one, labels, reduction="none")
    loss_two = F.cross_entropy(logits_two, labels, reduction="none")
    assert (loss_two >= loss_one - 1e-6).all()  # each sample keeps the better of its two runs' points
    assert (loss_two > loss_one + 1e-4).any()  # and the second run did find a better point for some


def test_every_restart_attacks_a_single_sample_still_robust():
    model = prepare_for_attack(trained_tiny_cnn())
    images, labels = quadrant_task(1, seed=2)
    x_adv, seen = _attack(model, images, labels, eps=1 / 255, steps=2, restarts=3)
    with torch.no_grad():
        assert model(x_adv).argmax(1) == labels  # never fooled, so each restart attacks it again
    assert len(seen) == 9
