"""Online-style sources on tiny on-disk fixtures: imagefolder:, domainnet:, tv: (no network, no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from robustft.data import load
from robustft.data.idx import CorruptDataFileError
from robustft.data.loading import _MEMORY
from robustft.errors import ConfigError, MissingAssetError, UnknownNameError
from test_data_formats import tagged_images, write_idx

COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "owl": (30, 30, 200)}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ROBUSTFT_DOMAINNET", raising=False)
    _MEMORY.clear()
    yield
    _MEMORY.clear()


def write_tree(root, per_class: int = 5, size=(20, 12), classes=COLOURS, mode: str = "RGB") -> None:
    """<root>/<class>/<i>.png, each image a solid class colour (so labels are checkable after decoding)."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.new("RGB", size, COLOURS[name])
            (image.convert(mode) if mode != "RGB" else image).save(root / name / f"{i}.png")


def dominant_class(ds) -> list[int]:
    return ds.batch(torch.arange(len(ds)))[0].mean(dim=(2, 3)).argmax(dim=1).tolist()


def test_imagefolder_with_train_and_test_subfolders(tmp_path):
    write_tree(tmp_path / "set" / "train", per_class=6)
    write_tree(tmp_path / "set" / "test", per_class=2)
    train = load(f"imagefolder:{tmp_path / 'set'}", "train", image_size=8, val_fraction=0.5)
    test = load(f"imagefolder:{tmp_path / 'set'}", "test", image_size=8)
    assert len(train) == 9 and len(test) == 6
    assert test.info.class_names == ["cat", "dog", "owl"] and test[0][0].shape == (3, 8, 8)
    # cat is red, dog green, owl blue: decoding kept each image with its label
    assert dominant_class(test) == test.labels.tolist() and dominant_class(train) == train.labels.tolist()


def test_imagefolder_without_test_folder_gets_a_fixed_stratified_split(tmp_path):
    write_tree(tmp_path / "set", per_class=10, mode="L")  # grayscale files become 3 equal channels
    test = load(f"imagefolder:{tmp_path / 'set'}", "test", image_size=6)
    train = load(f"imagefolder:{tmp_path / 'set'}", "train", image_size=6, val_fraction=0.25, seed=9)
    assert torch.bincount(test.labels).tolist() == [2, 2, 2] and len(train) == 18
    assert torch.equal(load(f"imagefolder:{tmp_path / 'set'}", "test", image_size=6, seed=4).labels, test.labels)
    x = test[0][0]
    assert torch.equal(x[0], x[1])
    # a relative path is resolved against root=
    assert len(load("imagefolder:set", "test", image_size=6, root=str(tmp_path))) == 6


def test_imagefolder_keeps_aspect_ratio_by_centre_crop(tmp_path):
    root = tmp_path / "wide" / "stripe"
    root.mkdir(parents=True)
    image = np.zeros((10, 30, 3), np.uint8)
    image[:, 10:20] = 255  # white centre third of a wide image
    Image.fromarray(image).save(root / "a.png")
    x = load(f"imagefolder:{tmp_path / 'wide'}", "train", image_size=10, val_fraction=0.0)[0][0]
    assert x.min() > 0.95  # the centre crop is the white part only


