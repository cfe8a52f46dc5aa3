"""``ia3``: learned scaling vectors, initialised to 1 (Liu et al. 2022, "(IA)^3"), placed as paper A placed them.

ViT: the keys and values (outputs of k and v), the MLP's intermediate features and the MLP output (the output of
MLP out, bias included). Paper A built (IA)^3 with AdapterHub's ``IA3Config`` and ``selfattn_lora`` on
``attn_matrices`` k, v, ``intermediate_lora`` and ``output_lora`` (kyangl/robustness-finetuning,
``configs/config0_ia3.yml``); AdapterHub's ``IA3`` module multiplies the *output* of each wrapped Linear (bias
included) by its vector, and the intermediate Linear is the MLP's first projection, whose output then goes through
the activation. So the MLP block computes ``s_out * fc2(GELU(s_ff * fc1(x)))``.

Option ``mlp_scale`` chooses where ``s_ff`` sits:
- ``before_activation`` (default, paper A / AdapterHub): ``GELU(s_ff * fc1(x))``, a scale on fc1's output;
- ``after_activation`` (the original (IA)^3 paper, and peft's ``feedforward_modules``): ``s_ff * GELU(fc1(x))``,
  a scale on fc2's input.
Both have one vector of the MLP's hidden width, so the trainable count is the same; the function classes differ
(a scale before GELU also moves the point where GELU bends).

CNN: the same rule applied to every convolution, whose output goes through a norm and an activation, as fc1's
does: ``before_activation`` scales each conv's output channels (before its norm and activation);
``after_activation`` scales each conv's input channels (the activation output of the unit before it, or the
block input at a block's entry; for the stem, the normalised image), as peft's IA3 does on a Conv2d listed in
``feedforward_modules``. CNNs have no k/v, so this is the whole strategy there; the counts differ between the two
placements (output vs input channels). With frozen BatchNorm layers in eval mode (``bn_stats=auto``), a scale
before a BatchNorm is not normalised away.

Written here rather than taken from peft because peft's IA3 scales a whole fused ``qkv`` output (q included) and
cannot scale only k and v; a scale here covers chosen output slices. On separate k/v projections and with fc1 and
fc2 as non-feedforward targets, peft's IA3 computes the same function as the default here (tested).
``merge`` folds every scale into the adjacent weights (and biases).

Parameter names: ``<layer>.ia3_out.scale.<part>`` (scale of the layer's output slice ``k``, ``v`` or ``all``) and
``<layer>.ia3_in.scale.all`` (scale of the layer's input).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustft.errors import ConfigError
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
    """A ``ChannelScale`` on a layer's input (fc2's, or a conv's); merges into the weight's input columns."""

    @torch.no_grad()
    def merge_into(self, layer: nn.Module) -> None:
        scale = self.vector().to(layer.weight.dtype)
        if isinstance(layer, nn.Conv2d):
            # weight: out x (in / groups) x kh x kw; group g reads input channels g*(in/groups) ... (g+1)*(in/groups)
            # (exact with zero padding too: a padded zero stays zero when scaled)
            groups, per_group = layer.groups, layer.weight.shape[1]
            view = layer.weight.view(groups, -1, per_group, *layer.weight.shape[2:])
            view.mul_(scale.view(groups, 1, per_group, *([1] * (layer.weight.dim() - 2))))
        else:
            layer.weight.mul_(scale[None, :])


MLP_SCALES = ("before_activation", "after_activation")


@STRATEGIES.register("ia3")
class IA3(Strategy):
    """IA3: scaling vectors (init 1) on k, v, MLP intermediate and MLP out (ViT) or at each conv (CNN).

    Option ``mlp_scale``: ``before_activation`` (paper A: GELU(s * fc1(x)); CNN: each conv's output) or
    ``after_activation`` (Liu et al. / peft: s * GELU(fc1(x)); CNN: each conv's input).
    """

    name = "ia3"
    mechanism = "scaling"
    defaults = {"mlp_scale": "before_activation"}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        if resolved["mlp_scale"] not in MLP_SCALES:
            raise ConfigError(f"ia3 option mlp_scale={resolved['mlp_scale']!r}: use before_activation (paper A, "
                              "AdapterHub: GELU(s * fc1(x))) or after_activation (original (IA)3 paper, peft: "
                              "s * GELU(fc1(x))).")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        added: list[str] = []
        before = options["mlp_scale"] == "before_activation"

        def add(name: str, attr: str, scale: ChannelScale, kind: str) -> None:
            layer = model.get_submodule(name)
            attach(layer, attr, scale.to(layer.weight.device, layer.weight.dtype), kind)
            added.extend(f"{name}.{attr}.{n}" for n, _ in scale.named_parameters())

        if layout.family == "cnn":
            for name in layout.convs:
                conv = model.get_submodule(name)
                if before:
                    add(name, "ia3_out", ChannelScale([("all", 0, conv.out_channels)], conv.out_channels, 1), "post")
                else:
                    add(name, "ia3_in", InputScale([("all", 0, conv.in_channels)], conv.in_channels, 1), "pre")
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
            if before:
                add(block.mlp_in, "ia3_out", ChannelScale([("all", 0, hidden)], hidden, -1), "post")
            else:
                add(block.mlp_out, "ia3_in", InputScale([("all", 0, hidden)], hidden, -1), "pre")
            add(block.mlp_out, "ia3_out", ChannelScale([("all", 0, width)], width, -1), "post")
        return Plan([Phase(0.0, added)], ["representations:attention", "representations:mlp", "head"])
