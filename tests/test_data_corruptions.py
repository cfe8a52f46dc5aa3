"""OOD corruptions: every one is deterministic per (seed, index), stays in [0, 1], keeps the shape, and moves
the image further from the clean one as the severity grows; bad names and severities are clear errors."""

from __future__ import annotations

import pytest
import torch

from robustft.data import CORRUPTIONS, corrupt
from robustft.data.corruptions import check_severity
from robustft.errors import ConfigError, UnknownNameError

EXPECTED = {"gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "defocus_blur", "contrast",
            "brightness", "fog", "rotation", "pixelate", "jpeg"}


def natural_images(n: int = 6, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Structured images in [0.1, 0.8]: smooth gradients plus a bright square, like objects on a background."""
    generator = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = []
    for _ in range(n):
        a, b, c = torch.rand(3, generator=generator)
        image = (0.1 + 0.3 * (a * x + (1 - a) * y)).expand(channels, size, size).clone()
        top, left = int(4 + 10 * b), int(4 + 10 * c)
        image[:, top:top + 12, left:left + 10] = 0.8 * torch.rand(channels, 1, 1, generator=generator)
        images.append(image)
    return torch.stack(images)


def test_the_registry_has_every_required_corruption():
    assert EXPECTED <= set(CORRUPTIONS.names())
    assert all(CORRUPTIONS.entry(n).description for n in CORRUPTIONS.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("channels", [1, 3])
def test_corruption_is_deterministic_in_range_and_shape_preserving(name, channels):
    images = natural_images(channels=channels)
    indices = torch.arange(10, 10 + len(images))
    a = corrupt(images, name, 3, seed=5, indices=indices)
    b = corrupt(images, name, 3, seed=5, indices=indices)
    assert a.shape == images.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, images, atol=1e-3)
    # per-sample draws: sample k of a batch equals the same sample corrupted alone
    alone = corrupt(images[2:3], name, 3, seed=5, indices=indices[2:3])
    assert torch.allclose(alone, a[2:3], atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_distance_from_the_clean_image_grows_with_severity(name):
    images = natural_images()
    distances = [(corrupt(images, name, s, seed=1) - images).pow(2).mean().sqrt().item() for s in range(1, 6)]
    assert all(lower < higher for lower, higher in zip(distances[:-1], distances[1:], strict=True)), (name, distances)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "fog"])
def test_random_corruptions_depend_on_seed_and_index(name):
    images = natural_images(n=2)
    base = corrupt(images, name, 3, seed=0, indices=torch.tensor([0, 1]))
    assert not torch.equal(base, corrupt(images, name, 3, seed=1, indices=torch.tensor([0, 1])))
    assert not torch.equal(base, corrupt(images, name, 3, seed=0, indices=torch.tensor([7, 8])))


def test_rotation_direction_is_random_per_sample():
    image = natural_images(n=1).expand(40, -1, -1, -1)
    rotated = corrupt(image, "rotation", 5, seed=0, indices=torch.arange(40))
    assert len({tuple(r.flatten()[:64].tolist()) for r in rotated}) == 2


def test_unknown_corruption_and_bad_severity_are_clear_errors():
    images = natural_images(n=1)
    with pytest.raises(UnknownNameError, match="Did you mean 'contrast'"):
        corrupt(images, "contrst", 2)
    for bad in (0, 6, -1, "x", 2.5, True, None):
        with pytest.raises(ConfigError, match="from 1 \\(mild\\) to 5"):
            corrupt(images, "contrast", bad)
    assert check_severity("4") == 4
