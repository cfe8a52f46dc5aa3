"""The benchmarks' input images: the first test images of the embedded Fashion-MNIST (read with robustft's IDX
reader from the Debian package's directory), bilinearly resized and repeated to 3 channels, in [0, 1]; smooth
random images where the dataset is missing, so that a benchmark still measures speed (not accuracy levels)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from robustft.data.embedded import FASHION_DEFAULT, FASHION_FILES
from robustft.data.idx import read_idx


def fashion_images(count: int, size: int) -> torch.Tensor:
    """``count`` x 3 x ``size`` x ``size`` float images in [0, 1] (the same ones on every call)."""
    path = Path(FASHION_DEFAULT) / FASHION_FILES["test"][0]
    if path.exists():
        images = torch.from_numpy(read_idx(path)[:count].copy()).float().div(255)[:, None]
    else:
        noise = torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        images = F.avg_pool2d(noise, 3, 1, 1)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False).clamp(0, 1).repeat(1, 3, 1, 1)
