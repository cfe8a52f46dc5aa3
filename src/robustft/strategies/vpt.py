"""``vpt``: visual prompt tuning (Jia et al. 2022), shallow or deep, on ViTs only.

``num_tokens`` learned prompt tokens are inserted after the class token(s), before the first transformer block;
with ``deep=True`` (the default, VPT-deep) every later block replaces them with its own prompts. They are
removed after the last block, so the final norm and pooling (class token or mean of patch tokens) see the
original token layout. Prompts are initialised uniform(+-sqrt(6 / (3 * patch^2 + dim))) as in the paper.

Unlike every other strategy, prompts change the outputs at initialisation: the patch tokens attend to them
(``identity_at_init = False``). CNNs have no tokens to prepend to: applying ``vpt`` to one is an error.
Written here because peft's prompt tuners target language models' input embeddings, not ViT blocks.

Parameter names: ``<block>.vpt.prompts`` (num_tokens x dim), on the first block only when shallow.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robustft.errors import ConfigError
from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.seeding import seeded
from robustft.strategies.base import Phase, Plan, Strategy, check_positive
from robustft.strategies.hooks import attach
from robustft.strategies.registry import STRATEGIES


class Prompts(nn.Module):
    """Inserts (first block) or replaces (deeper blocks) prompt tokens after the prefix tokens.

    Args:
        num_tokens: prompts P; dim: token width D; prefix: class/register tokens before the patches.
        insert: True before the first block (tokens N x T x D -> N x (T + P) x D), else replace in place.
        init_bound: prompts ~ uniform(-init_bound, init_bound).
        dropout: dropout on the prompts.
    """

    def __init__(self, num_tokens: int, dim: int, prefix: int, insert: bool, init_bound: float,
                 dropout: float) -> None:
        super().__init__()
        self.prompts = nn.Parameter(torch.empty(num_tokens, dim).uniform_(-init_bound, init_bound))
        self.prefix = prefix
        self.insert = insert
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Args: tokens, N x T x D. Returns: N x (T + P) x D with the prompts at positions prefix..prefix+P-1."""
        prompts = self.dropout(self.prompts).to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        skip = 0 if self.insert else prompts.shape[1]
        return torch.cat([tokens[:, :self.prefix], prompts, tokens[:, self.prefix + skip:]], dim=1)


class RemovePrompts(nn.Module):
    """Drops the P prompt tokens after the last block: N x (T + P) x D -> N x T x D."""

    def __init__(self, num_tokens: int, prefix: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.prefix = prefix

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([tokens[:, :self.prefix], tokens[:, self.prefix + self.num_tokens:]], dim=1)


@STRATEGIES.register("vpt")
class VisualPromptTuning(Strategy):
    """Visual prompt tuning (ViT only): learned tokens at the input (shallow) or every block (deep)."""

    name = "vpt"
    mechanism = "prompt"
    families = ("vit",)
    identity_at_init = False
    defaults = {"num_tokens": 10, "deep": True, "dropout": 0.0, "seed": 0}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        check_positive(self.name, resolved, "num_tokens")
        if not 0.0 <= resolved["dropout"] < 1.0:
            raise ConfigError(f"vpt dropout={resolved['dropout']} must be in [0, 1).")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        count, dim = options["num_tokens"], layout.embed_dim
        bound = math.sqrt(6.0 / (3 * max(layout.patch_size, 1) ** 2 + dim))
        reference = next(model.parameters())
        added = []
        with seeded(options["seed"]):
            for index, block in enumerate(layout.blocks):
                if index > 0 and not options["deep"]:
                    break
                prompts = Prompts(count, dim, layout.num_prefix_tokens, index == 0, bound, options["dropout"])
                attach(model.get_submodule(block.name), "vpt", prompts.to(reference.device, reference.dtype), "pre")
                added.append(f"{block.name}.vpt.prompts")
        attach(model.get_submodule(layout.blocks[-1].name), "vpt_exit",
               RemovePrompts(count, layout.num_prefix_tokens), "post")
        return Plan([Phase(0.0, added)], ["input", "head"])
