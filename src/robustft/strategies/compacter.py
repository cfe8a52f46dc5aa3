"""``compacter``: Houlsby-placed bottlenecks whose projections are PHM layers (Karimi Mahabadi et al. 2021).

A PHM weight is a sum of Kronecker products ``W = sum_i A_i (x) B_i`` with ``n = phm_dim`` terms: the ``A_i``
(n x n) "rule" matrices and ``B_i`` ((in/n) x (out/n)), factored at rank ``rank`` as ``s_i t_i``. Defaults follow
paper A, which used AdapterHub's ``CompacterConfig()`` unchanged (kyangl/robustness-finetuning, ``build.py``):
reduction 32, phm_dim 4, rank 1, GELU, rules ~ N(0, phm_init_range = 1e-4), and ``shared_phm_rule=True``, which in
AdapterHub means ONE rule tensor (n x n x n) created once per adapter and used by every PHM layer of the model,
down- and up-projections of every block alike (``init_shared_parameters``), while each layer keeps its own
``s``, ``t`` and bias (``shared_W_phm=False``). Option ``phm_rules``: ``shared`` (that, the default) or
``down_up`` (one rule set shared by the down-projections and one by the up-projections; n^3 more parameters).

Where robustft differs from AdapterHub, on purpose: the up-projection's ``t`` and bias start at zero, so outputs
are unchanged at init (AdapterHub draws every factor from a Glorot distribution -- its ``init_W`` takes the
Glorot-normal branch for any non-empty ``hypercomplex_nonlinearity`` -- so its adapters start close to, not at,
the identity); ``s`` and ``t`` are Glorot-uniform; and the bottleneck width is ``channels // reduction`` rounded up
to a multiple of ``phm_dim`` (at least ``phm_dim``) so that small CNN widths stay valid (AdapterHub floors; both
give 24 on ViT-B/16). Written here for the same reason as ``adapter``: no library offers Compacter on
timm/torchvision models.

Parameter names: ``compacter_rules.shared`` (or ``compacter_rules.down`` / ``.up``), n x n x n at the model root,
and ``<site>.compacter.{down,up}.{s,t,bias}``.
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
from robustft.strategies.adapter import information_of, insert_bottlenecks
from robustft.strategies.base import Phase, Plan, Strategy, check_positive
from robustft.strategies.registry import STRATEGIES

PHM_RULES = ("shared", "down_up")


class PHMRules(nn.Module):
    """The rule tensors (each n x n x n: n matrices of n x n), one per name in ``sets``, drawn ~ N(0, init_std).

    ``sets`` is ``("shared",)`` (one for every PHM layer) or ``("down", "up")``.
    """

    def __init__(self, n: int, init_std: float, sets: tuple[str, ...]) -> None:
        super().__init__()
        for name in sets:
            self.register_parameter(name, nn.Parameter(torch.randn(n, n, n) * init_std))

    def unused_in(self, model: nn.Module) -> bool:
        """No Compacter block of ``model`` uses these rules (``strategies.merge`` dropped them all as identities)."""
        return not any(isinstance(m, CompacterBlock) for m in model.modules())


class PHMProjection(nn.Module):
    """``x W + bias`` with ``W = sum_i rule_i (x) (s_i t_i)``, over the channel dim of tokens or feature maps.

    Args:
        in_features, out_features: both divisible by n.
        n: phm_dim; rank: rank of each ``B_i``.
        rules: the ``PHMRules`` (referenced, not owned: it is registered once at the model root).
        which: the name of the rule set in ``rules`` (``shared``, ``down`` or ``up``).
        channel_dim: -1 for tokens, 1 for feature maps.
        zero: start with ``t = 0`` (W = 0), for the up-projection.
    """

    def __init__(self, in_features: int, out_features: int, n: int, rank: int, rules: PHMRules, which: str,
                 channel_dim: int, zero: bool) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.empty(n, in_features // n, rank))
        self.t = nn.Parameter(torch.empty(n, rank, out_features // n))
        self.bias = nn.Parameter(torch.zeros(out_features))
        for param, fan in ((self.s, in_features // n + rank), (self.t, rank + out_features // n)):
            bound = math.sqrt(6.0 / fan)  # Glorot-uniform per factor
            nn.init.uniform_(param, -bound, bound)
        if zero:
            nn.init.zeros_(self.t)
        self.shape = (in_features, out_features)
        self.which = which
        self.channel_dim = channel_dim
        self._rules = [rules]  # a list: not registered as a child, so the shared rules are counted once

    def weight(self) -> torch.Tensor:
        """W, in_features x out_features."""
        rule = getattr(self._rules[0], self.which)  # n x n x n
        factor = self.s @ self.t  # n x (in/n) x (out/n)
        return torch.einsum("iab,ipq->apbq", rule, factor).reshape(self.shape)

    def as_plain(self) -> nn.Module:
        """A frozen ``nn.Conv2d`` (1 x 1, feature maps) or ``nn.Linear`` (tokens) holding the current W and bias: the
        same function for a copy that does not train (``strategies.plain_projections``), without computing W at
        every call, and a layer the attacks' prepared copy knows how to speed up (1 x 1 convolutions as matrix
        products in channels_last: 1.27x -> 1.11x a full fine-tuning copy's attack pass on the demo's MobileNetV2,
        2026-12-07). Equal to ``forward`` up to float rounding (another summation order)."""
        reference = self.bias
        if self.channel_dim == -1:
            plain: nn.Module = nn.Linear(*self.shape, device=reference.device, dtype=reference.dtype)
        else:
            plain = nn.Conv2d(*self.shape, 1, device=reference.device, dtype=reference.dtype)
        self.write_plain(plain)
        return plain.requires_grad_(False)

    @torch.no_grad()
    def write_plain(self, plain: nn.Module) -> None:
        """Writes the current W and bias into ``plain`` (made by ``as_plain``), in place: how a kept prepared copy
        is refreshed (``attacks.prepared_cache``)."""
        weight = self.weight().t()  # out_features x in_features
        plain.weight.copy_(weight if self.channel_dim == -1 else weight[:, :, None, None])
        plain.bias.copy_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x with in_features along ``channel_dim``. Returns: projected, out_features there."""
        weight = self.weight()
        if self.channel_dim == -1:
            return F.linear(x, weight.t(), self.bias)
        # a 1x1 convolution as a batched matmul: cheaper on CPU than a conv with a weight gradient
        n, c, h, w = x.shape
        out = torch.matmul(weight.t(), x.reshape(n, c, h * w)) + self.bias[:, None]
        return out.view(n, -1, h, w)


