"""Batch-level training augmentations on float [0, 1] NCHW tensors, deterministic for a ``torch.Generator``.

Specs: ``"flip"`` (horizontal, p = 0.5), ``"color_jitter:S"`` (brightness, contrast and saturation factors each
uniform in [1 - S, 1 + S], per sample), ``"rotation:D"`` (angle uniform in [-D, D] degrees, per sample),
``"crop:P"`` (pad P pixels by reflection, random crop back). Paper B uses flip + color_jitter:0.25 + a small
rotation. Written with plain torch ops because torchvision's v2 transforms draw one set of parameters per call
(the whole batch) from the global RNG, and we need per-sample parameters from an explicit generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from robustft.errors import ConfigError, UnknownNameError

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(device)


def flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirrors each image left-right with probability 0.5."""
    mask = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


def color_jitter(strength: float) -> Augmentation:
    """Per-sample brightness, contrast and saturation factors in [1 - strength, 1 + strength]."""

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, device = images.shape[0], images.device
        low, high = max(0.0, 1 - strength), 1 + strength
        brightness, contrast, saturation = (_uniform(n, low, high, generator, device).view(-1, 1, 1, 1)
                                            for _ in range(3))
        out = images * brightness
        grey = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
        out = (out - grey.mean(dim=(2, 3), keepdim=True)) * contrast + grey.mean(dim=(2, 3), keepdim=True)
        grey = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
        out = (out - grey) * saturation + grey
        return out.clamp(0.0, 1.0)

    return apply


def rotate(images: torch.Tensor, angles_degrees: torch.Tensor) -> torch.Tensor:
    """Rotates each image about its centre by its angle (bilinear, zero fill outside)."""
    theta = angles_degrees.to(images.device, torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotation(degrees: float) -> Augmentation:
    """Per-sample rotation by an angle uniform in [-degrees, degrees]."""

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        angles = torch.rand(images.shape[0], generator=generator) * 2 * degrees - degrees
        return rotate(images, angles)

    return apply


def crop(padding: int) -> Augmentation:
    """Per-sample random crop of the reflect-padded image back to its size."""

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        padded = F.pad(images, (padding,) * 4, mode="reflect" if padding < min(h, w) else "replicate")
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
        return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])

    return apply


def _number(spec: str, text: str | None, default: float, low: float, high: float) -> float:
    try:
        value = default if text in (None, "") else float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"augmentation {spec!r}: the parameter must be a number in [{low}, {high}].")
    return value


AUGMENTATIONS = {
    "flip": "horizontal flip, p=0.5",
    "color_jitter": "color_jitter:S, brightness/contrast/saturation in [1-S, 1+S] (default 0.25)",
    "rotation": "rotation:D, angle in [-D, D] degrees (default 10)",
    "crop": "crop:P, reflect-pad P pixels and crop back (default 4)",
}


def _one(spec: str) -> Augmentation:
    name, _, parameter = str(spec).strip().partition(":")
    if name == "flip":
        if parameter:
            raise ConfigError(f"augmentation {spec!r}: flip takes no parameter.")
        return flip
    if name == "color_jitter":
        return color_jitter(_number(spec, parameter, 0.25, 0.0, 1.0))
    if name == "rotation":
        return rotation(_number(spec, parameter, 10.0, 0.0, 180.0))
    if name == "crop":
        value = _number(spec, parameter, 4, 0, 64)
        if value != int(value):
            raise ConfigError(f"augmentation {spec!r}: crop padding must be a whole number of pixels.")
        return crop(int(value))
    import difflib

    close = difflib.get_close_matches(name, list(AUGMENTATIONS), n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown augmentation {spec!r}.{hint} Valid: "
                           + "; ".join(f"{k} ({v})" for k, v in AUGMENTATIONS.items()) + ".")


def build_augmentation(spec: str | list[str] | tuple[str, ...] | None) -> Augmentation | None:
    """The composed augmentation ``aug(images, generator) -> images`` for a spec, or None for None / [].

    Args:
        spec: one spec string, a comma-separated string, or a list of them (applied in order).

    Images are float B x C x H x W in [0, 1] and stay in [0, 1]; the result depends only on the images and
    the generator's state.
    """
    if spec is None:
        return None
    items = [s for part in ([spec] if isinstance(spec, str) else list(spec)) for s in str(part).split(",") if s.strip()]
    if not items:
        return None
    steps = [_one(item) for item in items]

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in steps:
            images = step(images, generator)
        return images

    augment.specs = items  # type: ignore[attr-defined]  # for messages and reprs
    return augment
