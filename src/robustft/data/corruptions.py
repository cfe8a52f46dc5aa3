"""Common corruptions (OOD splits) in torch, severities 1..5, deterministic for (seed, sample index).

Each corruption is ``fn(images, severity, generators) -> images``: images float N x C x H x W in [0, 1] (C = 1 or
3), one ``torch.Generator`` per sample for the random parts, output the same shape in [0, 1]. Severity
parameters follow the CIFAR-10-C recipe (Hendrycks & Dietterich 2019) adapted to [0, 1] tensors; spatial ones
(blurs) scale with the image size relative to 32 px, so a severity means the same visual strength at any size.
A sample's random draws depend only on (seed, its index in the source split, the corruption name), so the same
image is corrupted identically whatever subset or process loads it, and the draws do not change with severity
(higher severity = the same noise, scaled up: the distance to the clean image grows monotonically).
Written by hand because the reference implementation (imagecorruptions) is numpy/scipy/skimage/wand per image,
needs ImageMagick for some corruptions and is neither batched nor seedable per sample.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustft.data.augment import rotate
from robustft.errors import ConfigError
from robustft.registry import Registry

Corruption = Callable[[torch.Tensor, int, Sequence[torch.Generator]], torch.Tensor]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")
SEVERITIES = (1, 2, 3, 4, 5)


def check_severity(severity: object, what: str = "corruption") -> int:
    """``severity`` as an int in 1..5, else a ConfigError."""
    try:
        value = int(str(severity).strip()) if not isinstance(severity, bool) else None
    except ValueError:
        value = None
    if value not in SEVERITIES:
        raise ConfigError(f"severity {severity!r} of {what} must be an integer from 1 (mild) to 5 (strongest), "
                          "as in fashion-mnist@gaussian_noise:3.")
    return value


def _level(values: Sequence[float], severity: int) -> float:
    return values[severity - 1]


def _per_sample(generators: Sequence[torch.Generator], draw: Callable[[torch.Generator], torch.Tensor],
                device: torch.device) -> torch.Tensor:
    return torch.stack([draw(g) for g in generators]).to(device)


def _spatial_scale(images: torch.Tensor) -> float:
    return min(images.shape[-2:]) / 32.0


def _depthwise(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c = images.shape[1]
    k = kernel.to(images)[None, None].expand(c, 1, -1, -1)
    pad = kernel.shape[-1] // 2
    return F.conv2d(F.pad(images, (pad,) * 4, mode="replicate"), k, groups=c)


@CORRUPTIONS.register("gaussian_noise")
def gaussian_noise(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Additive Gaussian noise, sigma 0.04 .. 0.10."""
    sigma = _level((0.04, 0.06, 0.08, 0.09, 0.10), severity)
    noise = _per_sample(generators, lambda g: torch.randn(images.shape[1:], generator=g), images.device)
    return (images + sigma * noise).clamp(0, 1)