def test_imagefolder_errors(tmp_path):
    write_tree(tmp_path / "set", per_class=3)
    with pytest.raises(ConfigError, match="give image_size"):
        load(f"imagefolder:{tmp_path / 'set'}", "test")
    with pytest.raises(MissingAssetError, match="does not exist"):
        load(f"imagefolder:{tmp_path / 'nope'}", "test", image_size=8)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(MissingAssetError, match="no images"):
        load(f"imagefolder:{tmp_path / 'empty'}", "test", image_size=8)
    write_tree(tmp_path / "bad" / "train", per_class=1)
    write_tree(tmp_path / "bad" / "test", per_class=1)
    (tmp_path / "bad" / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(CorruptDataFileError, match="broken.png"):
        load(f"imagefolder:{tmp_path / 'bad'}", "train", image_size=8)
    with pytest.raises(ConfigError, match="test_fraction"):
        load(f"imagefolder:{tmp_path / 'set'}", "test", image_size=8, test_fraction=1.5)


def test_domainnet_other_domains_are_the_ood_splits_and_labels_agree(tmp_path):
    write_tree(tmp_path / "dn" / "clipart", per_class=5)
    write_tree(tmp_path / "dn" / "sketch", per_class=5, classes=["dog", "owl"])  # a domain missing a class
    # official split lists for "real"
    write_tree(tmp_path / "dn" / "real", per_class=4)
    lines = {kind: [f"real/{c}/{i}.png {k}" for k, c in enumerate(COLOURS) for i in ids]
             for kind, ids in (("train", (0, 1, 2)), ("test", (3,)))}
    for kind, text in lines.items():
        (tmp_path / "dn" / f"real_{kind}.txt").write_text("\n".join(text) + "\n")
    clipart = load("domainnet:clipart", "test", image_size=8, root=str(tmp_path / "dn"))
    assert clipart.info.ood_splits == ["domainnet:real", "domainnet:sketch"]
    assert clipart.info.class_names == ["cat", "dog", "owl"]
    sketch = load("domainnet:sketch", "train", image_size=8, root=str(tmp_path / "dn"), val_fraction=0.0)
    assert set(sketch.labels.tolist()) == {1, 2} and dominant_class(sketch) == sketch.labels.tolist()
    real = load("domainnet:real", "test", image_size=8, root=str(tmp_path / "dn"))
    assert len(real) == 3 and dominant_class(real) == real.labels.tolist() == [0, 1, 2]


def test_domainnet_errors(tmp_path, monkeypatch):
    with pytest.raises(MissingAssetError, match="ROBUSTFT_DOMAINNET"):
        load("domainnet:clipart", "test", image_size=8)
    with pytest.raises(UnknownNameError, match="domainnet:clipart"):
        load("domainnet:clipartt", "test", image_size=8, root=str(tmp_path))
    with pytest.raises(MissingAssetError, match="'quickdraw' is not in"):
        load("domainnet:quickdraw", "test", image_size=8, root=str(tmp_path))
    write_tree(tmp_path / "dn" / "painting", per_class=5)
    monkeypatch.setenv("ROBUSTFT_DOMAINNET", str(tmp_path / "dn"))
    assert len(load("domainnet:painting", "test", image_size=8)) == 3


def test_tv_mnist_from_its_raw_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", tagged_images(labels, seed=n))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    test = load("tv:MNIST", "test", root=str(tmp_path))
    assert len(test) == 20 and test.info.image_size == 28 and test.info.class_names[3].startswith("3")
    assert torch.equal((test.images[:, 0, 0, 0] // 20).long(), test.labels)
    big = load("tv:MNIST", "train", root=str(tmp_path), image_size=64, val_fraction=0.25)
    assert len(big) == 30 and big[0][0].shape == (3, 64, 64)


def test_tv_dataset_without_official_split_and_pil_images(tmp_path, monkeypatch):
    import torchvision.datasets

    class TinyPictures:
        """A torchvision-style dataset: (PIL image, label), no split argument."""

        categories = ["red", "green"]

        def __init__(self, root, download=False):
            self.items = [(Image.new("RGB", (9 + i, 7), (250, 0, 0) if i % 2 == 0 else (0, 250, 0)), i % 2)
                          for i in range(10)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    monkeypatch.setattr(torchvision.datasets, "TinyPictures", TinyPictures, raising=False)
    test = load("tv:TinyPictures", "test", image_size=5, root=str(tmp_path))
    train = load("tv:TinyPictures", "train", image_size=5, root=str(tmp_path), val_fraction=0.0)
    assert len(test) == 2 and len(train) == 8 and test.info.class_names == ["red", "green"]
    assert dominant_class(train) == train.labels.tolist()


def test_tv_errors_offline_and_unknown(tmp_path):
    with pytest.raises(MissingAssetError, match="download=True"):
        load("tv:CIFAR10", "test", root=str(tmp_path))
    with pytest.raises(UnknownNameError, match="tv:CIFAR10"):
        load("tv:CIFAR1O", "test", root=str(tmp_path))
