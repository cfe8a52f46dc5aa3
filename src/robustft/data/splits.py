"""Seeded, stratified index selection: the validation hold-out and ``limit`` subsets.

Both keep class proportions (largest-remainder quotas per class) and depend only on (labels, seed), so the
same seed gives the same subset in every process. Written here because scikit-learn's splitters work on
numpy, pull in a heavy import and cannot express "exactly ``limit`` samples, proportional per class".
"""

from __future__ import annotations

import numpy as np
import torch


def _quotas(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Per-class sample counts summing to ``total``, proportional to ``counts`` (largest remainder)."""
    n = int(counts.sum())
    exact = counts.to(torch.float64) * total / max(n, 1)
    quota = exact.floor().to(torch.int64)
    remainder = exact - quota
    missing = total - int(quota.sum())
    if missing > 0:
        # ties broken by class index (stable sort) so the result is deterministic
        order = torch.sort(-remainder, stable=True).indices
        quota[order[:missing]] += 1
    return torch.minimum(quota, counts)


def _per_class_permutations(labels: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """For each class 0 .. max label, its members' indices in a seeded random order."""
    generator = torch.Generator().manual_seed(int(seed))
    if not len(labels):
        return []
    # one stable sort instead of a scan per class (numpy: single-threaded, so no thread-pool stalls on a
    # busy machine); members of each class in index order, then permuted by the seeded generator
    values = labels.numpy()
    by_class = torch.from_numpy(np.argsort(values, kind="stable"))
    counts = np.bincount(values, minlength=int(values.max()) + 1).tolist()
    return [members[torch.randperm(len(members), generator=generator)]
            for members in torch.split(by_class, counts)]


def stratified_subset(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``size`` samples drawn per class in proportion to the class counts.

    Args:
        labels: int64 N.
        size: how many to keep (all when ``size >= N``).
        seed: the subset depends only on (labels, size, seed).
    """
    n = int(labels.shape[0])
    if size >= n:
        return torch.arange(n)
    perms = _per_class_permutations(labels, seed)
    counts = torch.tensor([len(p) for p in perms], dtype=torch.int64)
    quota = _quotas(counts, size)
    chosen = [p[: int(q)] for p, q in zip(perms, quota, strict=True)]
    return torch.from_numpy(np.sort(torch.cat(chosen).numpy())) if chosen else torch.arange(0)


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held_out) sorted index tensors; ``held_out`` is a stratified ``fraction`` of the samples.

    ``fraction == 0`` holds out nothing.
    """
    n = int(labels.shape[0])
    held = stratified_subset(labels, round(fraction * n), seed) if fraction > 0 else torch.arange(0)
    mask = np.ones(n, dtype=bool)
    mask[held.numpy()] = False
    return torch.from_numpy(np.flatnonzero(mask)), held
