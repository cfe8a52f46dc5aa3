"""``make_loader``: seeded, re-iterable mini-batches with a fast path for in-memory uint8 datasets.

Order: epoch ``e`` of a loader with seed ``s`` is ``randperm(N)`` from a generator seeded with (s, e), so the
sequence of epochs is the same in every process, and ``set_epoch(e)`` (what a resumed run calls) reproduces
epoch e exactly. Each ``iter()`` uses the current epoch and then advances it, so iterating twice gives two
different orders. Augmentations draw from their own generator seeded with (s, e) too.

Fast path: an ``ImageTensorDataset`` is batched by indexing its uint8 tensor and converting once per batch (no
per-sample Python). Any other Dataset goes through ``torch.utils.data.DataLoader`` with the same order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from robustft.data.augment import build_augmentation
from robustft.data.base import ImageTensorDataset
from robustft.device import resolve_device
from robustft.errors import ConfigError

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    # one 63-bit seed per (seed, epoch, stream); the large odd multipliers keep nearby tuples far apart
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB)
    return torch.Generator().manual_seed(mixed % (2**63 - 1))


def _collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image, _ in items])
    if images.ndim == 4 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images, torch.tensor([int(label) for _, label in items], dtype=torch.int64)


class Loader:
    """Iterable of (images float32 B x 3 x H x W in [0, 1], labels int64 B) batches; see the module docstring."""

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, augment: Augmentation | None = None, device: Any = "cpu") -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.augment = augment
        self.device = resolve_device(device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The next ``iter()`` yields epoch ``epoch``'s order (then the loader continues from epoch + 1)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (int64 N)."""
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=_generator(self.seed, epoch, _ORDER_STREAM))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        order = self.order(epoch)
        batches = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
        augment_generator = _generator(self.seed, epoch, _AUGMENT_STREAM) if self.augment else None
        for images, labels in self._batches(batches):
            if self.augment is not None:
                images = self.augment(images, augment_generator)
            yield images, labels

    def _batches(self, batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self.dataset, ImageTensorDataset):
            for indices in batches:
                yield self.dataset.batch(indices, self.device)
            return
        loader = DataLoader(self.dataset, batch_sampler=[b.tolist() for b in batches], collate_fn=_collate,
                            num_workers=0)
        for images, labels in loader:
            yield images.to(self.device), labels.to(self.device)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                augment: Augmentation | str | list[str] | None = None, device: Any = "cpu") -> Loader:
    """A seeded, re-iterable batch loader over ``dataset`` (``len(loader)`` = number of batches).

    Args:
        dataset: ``ds[i] -> (float C x H x W in [0, 1], int)``; ``ImageTensorDataset`` takes the fast path.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: a new seeded order each epoch (see ``Loader.set_epoch``).
        seed: seeds the orders and the augmentation.
        drop_last: drop the last incomplete batch.
        augment: a callable ``aug(images, generator) -> images`` on float B x 3 x H x W, or a spec for
            ``build_augmentation`` ("flip", ["flip", "color_jitter:0.25", "rotation:10"]).
        device: where batches are put ("auto", "cpu", "cuda[:N]", torch.device; see ``resolve_device``).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
    if augment is not None and not callable(augment):
        augment = build_augmentation(augment)
    return Loader(dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, augment=augment, device=device)
