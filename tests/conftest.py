"""Shared test fixtures: tiny models and tiny data, built in memory, fast and offline."""

from __future__ import annotations

import os

import pytest
import torch

# One intra-op thread: with two shared cores, OpenMP threads spin-waiting on each other made tiny forwards
# hundreds of times slower under load; tests use tiny tensors, so a second thread buys nothing.
torch.set_num_threads(1)
# Attacks size their threads to the idle CPUs (robustft.attacks.threads): a run's digits would then depend on the
# machine's load. Tests that compare runs to the digit (resume, interrupt) need the same thread layout every time;
# subprocesses inherit this. tests/test_attacks_threads.py sets or unsets it per test.
os.environ.setdefault("ROBUSTFT_THREADS", "keep")


@pytest.fixture
def seed() -> int:
    torch.manual_seed(0)
    return 0


@pytest.fixture
def tiny_cnn():
    from robustft.models.tiny import tiny_cnn

    return tiny_cnn(num_classes=10)


@pytest.fixture
def tiny_vit():
    from robustft.models.tiny import tiny_vit

    return tiny_vit(num_classes=10)


@pytest.fixture
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """16 random images in [0, 1] (3 x 32 x 32) with labels in 0..9."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (16,), generator=generator)
    return images, labels


@pytest.fixture
def private_data_cache(tmp_path, monkeypatch):
    """A per-test dataset cache (``ROBUSTFT_CACHE``) and an empty in-memory cache, so data tests never see
    each other's decoded arrays or the user's ``~/.cache/robustft``."""
    from robustft.data.loading import _MEMORY

    monkeypatch.setenv("ROBUSTFT_CACHE", str(tmp_path / "cache"))
    _MEMORY.clear()
    yield
    _MEMORY.clear()