@CORRUPTIONS.register("shot_noise")
def shot_noise(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Poisson (photon) noise, photon count 500 .. 50 at full intensity (normal approximation, same draws)."""
    photons = _level((500, 250, 100, 75, 50), severity)
    # Normal approximation of Poisson(x * photons) / photons: variance x / photons. Using one fixed standard
    # normal draw per pixel keeps the noise identical across severities, only scaled.
    noise = _per_sample(generators, lambda g: torch.randn(images.shape[1:], generator=g), images.device)
    return (images + noise * torch.sqrt(images.clamp(min=0) / photons)).clamp(0, 1)


@CORRUPTIONS.register("impulse_noise")
def impulse_noise(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Salt-and-pepper noise on 1% .. 7% of the pixel values."""
    amount = _level((0.01, 0.02, 0.03, 0.05, 0.07), severity)
    u = _per_sample(generators, lambda g: torch.rand(images.shape[1:], generator=g), images.device)
    out = torch.where(u < amount / 2, torch.zeros_like(images), images)
    return torch.where(u > 1 - amount / 2, torch.ones_like(images), out)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel (odd size covering 3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = g[:, None] * g[None, :]
    return kernel / kernel.sum()


@CORRUPTIONS.register("gaussian_blur")
def gaussian_blur(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Gaussian blur, sigma 0.4 .. 1.0 px at 32 px (scaled with the image size)."""
    sigma = _level((0.4, 0.6, 0.7, 0.8, 1.0), severity) * _spatial_scale(images)
    return _depthwise(images, gaussian_kernel(sigma)).clamp(0, 1)


def disk_kernel(radius: float) -> torch.Tensor:
    """Normalised anti-aliased disk (the defocus point-spread function) of ``radius`` pixels."""
    size = math.ceil(radius) + 1
    x = torch.arange(-size, size + 1, dtype=torch.float32)
    distance = torch.sqrt(x[:, None] ** 2 + x[None, :] ** 2)
    kernel = (radius + 0.5 - distance).clamp(0, 1)
    return kernel / kernel.sum()


@CORRUPTIONS.register("defocus_blur")
def defocus_blur(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Defocus (disk) blur, radius 0.6 .. 2 px at 32 px (scaled with the image size)."""
    radius = _level((0.6, 0.9, 1.2, 1.5, 2.0), severity) * _spatial_scale(images)
    return _depthwise(images, disk_kernel(radius)).clamp(0, 1)


@CORRUPTIONS.register("contrast")
def contrast(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Contrast reduced towards each image's mean, factor 0.75 .. 0.15."""
    factor = _level((0.75, 0.5, 0.4, 0.3, 0.15), severity)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * factor + mean).clamp(0, 1)


@CORRUPTIONS.register("brightness")
def brightness(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Brightness raised by 0.1 .. 0.5 (value channel; saturated pixels stay at 1)."""
    shift = _level((0.1, 0.2, 0.3, 0.4, 0.5), severity)
    return (images + shift).clamp(0, 1)


def _fog_pattern(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A low-frequency random field in [0, 1] (H x W): noise octaves at 1/16 .. 1/2 resolution, 1/f weights."""
    h, w = shape
    field = torch.zeros(1, 1, h, w)
    for octave, weight in ((16, 1.0), (8, 0.5), (4, 0.25), (2, 0.125)):
        coarse = torch.rand(1, 1, max(2, h // octave), max(2, w // octave), generator=generator)
        field += weight * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    field -= field.min()
    return (field / field.max().clamp(min=1e-8))[0, 0]


@CORRUPTIONS.register("fog")
def fog(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """A fog-like low-frequency bright overlay of strength 0.2 .. 1.5 blended in, as in CIFAR-10-C's fog."""
    strength = _level((0.2, 0.5, 0.75, 1.0, 1.5), severity)
    pattern = _per_sample(generators, lambda g: _fog_pattern(tuple(images.shape[-2:]), g), images.device)
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    return ((images + strength * pattern[:, None]) * peak / (peak + strength)).clamp(0, 1)


@CORRUPTIONS.register("rotation")
def rotation(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Rotation by 5 .. 30 degrees, direction random per sample (zero fill)."""
    angle = _level((5.0, 10.0, 15.0, 20.0, 30.0), severity)
    sign = _per_sample(generators, lambda g: torch.randint(0, 2, (), generator=g) * 2 - 1, torch.device("cpu"))
    return rotate(images, sign.to(torch.float32) * angle).clamp(0, 1)


@CORRUPTIONS.register("pixelate")
def pixelate(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Area-downsampled to 95% .. 60% of the size, then enlarged back with nearest neighbour."""
    factor = _level((0.95, 0.9, 0.8, 0.7, 0.6), severity)
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest").clamp(0, 1)


@CORRUPTIONS.register("jpeg")
def jpeg(images: torch.Tensor, severity: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """JPEG compression at quality 80 .. 20 (Pillow's encoder, as the reference corruption uses)."""
    quality = int(_level((80, 60, 45, 30, 20), severity))
    pixels = images.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for array in pixels:
        buffer = io.BytesIO()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out = np.asarray(Image.open(buffer).convert("L" if array.shape[-1] == 1 else "RGB"))
        decoded.append(torch.from_numpy(out.reshape(array.shape).copy()))
    return torch.stack(decoded).permute(0, 3, 1, 2).to(images.device, torch.float32).div_(255)


def sample_generators(seed: int, indices: torch.Tensor, name: str) -> list[torch.Generator]:
    """One generator per sample, seeded by (seed, source index, corruption name) with a stable hash."""
    tag = zlib.crc32(name.encode())
    return [torch.Generator().manual_seed((int(seed) * 1_000_003 + int(i) * 7919 + tag) % (2**63 - 1))
            for i in indices.tolist()]


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0,
            indices: torch.Tensor | None = None) -> torch.Tensor:
    """Corrupts float images N x C x H x W in [0, 1] with ``name`` at ``severity`` (deterministic per index).

    Args:
        indices: each sample's identity for its random draws (default 0 .. N-1).
    """
    fn = CORRUPTIONS.get(name)
    severity = check_severity(severity, name)
    if indices is None:
        indices = torch.arange(images.shape[0])
    return fn(images, severity, sample_generators(seed, indices, name))