class CompacterBlock(nn.Module):
    """``h + up(GELU(down(h)))`` with PHM projections; identity at init."""

    def __init__(self, channels: int, hidden: int, n: int, rank: int, rules: PHMRules, channel_dim: int) -> None:
        super().__init__()
        shared = hasattr(rules, "shared")  # else one set for the down-, one for the up-projections
        self.down = PHMProjection(channels, hidden, n, rank, rules, "shared" if shared else "down", channel_dim,
                                  zero=False)
        self.up = PHMProjection(hidden, channels, n, rank, rules, "shared" if shared else "up", channel_dim,
                                zero=True)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h, the sublayer output. Returns: same shape."""
        return h + self.up(self.act(self.down(h)))

    def is_identity(self) -> bool:
        """True while the up-projection's W and bias are exactly zero (t = 0 at init): ``forward(h)`` is then ``h``
        bit for bit for finite h, its input gradient too (``adapter.Bottleneck.is_identity`` says why)."""
        with torch.no_grad():
            return not (torch.any(self.up.weight()) or torch.any(self.up.bias))


@STRATEGIES.register("compacter")
class Compacter(Strategy):
    """Compacter: Houlsby-placed PHM (Kronecker) adapters, one rule set shared by all, rank-1 factors."""

    name = "compacter"
    mechanism = "projection"
    defaults = {"reduction": 32, "phm_dim": 4, "rank": 1, "phm_init_range": 1e-4,
                "phm_rules": "shared", "seed": 0}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        check_positive(self.name, resolved, "reduction", "phm_dim", "rank")
        if resolved["phm_rules"] not in PHM_RULES:
            raise ConfigError(f"compacter option phm_rules={resolved['phm_rules']!r}: use shared (AdapterHub's "
                              "CompacterConfig, paper A: one rule set for every PHM layer) or down_up (one set for "
                              "the down-projections, one for the up-projections).")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        n, rank = options["phm_dim"], options["rank"]
        reference = next(model.parameters())

        with seeded(options["seed"]):
            sets = ("shared",) if options["phm_rules"] == "shared" else ("down", "up")
            rules = PHMRules(n, options["phm_init_range"], sets).to(reference.device, reference.dtype)

            def make(channels: int, channel_dim: int) -> CompacterBlock:
                if channels % n:
                    raise ConfigError(f"compacter phm_dim={n} must divide every adapted width; {channels} is not "
                                      f"divisible. Choose phm_dim among the divisors of {channels} (e.g. 2).")
                hidden = max(n, -(-max(1, channels // options["reduction"]) // n) * n)
                return CompacterBlock(channels, hidden, n, rank, rules, channel_dim)

            added = insert_bottlenecks(model, layout, make, "compacter")
        model.add_module("compacter_rules", rules)
        added += [f"compacter_rules.{name}" for name in sets]
        return Plan([Phase(0.0, added)], information_of(layout))
