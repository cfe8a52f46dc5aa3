"""A depthwise convolution on a 1 x 1 map as the per-channel scale it is: the last depthwise layers of a prepared CNN.

A depthwise convolution (one group per channel) with an odd k x k kernel padded by (k - 1) / 2 sees, on a 1 x 1
map, the input pixel at its centre tap and zero padding everywhere else, whatever its stride: its one output
pixel is ``x * w[c, 0, k // 2, k // 2] + b[c]``. The embedded MobileNetV2 at 32 px reaches 1 x 1 at the three
960-channel blocks, and there oneDNN's depthwise kernel costs about 20 times the elementwise product: on a batch
of 160, 2 threads, forward 0.24 ms against 0.012 ms, input gradient 0.27 ms against 0.012 ms (2026-12-07, idle).
So on a CPU and a 1 x 1 map the module computes ``addcmul(bias, x, centre)`` (or ``x * centre`` without bias),
and autograd gives the input gradient ``grad * centre``; every other input runs ``nn.Conv2d.forward``.

Same values as the convolution up to float rounding (one product and one sum instead of nine products with
zeros; tests/test_depthwise_pixel.py), the same module, name and parameters (only the class changes, as for
``PointwiseConv2d``), so the prepared copy's in-place refresh writes the same tensors. On CUDA the convolution is
kept: not measured there. No library rewrites a module by its input's shape; it is a few lines of torch.
"""

from __future__ import annotations

import torch
from torch import nn


def is_centred_depthwise(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is depthwise (groups = in = out channels) with an odd square-or-not kernel padded by half
    of it with zeros and no dilation: on a 1 x 1 map it then multiplies each channel by its kernel's centre."""
    if conv.groups != conv.in_channels or conv.out_channels != conv.in_channels or conv.padding_mode != "zeros":
        return False
    if isinstance(conv.padding, str) or tuple(conv.dilation) != (1, 1):
        return False
    return all(k % 2 == 1 and p == k // 2 for k, p in zip(conv.kernel_size, conv.padding, strict=True))


class DepthwisePixelConv2d(nn.Conv2d):
    """A centred depthwise ``nn.Conv2d`` that runs as a per-channel scale (plus bias) on a CPU 1 x 1 map.

    Same parameters and module as the convolution it replaces; any other input runs ``nn.Conv2d.forward``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, float N x C x H x W. Returns: N x C x H' x W' (1 x 1 when H = W = 1)."""
        if x.dim() == 4 and x.shape[-1] == 1 and x.shape[-2] == 1 and x.device.type == "cpu":
            kh, kw = self.kernel_size
            centre = self.weight[:, 0, kh // 2, kw // 2].view(1, -1, 1, 1)
            return x * centre if self.bias is None else torch.addcmul(self.bias.view(1, -1, 1, 1), x, centre)
        return super().forward(x)
