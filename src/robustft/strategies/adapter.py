"""``adapter``: Houlsby bottleneck adapters, ``h + up(GELU(down(h)))`` (Houlsby et al. 2019).

ViT: after the attention output projection and after the MLP output, before each residual addition (Houlsby
placement). CNN: a residual 1x1-conv bottleneck after each block (InvertedResidual, ResNet block, ConvNeXt block;
after each conv-norm-activation unit of a plain CNN). The up-projection is zero at init, so the adapted model
computes exactly the un-adapted logits. Written here because peft has no bottleneck adapter and the AdapterHub
``adapters`` library only supports Hugging Face transformers, not timm/torchvision models.

Parameter names: ``<site>.adapter.down.weight``, ``.down.bias``, ``.up.weight``, ``.up.bias``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.seeding import seeded
from robustft.strategies.base import Phase, Plan, Strategy, StrategyNotApplicableError, check_positive
from robustft.strategies.hooks import attach
from robustft.strategies.registry import STRATEGIES


class Bottleneck(nn.Module):
    """``h + up(act(down(h)))`` over the channel dimension; up is zero-initialised (identity at init).

    Args:
        channels: features of h (last dim of N x T x C tokens, or dim 1 of N x C x H x W maps).
        hidden: bottleneck width.
        channel_dim: -1 for tokens (Linear layers), 1 for feature maps (1x1 convolutions).
    """

    def __init__(self, channels: int, hidden: int, channel_dim: int) -> None:
        super().__init__()
        if channel_dim == -1:
            self.down, self.up = nn.Linear(channels, hidden), nn.Linear(hidden, channels)
        else:
            self.down, self.up = nn.Conv2d(channels, hidden, 1), nn.Conv2d(hidden, channels, 1)
        self.act = nn.GELU()
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h, the sublayer output. Returns: h plus the adapter's correction, same shape."""
        return h + self.up(self.act(self.down(h)))

    def is_identity(self) -> bool:
        """True while the up-projection is exactly zero (at init): then ``forward(h)`` is ``h + 0 = h`` bit for bit
        for finite h, and the input gradient ``g + down^T (act' * up^T g) = g + 0`` too, so ``strategies.merge``
        drops the adapter from a frozen copy (a model that trains keeps it)."""
        return not (torch.any(self.up.weight) or torch.any(self.up.bias))


def adapter_sites(layout: Layout) -> list[tuple[str, int, int]]:
    """(module whose output is adapted, channels, channel_dim): Houlsby placement on ViTs, blocks on CNNs."""
    if layout.family == "vit":
        return [(site, block.channels, -1) for block in layout.blocks for site in (block.attention.out,
                                                                                      block.mlp_out)]
    return [(block.name, block.channels, 1) for block in layout.blocks]


def information_of(layout: Layout) -> list[str]:
    """Representations adapted by Houlsby-placed modules."""
    if layout.family == "vit":
        return ["representations:attention", "representations:mlp", "head"]
    return ["representations:conv", "head"]


def insert_bottlenecks(model: RobustModel, layout: Layout, make: Any, attr: str) -> list[str]:
    """Attaches ``make(channels, channel_dim)`` after every adapter site; returns the new parameter names."""
    sites = adapter_sites(layout)
    if not sites:
        raise StrategyNotApplicableError(f"no blocks found in {model.info.name!r} to place adapters after.")
    added = []
    reference = next(model.parameters())
    for name, channels, channel_dim in sites:
        module = make(channels, channel_dim).to(reference.device, reference.dtype)
        attach(model.get_submodule(name), attr, module, "post")
        added += [f"{name}.{attr}.{n}" for n, _ in module.named_parameters()]
    return added


@STRATEGIES.register("adapter")
class Adapter(Strategy):
    """Houlsby bottleneck adapters after attention and MLP (ViT) or after each block (CNN)."""

    name = "adapter"
    mechanism = "projection"
    defaults = {"reduction": 8, "seed": 0}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        check_positive(self.name, resolved, "reduction")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        def make(channels: int, channel_dim: int) -> Bottleneck:
            return Bottleneck(channels, max(1, channels // options["reduction"]), channel_dim)

        with seeded(options["seed"]):
            added = insert_bottlenecks(model, layout, make, "adapter")
        return Plan([Phase(0.0, added)], information_of(layout))
