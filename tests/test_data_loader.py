"""make_loader: batches, seeded per-epoch order, set_epoch for resume, fast path == generic path, augmentation."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from robustft.data import DatasetInfo, ImageTensorDataset, make_loader
from robustft.errors import ConfigError


def tiny_dataset(n: int = 50, channels: int = 1, size: int = 8) -> ImageTensorDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=generator)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)  # sample id in pixel (0, 0)
    labels = torch.arange(n) % 5
    info = DatasetInfo("tiny", "train", 5, [str(i) for i in range(5)], size)
    return ImageTensorDataset(images, labels, info)


def ids(images: torch.Tensor) -> list[int]:
    return torch.round(images[:, 0, 0, 0] * 255).long().tolist()


class PlainDataset(Dataset):
    """The same samples through the generic (non uint8-tensor) path."""

    def __init__(self, inner: ImageTensorDataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        return self.inner[i]


def test_batches_shapes_types_and_len():
    loader = make_loader(tiny_dataset(), batch_size=16)
    batches = list(loader)
    assert len(loader) == 4 == len(batches) and [len(y) for _, y in batches] == [16, 16, 16, 2]
    images, labels = batches[0]
    assert images.shape == (16, 3, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1 and torch.equal(images[:, 0], images[:, 2])
    assert ids(torch.cat([x for x, _ in batches])) == list(range(50))  # no shuffle: dataset order
    dropped = make_loader(tiny_dataset(), batch_size=16, drop_last=True)
    assert len(dropped) == 3 and all(len(y) == 16 for _, y in dropped)


def test_shuffle_is_seeded_per_epoch_and_set_epoch_reproduces_an_epoch():
    a = make_loader(tiny_dataset(), batch_size=10, shuffle=True, seed=7)
    epoch0, epoch1 = [ids(x) for x, _ in a], [ids(x) for x, _ in a]
    assert epoch0 != epoch1
    assert sorted(sum(epoch0, [])) == list(range(50)) == sorted(sum(epoch1, []))
    b = make_loader(tiny_dataset(), batch_size=10, shuffle=True, seed=7)  # "another process"
    assert [ids(x) for x, _ in b] == epoch0
    b.set_epoch(1)
    assert [ids(x) for x, _ in b] == epoch1
    c = make_loader(tiny_dataset(), batch_size=10, shuffle=True, seed=8)
    assert [ids(x) for x, _ in c] != epoch0


def test_generic_dataset_path_matches_the_fast_path():
    fast = make_loader(tiny_dataset(channels=3), batch_size=12, shuffle=True, seed=3)
    slow = make_loader(PlainDataset(tiny_dataset(channels=3)), batch_size=12, shuffle=True, seed=3)
    for (x1, y1), (x2, y2) in zip(fast, slow, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_augmentation_spec_is_seeded_and_stays_in_range():
    dataset = tiny_dataset(channels=3)
    first = [x for x, _ in make_loader(dataset, 25, shuffle=True, seed=1, augment=["flip", "color_jitter:0.25"])]
    second = [x for x, _ in make_loader(dataset, 25, shuffle=True, seed=1, augment="flip,color_jitter:0.25")]
    plain = [x for x, _ in make_loader(dataset, 25, shuffle=True, seed=1)]
    assert all(torch.equal(p, q) for p, q in zip(first, second, strict=True))
    assert not torch.equal(first[0], plain[0])
    assert all(0 <= x.min() and x.max() <= 1 for x in first)


def test_callable_augmentation_receives_a_generator():
    seen = []

    def record(images, generator):
        seen.append(isinstance(generator, torch.Generator))
        return images

    list(make_loader(tiny_dataset(), 25, augment=record))
    assert seen == [True, True]


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(batch_size):
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(tiny_dataset(), batch_size)


def test_batches_and_items_own_their_memory_so_in_place_updates_work():
    images, _ = next(iter(make_loader(tiny_dataset(channels=1), batch_size=4)))
    images.add_(0.0).clamp_(0, 1)  # would raise on an expanded (channel-shared) view
    image, _ = tiny_dataset(channels=1)[0]
    image.mul_(1.0)
    assert images.is_contiguous() and image.is_contiguous()


def test_device_is_resolved_and_checked():
    assert make_loader(tiny_dataset(), 8, device="auto").device.type in ("cpu", "cuda")
    with pytest.raises(ConfigError):
        make_loader(tiny_dataset(), 8, device="gpu0")
