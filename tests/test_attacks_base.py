"""attacks.base's pieces on their own: Attack's name and description, the L2 projection and ascent direction per
sample, and the random start's distribution and reproducibility.

Written against the survivors of mutation testing (scripts/mutation.py on attacks/base.py): the attacks' box and
radius checks hold for a start that is not uniform or a projection that uses the batch's norm instead of each
sample's, because every point they return is still in the ball.
"""

from __future__ import annotations

import pytest
import torch

from robustft.attacks import pgd
from robustft.attacks.base import Attack, ascent_direction, project, random_start


def test_describe_lists_the_options_but_not_the_generator_and_with_options_keeps_the_name():
    attack = Attack("pgd", pgd, {"steps": 3, "loss": "ce", "generator": torch.Generator()})
    assert attack.describe() == "pgd(loss=ce, steps=3)"
    assert Attack("fgsm", pgd).describe() == "fgsm"
    changed = attack.with_options(steps=5)
    assert changed.name == "pgd" and changed.options["steps"] == 5 and changed.options["loss"] == "ce"
    assert attack.options["steps"] == 3  # the original is unchanged


def test_l2_projection_shrinks_each_sample_to_its_own_radius():
    images = torch.full((3, 3, 4, 4), 0.5)
    direction = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.01
    direction = direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    lengths = torch.tensor([0.4, 0.1, 0.25]).view(-1, 1, 1, 1)  # outside, inside, on the ball of radius 0.25
    projected = project(images + lengths * direction, images, 0.25, "l2")
    norms = (projected - images).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([0.25, 0.1, 0.25]))
    torch.testing.assert_close(projected[1], (images + lengths * direction)[1])  # inside: unchanged


def test_l2_ascent_direction_has_unit_norm_per_sample():
    grad = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    grad = grad * torch.tensor([1e-3, 1.0, 50.0]).view(-1, 1, 1, 1)
    direction = ascent_direction(grad, "l2")
    torch.testing.assert_close(direction.flatten(1).norm(dim=1), torch.ones(3))
    torch.testing.assert_close(direction * grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1), grad)


def test_linf_random_start_is_uniform_over_the_ball():
    images = torch.full((16, 3, 16, 16), 0.5)
    eps = 0.1
    delta = (random_start(images, eps, "linf", torch.Generator().manual_seed(0)) - images).flatten()
    assert delta.min().item() >= -eps - 1e-7 and delta.max().item() <= eps + 1e-7
    assert delta.mean().item() == pytest.approx(0.0, abs=0.01 * eps)
    # uniform on [-eps, eps]: a quarter of the draws in each quarter, none piled on a face by clipping
    quarters = torch.histc(delta, bins=4, min=-eps, max=eps) / delta.numel()
    torch.testing.assert_close(quarters, torch.full((4,), 0.25), atol=0.02, rtol=0)
    assert ((delta.abs() - eps).abs() < 1e-7).float().mean() < 0.001


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_reproducible_from_its_generator(norm):
    images = torch.full((8, 3, 8, 8), 0.5)
    first = random_start(images, 0.2, norm, torch.Generator().manual_seed(7))
    again = random_start(images, 0.2, norm, torch.Generator().manual_seed(7))
    other = random_start(images, 0.2, norm, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_l2_random_start_has_radii_spread_over_the_ball():
    images = torch.full((512, 3, 8, 8), 0.5)
    radii = (random_start(images, 0.2, "l2", torch.Generator().manual_seed(0)) - images).flatten(1).norm(dim=1)
    # a uniform radius in [0, eps]: 512 draws reach within 1% of eps at the top and come near 0 at the bottom
    assert 0.198 < radii.max().item() <= 0.2 + 1e-6
    assert radii.min().item() < 0.01 and radii.mean().item() == pytest.approx(0.1, abs=0.01)
