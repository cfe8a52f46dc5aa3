"""``seeded(seed)``: build modules from a seed without touching the caller's random stream.

Model heads and strategy modules are created inside it, so the same seed gives the same initial weights in every
process (a checkpoint is rebuilt that way: same options, same structure, then its weights) and creating them does
not shift the random stream of the training that follows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the block with torch's CPU generator seeded by ``seed``; restores the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
