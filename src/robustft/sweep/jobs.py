"""How many runs the local executor runs at a time when the user does not say (``--jobs``).

On CPUs: one run per core, one thread each. Measured on this project's 2-core machine (``robustft demo``,
otherwise idle, 2026-12-01): 2 runs x 1 thread took 5 min 09 s against 7 min 56 s for 1 run x 2 threads; small
models at 32 px gain less from intra-op threads than from a second run overlapping the first one's serial parts.
On a GPU: one run at a time, since the local executor does not split GPUs between runs and several models on
one GPU compete for its memory; ``--jobs N`` or ``--executor ray --gpus-per-run F`` share it on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def uses_gpu(configs: Sequence[dict[str, Any]]) -> bool:
    """Whether any run would train on a GPU: device ``cuda*``, or ``auto`` on a machine where CUDA is available."""
    devices = {str(c.get("device", "auto")) for c in configs}
    if any(d.startswith("cuda") for d in devices):
        return True
    if "auto" not in devices:
        return False
    import torch  # only when a run resolves its device itself; the CLI's start-up stays torch-free otherwise

    return bool(torch.cuda.is_available())


def default_jobs(configs: Sequence[dict[str, Any]]) -> int:
    """Runs at a time for these resolved run configs: 1 with a GPU, else one per CPU core (at most one per run)."""
    if uses_gpu(configs):
        return 1
    return max(1, min(len(configs), os.cpu_count() or 1))
