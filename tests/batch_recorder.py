"""A module wrapper that records the batch size of every call (tests of how attacks split and pad batches)."""

from __future__ import annotations

import torch
from torch import nn


class BatchSizes(nn.Module):
    """Calls the wrapped ``model`` and appends each input's batch size to ``sizes``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.model(x)
