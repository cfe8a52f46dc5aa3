"""``compacter``: Houlsby-placed bottlenecks whose projections are PHM layers (Karimi Mahabadi et al. 2021).

A PHM weight is a sum of Kronecker products ``W = sum_i A_i (x) B_i`` with ``n = phm_dim`` terms: the ``A_i``
(n x n) "rule" matrices are shared by every layer (one set for down-projections, one for up-projections) and
each ``B_i`` ((in/n) x (out/n)) is factored at rank ``rank`` as ``s_i t_i``. Defaults follow paper A / AdapterHub's
CompacterConfig: reduction 32, phm_dim 4, rank 1, shared rules, GELU, rules ~ N(0, phm_init_range = 1e-4),
s and t Glorot-uniform. The up-projection's ``t`` and bias start at zero, so outputs are unchanged at init.
The bottleneck width is ``channels // reduction`` rounded up to a multiple of ``phm_dim`` (at least ``phm_dim``).
Written here for the same reason as ``adapter``: no library offers Compacter on timm/torchvision models.

Parameter names: ``compacter_rules.down`` / ``.up`` (n x n x n, at the model root) and
``<site>.compacter.{down,up}.{s,t,bias}``.
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
from robustft.strategies.adapter import information_of, insert_bottlenecks
from robustft.strategies.base import Phase, Plan, Strategy, check_positive
from robustft.strategies.registry import STRATEGIES
from robustft.strategies.seeding import seeded


class PHMRules(nn.Module):
    """The shared rule matrices: ``down`` and ``up``, each n x n x n (n matrices of n x n)."""

    def __init__(self, n: int, init_std: float) -> None:
        super().__init__()
        self.down = nn.Parameter(torch.randn(n, n, n) * init_std)
        self.up = nn.Parameter(torch.randn(n, n, n) * init_std)


class PHMProjection(nn.Module):
    """``x W + bias`` with ``W = sum_i rule_i (x) (s_i t_i)``, over the channel dim of tokens or feature maps.

    Args:
        in_features, out_features: both divisible by n.
        n: phm_dim; rank: rank of each ``B_i``.
        rules: the shared ``PHMRules`` (referenced, not owned: it is registered once at the model root).
        which: ``down`` or ``up`` (which shared rule set).
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
        self.down = PHMProjection(channels, hidden, n, rank, rules, "down", channel_dim, zero=False)
        self.up = PHMProjection(hidden, channels, n, rank, rules, "up", channel_dim, zero=True)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h, the sublayer output. Returns: same shape."""
        return h + self.up(self.act(self.down(h)))


@STRATEGIES.register("compacter")
class Compacter(Strategy):
    """Compacter: Houlsby-placed PHM (Kronecker) adapters, shared rules, rank-1 factors."""

    name = "compacter"
    mechanism = "projection"
    defaults = {"reduction": 32, "phm_dim": 4, "rank": 1, "phm_init_range": 1e-4, "seed": 0}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        check_positive(self.name, resolved, "reduction", "phm_dim", "rank")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        n, rank = options["phm_dim"], options["rank"]
        reference = next(model.parameters())

        with seeded(options["seed"]):
            rules = PHMRules(n, options["phm_init_range"]).to(reference.device, reference.dtype)

            def make(channels: int, channel_dim: int) -> CompacterBlock:
                if channels % n:
                    raise ConfigError(f"compacter phm_dim={n} must divide every adapted width; {channels} is not "
                                      f"divisible. Choose phm_dim among the divisors of {channels} (e.g. 2).")
                hidden = max(n, -(-max(1, channels // options["reduction"]) // n) * n)
                return CompacterBlock(channels, hidden, n, rank, rules, channel_dim)

            added = insert_bottlenecks(model, layout, make, "compacter")
        model.add_module("compacter_rules", rules)
        added += ["compacter_rules.down", "compacter_rules.up"]
        return Plan([Phase(0.0, added)], information_of(layout))
