"""TRADES' inner maximisation step by step (start, step size, projection, ascent) and the autocast update pass.

Written against the survivors of mutation testing (scripts/mutation.py on training/objectives.py): the ball and
box checks of tests/test_objectives.py hold for a start, a step or a projection that is wrong, because any point
of the ball passes them.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustft.training.objectives import ObjectiveContext, get_objective, trades_inner_max


def _interior_images(seed: int = 0) -> torch.Tensor:
    """8 images with every pixel in [0.4, 0.6]: no step below 0.4 is clipped by the [0, 1] box."""
    generator = torch.Generator().manual_seed(seed)
    return 0.4 + 0.2 * torch.rand(8, 3, 32, 32, generator=generator)


def _kl_sum(model: nn.Module, images: torch.Tensor, moved: torch.Tensor) -> float:
    with torch.no_grad():
        natural = F.softmax(model(images), 1)
        return float(F.kl_div(F.log_softmax(model(moved), 1), natural, reduction="sum"))


def test_zero_steps_return_the_start_a_tiny_gaussian_clipped_to_the_box(tiny_cnn):
    # Pixels at 0 and at 1: a start not clipped to [0, 1] leaves the box there.
    images = _interior_images()
    images[:, 0, :8] = 0.0
    images[:, 1, :8] = 1.0
    torch.manual_seed(0)
    start = trades_inner_max(tiny_cnn, images, eps=8 / 255, steps=0)
    assert start.min() >= 0 and start.max() <= 1
    assert (start[:, 0, :8] == 0).float().mean() == pytest.approx(0.5, abs=0.05)  # half the noise was negative
    assert (start[:, 1, :8] == 1).float().mean() == pytest.approx(0.5, abs=0.05)
    noise = (start - images)[:, 2]  # a channel with no pixel near the box
    assert noise.std().item() == pytest.approx(0.001, rel=0.05)
    assert noise.abs().max().item() < 0.006


@pytest.mark.parametrize(("step_size", "expected"), [(None, 0.3 / 4), (0.05, 0.05)])
def test_one_step_moves_every_pixel_by_the_step_size(tiny_cnn, step_size, expected):
    # eps 0.3: the ball does not clip one step of eps/4; the start's 0.001 noise blurs it by a few thousandths.
    images = _interior_images()
    torch.manual_seed(0)
    moved = trades_inner_max(tiny_cnn, images, eps=0.3, steps=1, step_size=step_size)
    distance = (moved - images).abs()
    assert distance.max().item() == pytest.approx(expected, abs=0.006)
    assert distance.median().item() == pytest.approx(expected, abs=0.003)


def test_a_step_larger_than_eps_is_projected_onto_the_ball_on_both_sides(tiny_cnn):
    images = _interior_images()
    eps = 0.05
    torch.manual_seed(0)
    moved = trades_inner_max(tiny_cnn, images, eps=eps, steps=1, step_size=1.0)
    delta = moved - images
    on_boundary = (delta.abs() - eps).abs() < 1e-6
    assert on_boundary.float().mean() > 0.99  # every pixel with a gradient went to a face of the cube
    assert (delta > 0).float().mean() > 0.2 and (delta < 0).float().mean() > 0.2  # up and down: both faces


def test_the_inner_steps_raise_the_kl_above_a_random_corner_of_the_ball(tiny_cnn):
    # Sign steps of a fixed size land about one step away from x even when they descend the KL, so beating the
    # start is no evidence of ascent; a random corner of the ball (the same size of perturbation) is.
    images = _interior_images()
    eps = 8 / 255
    torch.manual_seed(0)
    adversarial = trades_inner_max(tiny_cnn, images, eps, steps=7)
    corners = [images + eps * torch.randn(images.shape, generator=torch.Generator().manual_seed(s)).sign()
               for s in range(3)]
    tiny_cnn.eval()
    assert _kl_sum(tiny_cnn, images, adversarial) > 2 * max(_kl_sum(tiny_cnn, images, c) for c in corners)


class _FirstChannelOnly(nn.Module):
    """A classifier that reads channel 0 only: the KL gradient is exactly 0 on channels 1 and 2."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(32 * 32, 10)
        torch.nn.init.normal_(self.linear.weight, std=0.5, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, 0].flatten(1))


def test_pixels_without_a_gradient_stay_at_the_start():
    images = _interior_images()
    torch.manual_seed(0)
    moved = trades_inner_max(_FirstChannelOnly(), images, eps=0.1, steps=3)
    unseen = (moved - images)[:, 1:]
    assert unseen.abs().max().item() < 0.006  # the start's noise only: sign(0) = 0 moves nothing
    assert (moved - images)[:, 0].abs().median().item() > 0.05  # while the channel the model reads moved


@pytest.mark.parametrize("name", ["standard", "adversarial", "trades"])
def test_the_update_pass_runs_under_the_autocast_factory(name, tiny_cnn, tiny_batch):
    images, labels = tiny_batch
    entered: list[int] = []

    @contextlib.contextmanager
    def autocast():
        entered.append(1)
        yield

    context = ObjectiveContext(attack=lambda m, x, y, e: x, autocast=autocast, steps=1, prepare_attack=False)
    loss, logits = get_objective(name)(tiny_cnn, images, labels, 0.0, context)
    assert entered == [1]
    tiny_cnn.train()
    with torch.no_grad():
        torch.testing.assert_close(logits, tiny_cnn(images))
    torch.testing.assert_close(loss.detach(), F.cross_entropy(logits, labels).detach())
