"""``ia3``: learned scaling vectors, initialised to 1 (Liu et al. 2022, "(IA)^3").

ViT: the keys and values (outputs of k and v), the MLP's intermediate activation (the input of MLP out) and
the MLP output. CNN: a per-channel scale after every convolution. Written here rather than taken from peft
because peft's IA3 scales a whole fused ``qkv`` output (q included) and cannot scale only k and v; a scale here
covers chosen output slices. ``merge`` folds every scale into the adjacent weights (and biases).

Parameter names: ``<layer>.ia3_out.<part>`` (scale of the layer's output slice ``k``, ``v`` or ``all``) and
``<layer>.ia3_in.all`` (scale of the layer's input).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.strategies.base import Phase, Plan, Strategy
from robustft.strategies.hooks import attach
from robustft.strategies.registry import STRATEGIES


class ChannelScale(nn.Module):
    """Multiplies chosen channel slices by learned vectors (init 1); other channels pass unchanged.

    Args:
        parts: (name, offset, size) slices with a learned scale.
        channels: total channels.
        channel_dim: -1 for token features (N x T x C), 1 for feature maps (N x C x H x W).
    """

    def __init__(self, parts: list[tuple[str, int, int]], channels: int, channel_dim: int) -> None:
        super().__init__()
        self.parts = parts
        self.channels = channels
        self.channel_dim = channel_dim
        self.scale = nn.ParameterDict({n: nn.Parameter(torch.ones(size)) for n, _, size in parts})

    def vector(self) -> torch.Tensor:
        """The full scale vector (channels,), ones outside the learned slices."""
        first = next(iter(self.scale.values()))
        if len(self.parts) == 1 and self.parts[0][2] == self.channels:
            return first
        pieces, position = [], 0
        for name, offset, size in self.parts:
            if offset > position:
                pieces.append(first.new_ones(offset - position))
            pieces.append(self.scale[name])
            position = offset + size
        if position < self.channels:
            pieces.append(first.new_ones(self.channels - position))
        return torch.cat(pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x with ``channels`` along ``channel_dim``. Returns: x scaled per channel, same shape."""
        scale = self.vector()
        return x * (scale if self.channel_dim == -1 else scale.view(-1, *([1] * (x.dim() - 2))))

    @torch.no_grad()
    def merge_into(self, layer: nn.Module) -> None:
        """Folds an output scale into ``layer``'s weight rows and bias (input scales: see ``InputScale``)."""
        scale = self.vector().to(layer.weight.dtype)
        layer.weight.mul_(scale.view(-1, *([1] * (layer.weight.dim() - 1))))
        if layer.bias is not None:
            layer.bias.mul_(scale)


class InputScale(ChannelScale):
    """A ``ChannelScale`` on a Linear's input (the MLP's intermediate activation); merges into weight columns."""

    @torch.no_grad()
    def merge_into(self, layer: nn.Module) -> None:
        layer.weight.mul_(self.vector().to(layer.weight.dtype)[None, :])


@STRATEGIES.register("ia3")
class IA3(Strategy):
    """IA3: scaling vectors (init 1) on k, v, MLP intermediate and MLP out (ViT) or after each conv (CNN)."""

    name = "ia3"
    mechanism = "scaling"

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        added: list[str] = []

        def add(name: str, attr: str, scale: ChannelScale, kind: str) -> None:
            layer = model.get_submodule(name)
            attach(layer, attr, scale.to(layer.weight.device, layer.weight.dtype), kind)
            added.extend(f"{name}.{attr}.{n}" for n, _ in scale.named_parameters())

        if layout.family == "cnn":
            for name in layout.convs:
                channels = model.get_submodule(name).out_channels
                add(name, "ia3_out", ChannelScale([("all", 0, channels)], channels, 1), "post")
            return Plan([Phase(0.0, added)], ["representations:conv", "head"])
        for block in layout.blocks:
            attn = block.attention
            if attn.fused:
                add(attn.qkv, "ia3_out", ChannelScale([("k", attn.dim, attn.dim), ("v", 2 * attn.dim, attn.dim)],
                                                      3 * attn.dim, -1), "post")
            else:
                for name in (attn.k, attn.v):
                    add(name, "ia3_out", ChannelScale([("all", 0, attn.dim)], attn.dim, -1), "post")
            mlp_out = model.get_submodule(block.mlp_out)
            hidden, width = mlp_out.in_features, mlp_out.out_features
            add(block.mlp_out, "ia3_in", InputScale([("all", 0, hidden)], hidden, -1), "pre")
            add(block.mlp_out, "ia3_out", ChannelScale([("all", 0, width)], width, -1), "post")
        return Plan([Phase(0.0, added)], ["representations:attention", "representations:mlp", "head"])
