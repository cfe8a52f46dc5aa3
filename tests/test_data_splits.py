"""Property tests of the seeded stratified selection behind ``val_fraction`` and ``limit``."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustft.data.splits import holdout_split, stratified_subset

class_counts = st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6)


def make_labels(counts: list[int], seed: int) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


@settings(max_examples=60, deadline=None)
@given(counts=class_counts, fraction=st.floats(0.0, 1.0), seed=st.integers(0, 10**6), order=st.integers(0, 9))
def test_stratified_subset_size_proportions_and_determinism(counts, fraction, seed, order):
    labels = make_labels(counts, order)
    n = len(labels)
    size = round(fraction * n)
    chosen = stratified_subset(labels, size, seed)
    assert len(chosen) == min(size, n) and len(set(chosen.tolist())) == len(chosen)
    assert torch.equal(chosen, stratified_subset(labels, size, seed))
    assert chosen.tolist() == sorted(chosen.tolist())
    if n:
        got = torch.bincount(labels[chosen], minlength=len(counts))
        for c, total in enumerate(counts):  # largest remainder: each class within one of its exact share
            assert abs(float(got[c]) - total * len(chosen) / n) < 1.0 + 1e-9


@settings(max_examples=40, deadline=None)
@given(counts=class_counts, fraction=st.floats(0.0, 0.99), seed=st.integers(0, 10**6))
def test_holdout_split_partitions_the_indices(counts, fraction, seed):
    labels = make_labels(counts, 0)
    kept, held = holdout_split(labels, fraction, seed)
    assert sorted(kept.tolist() + held.tolist()) == list(range(len(labels)))
    assert len(held) == (round(fraction * len(labels)) if fraction > 0 else 0)
