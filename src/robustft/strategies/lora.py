"""``lora``: low-rank updates ``W + (alpha / r) B A`` (Hu et al. 2021), B = 0 at init so outputs are unchanged.

Written here rather than taken from peft because peft adapts a timm fused ``qkv`` Linear as one matrix, while
paper A adapts q, k and v *separately* (one (A, B) pair each, as on Hugging Face's separate projections). A
``LoRADelta`` therefore holds one pair per output slice of its layer. On CNNs it adapts 1x1 (pointwise)
convolutions and linear layers, as two thin 1x1 convolutions, which keeps the extra cost small. ``merge`` folds
the deltas into the weights. ``peft:lora`` remains available for peft's own implementation.

Parameter names: ``<layer>.lora.A.<part>`` (r x in) and ``<layer>.lora.B.<part>`` (out_part x r); parts are
``q``/``k``/``v`` on a fused qkv layer, else ``w``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustft.errors import ConfigError
from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.seeding import seeded
from robustft.strategies.base import Phase, Plan, Strategy, check_positive
from robustft.strategies.hooks import attach
from robustft.strategies.information import sort_labels
from robustft.strategies.registry import STRATEGIES

VIT_TARGETS = ("q", "k", "v", "attn_out", "mlp_in", "mlp_out")
CNN_TARGETS = ("pointwise", "linear")


class LoRADelta(nn.Module):
    """The low-rank update of one Linear or 1x1 Conv2d, one (A, B) pair per output slice.

    Args:
        in_features: input features (channels for a conv).
        parts: (name, offset, size) output slices adapted; slices not listed get no update.
        out_features: output features of the adapted layer.
        r: rank; alpha: scaling numerator (delta = alpha / r * B A); dropout: on the input of the delta.
        conv: the adapted Conv2d (stride/padding reused), or None for a Linear.
    """

    def __init__(self, in_features: int, parts: list[tuple[str, int, int]], out_features: int, r: int,
                 alpha: float, dropout: float, conv: nn.Conv2d | None = None) -> None:
        super().__init__()
        self.parts = parts
        self.out_features = out_features
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.stride = conv.stride if conv is not None else None
        self.padding = conv.padding if conv is not None else None
        self.A = nn.ParameterDict({n: nn.Parameter(torch.empty(r, in_features)) for n, _, _ in parts})
        self.B = nn.ParameterDict({n: nn.Parameter(torch.zeros(size, r)) for n, _, size in parts})
        for a in self.A.values():  # peft's / the paper's default: Kaiming-uniform A, zero B
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def _project(self, x: torch.Tensor, name: str) -> torch.Tensor:
        a, b = self.A[name], self.B[name]
        if self.stride is None:
            return F.linear(F.linear(x, a), b)
        # a 1x1 conv is a matmul over channels; batched matmuls cost less than two tiny convolutions with
        # weight gradients (measured in bench/bench_strategies.py)
        if self.padding != (0, 0):
            x = F.pad(x, (self.padding[1], self.padding[1], self.padding[0], self.padding[0]))
        if self.stride != (1, 1):
            x = x[:, :, ::self.stride[0], ::self.stride[1]]
        n, c, h, w = x.shape
        hidden = torch.matmul(a, x.reshape(n, c, h * w))  # N x r x HW
        return torch.matmul(b, hidden).view(n, b.shape[0], h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, the layer's input (N x ... x in, or N x C x H x W). Returns: the delta of its output."""
        x = self.dropout(x)
        dim = -1 if self.stride is None else 1
        pieces: list[torch.Tensor | int] = []  # deltas, and sizes of un-adapted slices in between
        position = 0
        for name, offset, size in self.parts:
            if offset > position:
                pieces.append(offset - position)
            pieces.append(self._project(x, name))
            position = offset + size
        if position < self.out_features:
            pieces.append(self.out_features - position)
        ref = next(p for p in pieces if isinstance(p, torch.Tensor))

        def zeros(width: int) -> torch.Tensor:
            shape = list(ref.shape)
            shape[dim] = width
            return ref.new_zeros(shape)

        out = ref if len(pieces) == 1 else torch.cat(
            [p if isinstance(p, torch.Tensor) else zeros(p) for p in pieces], dim)
        return out * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The full update, out_features x in_features (zeros on un-adapted slices)."""
        first = next(iter(self.A.values()))
        delta = first.new_zeros(self.out_features, first.shape[1])
        for name, offset, size in self.parts:
            delta[offset:offset + size] = self.B[name] @ self.A[name]
        return delta * self.scaling

    @torch.no_grad()
    def merge_into(self, layer: nn.Module) -> None:
        """Adds the delta to ``layer.weight`` in place."""
        delta = self.delta_weight().to(layer.weight.dtype)
        layer.weight += delta.view_as(layer.weight) if layer.weight.dim() == 2 else delta[:, :, None, None]


def lora_sites(layout: Layout, targets: list[str]) -> list[tuple[str, list[str]]]:
    """(layer name, parts) to adapt: fused qkv layers get the requested subset of q/k/v as parts."""
    sites: list[tuple[str, list[str]]] = []
    if layout.family == "cnn":
        if "pointwise" in targets:
            sites += [(name, ["w"]) for name in layout.pointwise_convs]
        if "linear" in targets:
            sites += [(name, ["w"]) for name in layout.linears]
        return sites
    for block in layout.blocks:
        attn = block.attention
        if attn.fused:
            qkv = [p for p in ("q", "k", "v") if p in targets]
            if qkv:
                sites.append((attn.qkv, qkv))
        else:
            sites += [(getattr(attn, p), ["w"]) for p in ("q", "k", "v") if p in targets]
        named = {"attn_out": attn.out, "mlp_in": block.mlp_in, "mlp_out": block.mlp_out}
        sites += [(named[t], ["w"]) for t in ("attn_out", "mlp_in", "mlp_out") if t in targets]
    return sites


@STRATEGIES.register("lora")
class LoRA(Strategy):
    """LoRA: low-rank updates on q, k, v, MLP in/out (ViT) or pointwise convs and linears (CNN); mergeable."""

    name = "lora"
    mechanism = "low-rank"
    defaults = {"r": 8, "alpha": 8.0, "dropout": 0.0, "targets": None, "seed": 0}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        check_positive(self.name, resolved, "r", "alpha")
        valid = VIT_TARGETS if layout.family == "vit" else CNN_TARGETS
        if resolved["targets"] is None:
            resolved["targets"] = ["q", "k", "v", "mlp_in", "mlp_out"] if layout.family == "vit" else list(valid)
        targets = [resolved["targets"]] if isinstance(resolved["targets"], str) else list(resolved["targets"])
        bad = [t for t in targets if t not in valid]
        if bad or not targets:
            raise ConfigError(f"lora targets {bad or targets} are not valid on a {layout.family}; choose from "
                              f"{', '.join(valid)}.")
        resolved["targets"] = targets
        if not 0.0 <= resolved["dropout"] < 1.0:
            raise ConfigError(f"lora dropout={resolved['dropout']} must be in [0, 1).")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        sites = lora_sites(layout, options["targets"])
        if not sites:
            raise ConfigError(f"lora found no {'/'.join(options['targets'])} layer in {model.info.name!r}.")
        added = []
        with seeded(options["seed"]):
            for name, parts in sites:
                layer = model.get_submodule(name)
                out, inp = (layer.out_features, layer.in_features) if isinstance(layer, nn.Linear) else (
                    layer.out_channels, layer.in_channels)
                fused = parts != ["w"]
                size = out // 3 if fused else out
                slices = [(p, "qkv".index(p) * size if fused else 0, size) for p in parts]
                delta = LoRADelta(inp, slices, out, options["r"], options["alpha"], options["dropout"],
                                  layer if isinstance(layer, nn.Conv2d) else None)
                attach(layer, "lora", delta.to(layer.weight.device, layer.weight.dtype), "delta")
                added += [f"{name}.lora.{n}" for n, _ in delta.named_parameters()]
        information = {"weights:conv"} if layout.family == "cnn" and "pointwise" in options["targets"] else set()
        targets = set(options["targets"])
        if targets & {"q", "k", "v", "attn_out"}:
            information.add("weights:attention")
        if targets & {"mlp_in", "mlp_out"} or (layout.family == "cnn" and "linear" in targets and layout.linears):
            information.add("weights:mlp")

        return Plan([Phase(0.0, added)], sort_labels(information | {"head"}))
