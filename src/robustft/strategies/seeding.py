"""Seeded initialisation of strategy modules, without touching the caller's global RNG state.

``apply`` must build identical modules from identical options (checkpoints are rebuilt that way), and must not
shift the random stream of the training that follows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the block with torch's CPU generator seeded by ``seed``; restores the previous state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
