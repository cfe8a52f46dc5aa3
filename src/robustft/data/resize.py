"""Batched antialiased bilinear resizing of uint8 image arrays (torch ``interpolate``, in chunks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_CHUNK = 2048


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resizes uint8 N x C x H x W images to N x C x size x size (antialiased bilinear, rounded back to uint8).

    Chunked so that the float copy never exceeds a few hundred MB, whatever N is.
    """
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _CHUNK):
        chunk = images[start:start + _CHUNK].to(torch.float32)
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + _CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out
