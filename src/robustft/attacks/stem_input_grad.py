"""The input gradient of a CNN's stem (3 x 3, stride 2, a few input channels) as one matrix product and four sums.

An attack needs the gradient of the loss with respect to the image, so every pass ends in the input gradient of
the first convolution. For the embedded MobileNetV2's stem (3 -> 32 channels, 3 x 3, stride 2, padding 1, at 32 px)
oneDNN's backward-data kernel, which writes a 3-channel output, was the costliest single operation of a forward +
input-gradient pass: 5.4 ms of about 70 on 2 threads at batch 160 (2026-12-07, idle), for 35 million
multiply-adds that a matrix product does in about 1 ms.

The gradient is computed here as what it is. With g the output gradient (N x C_out x H_o x W_o) and w the kernel,
``P = g @ w`` (one (N H_o W_o) x C_out by C_out x (C_in 3 3) product) holds, for every output pixel (m, k) and tap
(u, v), the contribution to input pixel (2m + u - 1, 2k + v - 1). At stride 2 every input pixel is of one of four
phases (row even or odd, column even or odd), and each phase receives a fixed set of taps from output pixel
(m, k) and its neighbours (m + 1, k), (m, k + 1), (m + 1, k + 1):

    row 2m     <- tap row 1 of output row m
    row 2m + 1 <- tap row 2 of output row m, tap row 0 of output row m + 1

(columns alike). So the input gradient is nine strided copies and sums of P's slices, written straight into a
channels_last tensor. Measured on the stem's shapes (input gradient alone, median of 20-40, idle, 2026-12-07):
batch 160 at 32 px 5.35 -> 2.99 ms on 2 threads and 6.46 -> 4.06 ms on 1; batch 256 6.14 -> 3.46 and 10.13 ->
6.48; 64 images at 64 px 1.23x / 1.29x; but 160 at 64 px 1.02x / 0.98x, 64 at 128 px 0.74x / 0.83x and 64 at 224 px
84 against 139 ms: the taps tensor (27 floats per output pixel) outgrows the cache. So ``StemConv2d`` takes this
path only for a 3 x 3 stride-2 kernel on at most ``MAX_INPUT_PIXELS`` input pixels per call (N x H x W: a batch of
256 at 32 px), on the CPU, when the input needs a gradient and the weights do not (the prepared copy is frozen);
anything else, a 7 x 7 or stride-1 stem included (slower this way too), is the convolution.

Same values as the convolution's input gradient up to float rounding (another summation order:
tests/test_stem_input_grad.py), same module, name and parameters (only the class changes). Written by hand: no
library offers a faster stride-2 backward-data; the formula is the convolution's adjoint split by phase.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_INPUT_PIXELS = 256 * 32 * 32  # N x H x W; measured faster up to here, slower beyond (module docstring)
MAX_IN_CHANNELS = 4  # an image's channels (grey, RGB, RGBA): oneDNN's kernel is slow writing so few


def is_stem(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a 3 x 3, stride-2, padding-1 zero-padded convolution, one group, no dilation, with at
    most ``MAX_IN_CHANNELS`` input channels."""
    return (tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (2, 2) and conv.padding == (1, 1)
            and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and conv.in_channels <= MAX_IN_CHANNELS)


def stem_input_grad(grad: torch.Tensor, weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The input gradient of ``conv2d(x, weight, stride=2, padding=1)`` for output gradient ``grad``.

    Args:
        grad: N x C_out x H_o x W_o (any layout; channels_last avoids a copy).
        weight: C_out x C_in x 3 x 3.
        height, width: the input's H and W (H_o = (H - 1) // 2 + 1, W_o alike).

    Returns:
        N x C_in x H x W in channels_last memory.
    """
    n, c_out, h_o, w_o = grad.shape
    c_in = weight.shape[1]
    rows = grad.permute(0, 2, 3, 1).reshape(-1, c_out)  # a view when grad is channels_last
    taps = (rows @ weight.to(grad.dtype).reshape(c_out, c_in * 9)).view(n, h_o, w_o, c_in, 3, 3)

    def tap(u: int, v: int) -> torch.Tensor:  # N x H_o x W_o x C_in: what output pixel (m, k) gives via tap (u, v)
        return taps[:, :, :, :, u, v]

    full = torch.empty((n, c_in, 2 * h_o, 2 * w_o), dtype=grad.dtype, device=grad.device,
                       memory_format=torch.channels_last)
    # The same memory as N x H_o x (row phase) x W_o x (column phase) x C_in.
    phases = full.permute(0, 2, 3, 1).view(n, h_o, 2, w_o, 2, c_in)
    phases[:, :, 0, :, 0] = tap(1, 1)
    phases[:, :, 0, :, 1] = tap(1, 2)
    phases[:, :, 0, :-1, 1] += tap(1, 0)[:, :, 1:]
    phases[:, :, 1, :, 0] = tap(2, 1)
    phases[:, :-1, 1, :, 0] += tap(0, 1)[:, 1:]
    phases[:, :, 1, :, 1] = tap(2, 2)
    phases[:, :, 1, :-1, 1] += tap(2, 0)[:, :, 1:]
    phases[:, :-1, 1, :, 1] += tap(0, 2)[:, 1:]
    phases[:, :-1, 1, :-1, 1] += tap(0, 0)[:, 1:, 1:]
    if (height, width) == (2 * h_o, 2 * w_o):
        return full
    return full[:, :, :height, :width].contiguous(memory_format=torch.channels_last)  # odd sizes: one row less


class _StemConv(torch.autograd.Function):
    """``conv2d(x, weight, bias, stride=2, padding=1)``; backward: the input gradient only (weights frozen)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.size = (x.shape[-2], x.shape[-1])
        return F.conv2d(x, weight, bias, 2, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (weight,) = ctx.saved_tensors
        return stem_input_grad(grad, weight, *ctx.size), None, None


class StemConv2d(nn.Conv2d):
    """A stem ``nn.Conv2d`` (``is_stem``) whose input gradient on small CPU maps comes from ``stem_input_grad``.

    Same parameters and module as the convolution it replaces; values are the convolution's own.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, float N x C_in x H x W. Returns: N x C_out x H_o x W_o."""
        if (x.dim() == 4 and x.device.type == "cpu" and torch.is_grad_enabled() and x.requires_grad
                and not self.weight.requires_grad and (self.bias is None or not self.bias.requires_grad)
                and x.shape[0] * x.shape[-2] * x.shape[-1] <= MAX_INPUT_PIXELS):
            return _StemConv.apply(x, self.weight, self.bias)
        return super().forward(x)
