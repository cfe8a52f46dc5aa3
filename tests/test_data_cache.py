"""The decoded-array cache a study's runs share on disk: hits equal the built arrays; source or size misses."""

from __future__ import annotations

import pytest
import torch

from robustft.data.cache import cached_arrays

pytestmark = pytest.mark.usefixtures("private_data_cache")


def _builder(value: int, calls: list):
    def build():
        calls.append(value)
        return torch.full((2, 1, 4, 4), value, dtype=torch.uint8), torch.tensor([0, 1])
    return build


def test_a_hit_returns_the_stored_arrays_and_a_new_source_or_size_builds_again():
    calls: list[int] = []
    first = cached_arrays("source-a", 32, _builder(1, calls))
    hit = cached_arrays("source-a", 32, _builder(2, calls))  # would build other values: must not be called
    assert calls == [1]
    assert torch.equal(hit[0], first[0]) and torch.equal(hit[1], first[1]) and hit[1].dtype == torch.int64
    assert int(cached_arrays("source-a", 64, _builder(3, calls))[0].max()) == 3  # another size
    assert int(cached_arrays("source-b", 32, _builder(4, calls))[0].max()) == 4  # another source signature
    assert calls == [1, 3, 4]
