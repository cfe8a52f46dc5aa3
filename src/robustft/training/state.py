"""What a checkpoint must hold, besides the weights, for a resumed run to continue bit-for-bit on CPU.

The training RNG (random starts of the inner attack, dropout), the optimiser and AMP scaler state, the step,
and the trainer's running sums since the last evaluation. The data order needs no state: the loader's
``set_epoch(epoch)`` reproduces an epoch's order, and the trainer skips the batches already consumed.
Everything is tensors and plain values so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import torch


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The RNG states a training step consumes (torch CPU, the CUDA device's, Python's)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Restores what ``capture_rng`` captured."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
