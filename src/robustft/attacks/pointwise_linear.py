"""A 1 x 1 convolution on a small map as the matrix product it is: the pointwise layers of a prepared CNN.

A 1 x 1 convolution (no padding, one group) maps each pixel's channel vector through the same matrix; when the
feature map itself is 1 x 1 pixel it is exactly ``F.linear`` of the flattened input, (N x C_in) @ (C_in x C_out)
plus the bias. The embedded MobileNetV2 at 32 px reaches 1 x 1 at its last eight pointwise layers (the 160- and
320-channel blocks and the 1280-channel head), and there oneDNN's ``brgconv_1x1`` kernel, tuned for many pixels
per image, runs a batch of 256 at about half the speed of the matrix product: on 1 thread, forward + input
gradient of the 320 -> 1280 layer 6.2 ms as a convolution against 3.9 ms as ``F.linear``, 160 -> 960 1.8 against
1.5 ms (2026-12-06, idle). These layers were 37% of the convolution time of a forward + input-gradient pass of the
prepared copy (oneDNN's verbose log: 29 of 78 ms on 1 thread). Measured on the prepared embedded MobileNetV2 (batch
256, 32 px, forward + input gradient, median of 8 interleaved rounds, idle, 2026-12-06): 1.14x on 1 thread and
1.15x on 2; at batch 64 1.17x / 1.11x, at batch 16 1.15x / 1.09x; at 64 px, where no map is 1 x 1, 0.99x / 1.01x.

On a larger map in channels_last memory (which the prepared copy uses) the pixels' channel vectors are already the
rows of an (N H W) x C_in matrix, so at stride 1 the convolution is one matrix product on that memory, written
into a new channels_last tensor, with no copy either way (``_SmallMapProduct``; its backward, the input gradient
only, is the product with the transposed matrix). Forward + input gradient, batch 160, median of 30, idle,
2026-12-07: 2 threads 64 -> 384 at 2 x 2 0.68 -> 0.52 ms, 96 -> 576 1.22 -> 1.02, 32 -> 192 at 4 x 4 0.61 -> 0.54;
but 24 -> 144 at 8 x 8 1.54 -> 2.15 (there oneDNN's kernel wins), hence ``MAX_PIXELS`` = 16 (1 thread alike:
1.13-1.20x at 2 x 2, 1.04-1.06x at 4 x 4, 0.76-0.79x at 8 x 8). The output must be a tensor of its own: returned
as a permuted view of the product, the in-place ReLU6 after an expansion layer made autograd copy the whole base
on every pass, and the layer lost. Taken only where the weights need no gradient (the prepared and crafting copies
are frozen), so a trainable ``PointwiseConv2d`` still gets its weight gradients from the convolution. The logits
differ from the convolution's by float rounding only (another summation order; 1.4e-6 relative on the loss and
the input gradient). On CUDA the convolution is kept: not measured there.

No library rewrites a module by its input's shape this way; it is a few lines of torch. ``prepare_for_attack``
swaps it in for plain 1 x 1 ``nn.Conv2d`` modules only (``swap_pointwise``): the class changes, the module, its
name and its parameters stay, so the crafting copy's in-place refresh (training/crafting.py) writes the same
tensors. tests/test_pointwise_linear.py holds values and input gradients to the convolution's, and
tests/test_fast_paths.py every strategy x backbone to the trained model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def is_pointwise(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a 1 x 1 convolution with no padding and one group (a per-pixel matrix product)."""
    # "same" and "valid" both pad a 1 x 1 kernel by nothing.
    no_padding = conv.padding in ("same", "valid") or tuple(conv.padding) == (0, 0)
    return tuple(conv.kernel_size) == (1, 1) and no_padding and conv.groups == 1


MAX_PIXELS = 16  # maps of 2 x 2 .. 4 x 4 measured faster as a product; 8 x 8 slower (module docstring)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """N x C x H x W channels_last -> (N H W) x C: the same memory, no copy."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _channels_last_product(rows: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None,
                           shape: tuple[int, int, int, int]) -> torch.Tensor:
    """``rows @ matrix.T + bias`` written into a new N x C x H x W channels_last tensor of ``shape``: a tensor of
    its own, not a view (an in-place ReLU6 may follow; on a view autograd would copy the whole base)."""
    out = torch.empty(shape, dtype=rows.dtype, device=rows.device, memory_format=torch.channels_last)
    target = _rows(out)
    if bias is None:
        torch.mm(rows, matrix.t(), out=target)
    else:
        torch.addmm(bias, rows, matrix.t(), out=target)
    return out


class _SmallMapProduct(torch.autograd.Function):
    """A stride-1 1 x 1 convolution of a channels_last map as one matrix product; backward: the input gradient
    (the weights are frozen), again one product into a channels_last tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(matrix)
        n, _, h, w = x.shape
        return _channels_last_product(_rows(x), matrix, bias, (n, matrix.shape[0], h, w))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (matrix,) = ctx.saved_tensors
        n, _, h, w = grad.shape
        return _channels_last_product(_rows(grad), matrix.t(), None, (n, matrix.shape[1], h, w)), None, None


class PointwiseConv2d(nn.Conv2d):
    """A 1 x 1 ``nn.Conv2d`` that runs as a matrix product on a CPU when its input map is small: ``F.linear`` on
    N x C x 1 x 1, and at stride 1 on channels_last maps of at most ``MAX_PIXELS`` pixels.

    Same parameters and module as the convolution it replaces; any other input runs ``nn.Conv2d.forward``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, float N x C_in x H x W. Returns: N x C_out x H' x W' (H' = H, W' = W at stride 1)."""
        if x.dim() != 4 or x.device.type != "cpu":
            return super().forward(x)
        if x.shape[-1] == 1 and x.shape[-2] == 1:
            # A 1 x 1 map: every stride gives one output pixel, the input pixel itself (padding is 0).
            return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]
        if (x.shape[-1] * x.shape[-2] <= MAX_PIXELS and tuple(self.stride) == (1, 1)
                and x.is_contiguous(memory_format=torch.channels_last) and not self.weight.requires_grad
                and (self.bias is None or not self.bias.requires_grad)):
            matrix = self.weight.flatten(1)
            if torch.is_grad_enabled() and x.requires_grad:
                return _SmallMapProduct.apply(x, matrix, self.bias)
            n, _, h, w = x.shape
            return _channels_last_product(_rows(x), matrix, self.bias, (n, matrix.shape[0], h, w))
        return super().forward(x)
