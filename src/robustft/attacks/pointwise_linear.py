"""A 1 x 1 convolution on a 1 x 1 image as the matrix product it is: the pointwise layers of a prepared CNN.

A 1 x 1 convolution (no padding, one group) maps each pixel's channel vector through the same matrix; when the
feature map itself is 1 x 1 pixel it is exactly ``F.linear`` of the flattened input, (N x C_in) @ (C_in x C_out)
plus the bias. The embedded MobileNetV2 at 32 px reaches 1 x 1 at its last eight pointwise layers (the 160- and
320-channel blocks and the 1280-channel head), and there oneDNN's ``brgconv_1x1`` kernel, tuned for many pixels
per image, runs a batch of 256 at about half the speed of the matrix product: on 1 thread, forward + input
gradient of the 320 -> 1280 layer 6.2 ms as a convolution against 3.9 ms as ``F.linear``, 160 -> 960 1.8 against
1.5 ms (2026-12-06, idle). These layers were 37% of the convolution time of a forward + input-gradient pass of the
prepared copy (oneDNN's verbose log: 29 of 78 ms on 1 thread). With more than one pixel the convolution kernel
wins (2 x 2: 0.62 ms against 1.00 ms for 64 -> 384), so the switch is per call, on the input's shape.

Measured on the prepared embedded MobileNetV2 (batch 256, 32 px, forward + input gradient, median of 8
interleaved rounds, idle, 2026-12-06): 1.14x on 1 thread and 1.15x on 2; at batch 64 1.17x / 1.11x, at batch 16
1.15x / 1.09x; at 64 px, where no map is 1 x 1, 0.99x / 1.01x. The logits differ from the convolution's
by float rounding only (another summation order; 1.4e-6 relative on the loss and the input gradient there).
On CUDA the convolution is kept: not measured there.

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


class PointwiseConv2d(nn.Conv2d):
    """A 1 x 1 ``nn.Conv2d`` that runs as ``F.linear`` on a CPU when its input is N x C x 1 x 1.

    Same parameters and module as the convolution it replaces; any other input runs ``nn.Conv2d.forward``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, float N x C_in x H x W. Returns: N x C_out x H' x W' (H' = H, W' = W at stride 1)."""
        if x.dim() == 4 and x.shape[-1] == 1 and x.shape[-2] == 1 and x.device.type == "cpu":
            # A 1 x 1 map: every stride gives one output pixel, the input pixel itself (padding is 0).
            return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]
        return super().forward(x)
