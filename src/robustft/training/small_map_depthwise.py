"""Depthwise convolutions whose weights are being trained, on maps of at most 2 x 2 pixels, as one broadcast product.

Why this exists: at the demo's 32 px the last ten inverted-residual blocks of MobileNetV2 run their 3 x 3
depthwise convolutions on 2 x 2 and 1 x 1 maps (32 / 16). When the weight gradient is wanted (full fine-tuning:
paper A's ``full``, every paper B run), the CPU backward of those ten convolutions took 130 of the 244 ms of one
training step (batch 64, one thread, channels_last; measured per op on 2026-12-07), and more with two threads:
the kernel is built for large maps and pays its set-up per channel. On a map of P <= 4 pixels a depthwise
convolution is a P x Q matrix per channel (Q output pixels)::

    out[n, c, q] = sum_p x[n, c, p] * M[c, p, q],   M[c, p, q] = weight[c, 0, tap(p, q)]  (0 where none)

``M`` gathers, for each input pixel p and output pixel q, the kernel tap that joins them (zero-padding taps join
none). The product, its sum and the gather are a handful of small tensor operations whose autograd backward
computes the input and the weight gradient in well under a millisecond per layer. With a frozen weight
(parameter-efficient strategies, attacks) the library kernel's input-gradient-only backward is the faster one
(the product measured 0.68-0.85x there), so the product is used only when the weight requires grad.

How it is applied: ``SmallMapDepthwise`` is a ``TorchFunctionMode`` the trainer's training forward runs under
(``robustft.training.objectives``), so no module of the model is replaced: checkpoints, exports, prepared attack
copies and strategies see the model exactly as built. Every other call passes through unchanged. No library does
this (torch has no small-map depthwise path), hence the hand-written product.

Equality with ``torch.conv2d``: the same sums in another order, so equal up to float rounding (float64: ~1e-15);
tests/test_small_map_depthwise.py checks values, both gradients and every fallback, and tests/test_fast_paths.py
a training step of every strategy x backbone with and without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["MAX_PIXELS", "SmallMapDepthwise", "depthwise_as_product", "small_map_depthwise_applies"]

# Maps of at most this many pixels take the product. 4 x 4 maps (16 pixels) measured slower with it (1.28x for the
# whole step against 1.50x with 2 x 2 and 1 x 1 only): the product's size grows as P x Q = 256 per channel there.
MAX_PIXELS = 4

_TAP_INDEX: dict[tuple[int, ...], torch.Tensor] = {}


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def tap_index(height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int],
              padding: tuple[int, int]) -> torch.Tensor:
    """For each input pixel p (row-major over height x width) and output pixel q, the flat kernel tap joining them.

    Returns:
        LongTensor (height * width) x (out_height * out_width), values in [0, kh * kw]; kh * kw (one past the last
        tap) where no tap joins p and q (the caller appends a zero there). Cached per geometry.
    """
    key = (height, width, *kernel, *stride, *padding)
    cached = _TAP_INDEX.get(key)
    if cached is not None:
        return cached
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out_h, out_w = _output_size(height, kh, sh, ph), _output_size(width, kw, sw, pw)
    index = torch.full((height * width, out_h * out_w), kh * kw, dtype=torch.long)
    for oi in range(out_h):
        for oj in range(out_w):
            for ki in range(kh):
                for kj in range(kw):
                    i, j = oi * sh - ph + ki, oj * sw - pw + kj
                    if 0 <= i < height and 0 <= j < width:
                        index[i * width + j, oi * out_w + oj] = ki * kw + kj
    _TAP_INDEX[key] = index
    return index


def depthwise_as_product(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """``torch.conv2d(images, weight, bias, stride, padding, groups=C)`` for a depthwise weight, as a product.

    Args:
        images: N x C x H x W (any memory format; meant for H * W <= MAX_PIXELS).
        weight: C x 1 x kh x kw.
        bias: C or None.
        stride, padding: (rows, columns); zero padding, dilation 1.

    Returns:
        N x C x out_h x out_w, channels_last when ``images`` is (so the next layer sees the layout it expects).
    """
    n, c, h, w = images.shape
    kh, kw = weight.shape[-2:]
    index = tap_index(h, w, (kh, kw), stride, padding)
    out_h, out_w = _output_size(h, kh, stride[0], padding[0]), _output_size(w, kw, stride[1], padding[1])
    taps = torch.cat([weight.reshape(c, kh * kw), weight.new_zeros(c, 1)], dim=1)
    per_channel = taps[:, index]  # C x P x Q
    if h * w == 1:
        out = images.reshape(n, c, 1) * per_channel.reshape(1, c, out_h * out_w)
    else:
        out = (images.reshape(n, c, h * w, 1) * per_channel).sum(dim=2)
    out = out.reshape(n, c, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, c, 1, 1)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out


_CONV2D_PARAMETERS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV2D_DEFAULTS: dict[str, Any] = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _conv2d_arguments(args: Sequence[Any], kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``torch.conv2d``'s arguments by name, its defaults filled in."""
    named = dict(_CONV2D_DEFAULTS)
    named.update(zip(_CONV2D_PARAMETERS, args, strict=False))
    named.update(kwargs or {})
    return named


def small_map_depthwise_applies(images: torch.Tensor, weight: torch.Tensor, dilation: Any, groups: int,
                                padding: Any) -> bool:
    """Whether ``conv2d(images, weight, ..., dilation, groups, padding)`` takes the product: a batched CPU float
    depthwise convolution (one filter per channel, dilation 1, numeric padding) on a map of at most MAX_PIXELS
    pixels whose weight requires grad while autograd records."""
    if not (isinstance(images, torch.Tensor) and isinstance(weight, torch.Tensor)):
        return False
    if images.dim() != 4 or weight.dim() != 4 or images.device.type != "cpu" or not images.is_floating_point():
        return False
    if not (weight.requires_grad and torch.is_grad_enabled()) or isinstance(padding, str):
        return False
    channels = images.shape[1]
    if not (groups == channels == weight.shape[0] and weight.shape[1] == 1 and channels > 1):
        return False
    if _pair(dilation) != (1, 1) or images.shape[-2] * images.shape[-1] > MAX_PIXELS:
        return False
    (kh, kw), (ph, pw) = weight.shape[-2:], _pair(padding)
    return images.shape[-2] + 2 * ph >= kh and images.shape[-1] + 2 * pw >= kw


class SmallMapDepthwise(TorchFunctionMode):
    """Inside it, ``torch.conv2d`` calls that ``small_map_depthwise_applies`` to run as ``depthwise_as_product``;
    every other call (and every conv2d that does not apply) runs unchanged."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if func is torch.conv2d:
            named = _conv2d_arguments(args, kwargs)
            if small_map_depthwise_applies(named.get("input"), named.get("weight"), named["dilation"],
                                           named["groups"], named["padding"]):
                return depthwise_as_product(named["input"], named["weight"], named["bias"], _pair(named["stride"]),
                                            _pair(named["padding"]))
        return func(*args, **(kwargs or {}))
