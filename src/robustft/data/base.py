"""The dataset every source returns: decoded uint8 images in memory, converted to float [0, 1] on access.

Keeping the images as one uint8 tensor (N x C x H x W, C = 1 for grayscale sources, 3 for colour) is what makes
the loader fast: a batch is one tensor index plus one conversion, with no per-sample Python. Grayscale is
replicated to 3 channels on access as an ``expand`` view, so it costs no memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from robustft.data.corruptions import corrupt

SPLITS = ("train", "val", "test")


@dataclass
class DatasetInfo:
    """What a loaded split is.

    Attributes:
        name: the name as given to ``load`` (with any ``@corruption:severity`` suffix).
        split: "train", "val" or "test".
        num_classes: number of classes (labels are 0 .. num_classes - 1).
        class_names: one name per label.
        image_size: height = width of the returned images.
        channels: always 3 (grayscale sources are replicated).
        source: where the images came from (a path, package or URL-free description).
        ood_splits: suggested out-of-distribution split names for this dataset (``load(name, "test")`` each).
    """

    name: str
    split: str
    num_classes: int
    class_names: list[str]
    image_size: int
    channels: int = 3
    source: str = ""
    ood_splits: list[str] = field(default_factory=list)


class ImageTensorDataset(Dataset):
    """A split held in memory as uint8: ``ds[i] -> (float32 3 x H x W in [0, 1], int label)``.

    Args:
        images: uint8 M x C x h x w, C in {1, 3}: the stored images (the source split's whole pool when
            ``rows`` is given, shared with other splits and never modified).
        labels: int64 N, one per sample of this split.
        info: the split's metadata; ``info.image_size`` is the output size.
        indices: for each sample, its index in the source split before the val split and ``limit`` (int64 N);
            corruptions are seeded by it, so a sample is corrupted the same way whatever subset it is in.
        corruptions: ``[(name, severity), ...]`` applied in order after resizing, on access.
        seed: seeds the corruptions.
        rows: int64 N, each sample's row in ``images`` (None: row i is sample i, M = N). Splits and limits are
            index lists into one shared pool rather than copies: at 224 px a copy of a train pool is gigabytes.

    Stored images smaller than ``info.image_size`` (e.g. CIFAR's 32 px for a 224 px model) are enlarged on
    access, batch by batch: storing them enlarged would take 49x the memory. Corruptions are applied on access
    too, to the image at its output size, from per-sample generators (see ``corruptions.corrupt``).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
                 indices: torch.Tensor | None = None, corruptions: list[tuple[str, int]] | None = None,
                 seed: int = 0, rows: torch.Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 N x (1|3) x H x W, got {images.dtype} {tuple(images.shape)}")
        count = images.shape[0] if rows is None else len(rows)
        if labels.shape != (count,):
            raise ValueError(f"labels must have shape ({count},), got {tuple(labels.shape)}")
        if rows is not None and len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= images.shape[0]):
            raise ValueError(f"rows must index the {images.shape[0]} stored images")
        self._pool = images.contiguous()
        self._rows = None if rows is None else rows.to(torch.int64).numpy().copy()
        self.labels = labels.to(torch.int64).contiguous()
        self.info = info
        self.indices = torch.arange(count) if indices is None else indices.to(torch.int64)
        self.corruptions = list(corruptions or [])
        self.seed = seed

    @property
    def images(self) -> torch.Tensor:
        """This split's stored uint8 images, N x C x h x w (a copy when the split is part of a shared pool).

        Treat as read-only: without a row list it is the pool itself, shared with other loads in the process.
        """
        return self._pool if self._rows is None else self._pool[torch.from_numpy(self._rows)]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = int(index)
        images, _ = self.batch(torch.tensor([index]))
        return images[0], int(self.labels[index])

    def batch(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Images B x 3 x H x W float32 in [0, 1] and labels B (int64) for ``indices``, on ``device``.

        The gather and the uint8 -> float conversion run in numpy: single-threaded, which for a batch-sized
        array is 10-30x faster than torch's thread pool on a busy machine (measured on 2 shared cores). On an
        accelerator the uint8 batch is moved first (4x fewer bytes to copy) and converted there.
        """
        device = torch.device(device)
        positions = indices.numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
        pixels = self._pool.numpy()[positions if self._rows is None else self._rows[positions]]
        if device.type == "cpu":
            images = torch.from_numpy(np.divide(pixels, np.float32(255.0), dtype=np.float32))
        else:
            images = torch.from_numpy(pixels).to(device, non_blocking=True).to(torch.float32).div_(255.0)
        size = self.info.image_size
        if images.shape[-2:] != (size, size):
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                                     align_corners=False).clamp_(0.0, 1.0)
        if self.corruptions:
            for name, severity in self.corruptions:
                images = corrupt(images, name, severity, self.seed, self.indices[torch.as_tensor(positions)])
        labels = torch.from_numpy(self.labels.numpy()[positions])
        return _three_channels(images), labels.to(device, non_blocking=True)

    def __repr__(self) -> str:
        i = self.info
        return f"ImageTensorDataset({i.name!r}, split={i.split!r}, n={len(self)}, size={i.image_size})"


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W with its own memory (an expand view would break callers' in-place updates)."""
    if images.shape[1] == 3:
        return images
    if images.device.type == "cpu":  # numpy copy: no thread-pool stall on a busy machine (see ``batch``)
        array = images.numpy()
        return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(array, (array.shape[0], 3, *array.shape[2:]))))
    return images.expand(-1, 3, -1, -1).contiguous()
