"""The papers' datasets that torchvision reads (cifar10, cifar100, caltech256, stanford-cars, fgvc-aircraft,
imagenette), each on a tiny fixture laid out like its real download (tests/dataset_fixtures.py); no network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.datasets as tv
from PIL import Image

import dataset_fixtures as fx
from robustft.data import load
from robustft.errors import ConfigError, MissingAssetError


@pytest.fixture(autouse=True)
def _cache(private_data_cache):
    yield


def mean_colours(ds) -> np.ndarray:
    """N x 3 mean colour (0..255) of every image of a loaded split."""
    return (ds.batch(torch.arange(len(ds)))[0].mean(dim=(2, 3)) * 255).numpy()


def assert_pixels_match_labels(ds) -> None:
    """Every image shows its own label's colour: decoding and labelling agree, image for image."""
    assert [fx.label_of(c) for c in mean_colours(ds)] == ds.labels.tolist()


def both(name: str, root, **options):
    return [load(name, split, image_size=8, root=str(root), val_fraction=0.0, **options)
            for split in ("train", "test")]


def patch_cifar_checksums(monkeypatch, cls, md5s: dict[str, str], train: list[str], test: list[str],
                          meta: str) -> None:
    """torchvision checks each CIFAR file against the real archive's md5: point it at the fixture's."""
    monkeypatch.setattr(cls, "train_list", [[n, md5s[n]] for n in train])
    monkeypatch.setattr(cls, "test_list", [[n, md5s[n]] for n in test])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5s[meta]})


def test_cifar10_and_cifar100_read_the_pickled_batches(tmp_path, monkeypatch):
    md5s = fx.write_cifar(tmp_path)
    patch_cifar_checksums(monkeypatch, tv.CIFAR10, md5s, [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                          "batches.meta")
    train, test = both("cifar10", tmp_path)
    assert (len(train), len(test)) == (10, 5) and train.info.num_classes == 10
    assert train.info.name == "cifar10" and test.info.class_names[3] == "class3"
    assert_pixels_match_labels(train)
    assert_pixels_match_labels(test)
    assert load("cifar10", "test", root=str(tmp_path)).info.image_size == 32  # native size, no resizing

    md5s = fx.write_cifar(tmp_path, hundred=True)
    patch_cifar_checksums(monkeypatch, tv.CIFAR100, md5s, ["train"], ["test"], "meta")
    train, test = both("cifar100", tmp_path)
    assert (len(train), len(test)) == (10, 5) and test.info.num_classes == 100  # fine labels
    assert_pixels_match_labels(train)


def test_caltech256_greyscale_and_cmyk_jpegs_come_out_rgb(tmp_path):
    fx.write_caltech256(tmp_path)
    folders = tmp_path / "caltech256" / "256_ObjectCategories"
    assert Image.open(folders / "001.ak47" / "001_0002.jpg").mode == "L"
    assert Image.open(folders / "002.american-flag" / "002_0003.jpg").mode == "CMYK"
    train, test = both("caltech256", tmp_path)
    # 15 images (RENAME2 and the greg/ sub-folder are not images of the class), fixed stratified 20% test
    assert (len(train), len(test)) == (12, 3) and sorted(test.labels.tolist()) == [0, 1, 2]
    assert train.info.class_names == list(fx.CALTECH_CLASSES)  # 001.ak47 -> label 0
    colours = np.concatenate([mean_colours(train), mean_colours(test)])
    labels = torch.cat([train.labels, test.labels]).tolist()
    assert [fx.label_of(c) for c in colours] == labels
    grey = [c for c in colours if np.ptp(c) < 1]
    assert len(grey) == 1 and np.allclose(grey[0], fx.as_mode(fx.colour(0), "L"), atol=3)
    # the test split does not move with the run's seed
    assert torch.equal(load("caltech256", "test", image_size=8, root=str(tmp_path), seed=5).labels, test.labels)


def test_stanford_cars_labels_come_from_the_devkit_one_based_classes(tmp_path):
    fx.write_stanford_cars(tmp_path)
    train, test = both("stanford-cars", tmp_path)
    assert train.labels.tolist() == [0, 1, 2, 0, 1, 2] and test.labels.tolist() == [2, 1, 0]
    assert test.info.class_names == list(fx.CAR_NAMES)
    assert_pixels_match_labels(train)
    assert_pixels_match_labels(test)


def test_fgvc_aircraft_trains_on_trainval_with_variants_in_file_order(tmp_path):
    splits = fx.write_fgvc_aircraft(tmp_path)
    train, test = both("fgvc-aircraft", tmp_path)
    assert train.labels.tolist() == splits["trainval"] and test.labels.tolist() == splits["test"]
    assert train.info.class_names == list(fx.AIRCRAFT_VARIANTS)  # variants.txt order, not sorted
    assert_pixels_match_labels(train)
    assert_pixels_match_labels(test)


def test_imagenette_val_is_the_test_split_and_size_picks_the_archive(tmp_path):
    fx.write_imagenette(tmp_path)
    train, test = both("imagenette", tmp_path)
    assert (len(train), len(test)) == (9, 6)
    assert test.info.class_names == ["tench", "English springer", "cassette player"]  # first synonym of each
    assert_pixels_match_labels(test)

    fx.write_imagenette(tmp_path / "small", "imagenette2-320", {"train": 1, "val": 1})
    assert len(load("imagenette", "test", image_size=8, root=str(tmp_path / "small"), size="320px")) == 3
    with pytest.raises(MissingAssetError, match="Imagenette"):
        load("imagenette", "test", image_size=8, root=str(tmp_path / "small"))  # size=full: imagenette2/
    with pytest.raises(ConfigError, match="320px"):
        load("imagenette", "test", image_size=8, root=str(tmp_path), size="320")
