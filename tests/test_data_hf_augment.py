"""hf: source against a stand-in of the `datasets` API (the library is an optional extra), and augmentations."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from PIL import Image as PILImage

from robustft.data import build_augmentation, load
from robustft.errors import ConfigError, MissingAssetError, UnknownNameError

pytestmark = pytest.mark.usefixtures("private_data_cache")


class Image:  # the feature type names are what the source looks at
    pass


class ClassLabel:
    def __init__(self, names):
        self.names = names


class Split(list):
    """A list of row dicts with the bits of datasets.Dataset the source uses."""

    def __init__(self, rows, fingerprint):
        super().__init__(rows)
        self.features = {"img": Image(), "fine": ClassLabel(["red", "green"]), "note": object()}
        self._fingerprint = fingerprint

    def __getitem__(self, key):
        if isinstance(key, str):
            return [row[key] for row in self]
        return super().__getitem__(key)


def rows(n):
    return [{"img": PILImage.new("RGB", (6, 9), (240, 0, 0) if i % 2 == 0 else (0, 240, 0)), "fine": i % 2,
             "note": "x"} for i in range(n)]


@pytest.fixture
def fake_datasets(monkeypatch):
    calls = []
    module = types.ModuleType("datasets")
    module.config = types.SimpleNamespace(HF_HUB_OFFLINE=False, HF_DATASETS_OFFLINE=False)

    def load_dataset(spec, name=None, cache_dir=None):
        calls.append((spec, name, module.config.HF_HUB_OFFLINE))
        if spec == "missing/thing":
            raise FileNotFoundError("not cached")
        splits = {"train": Split(rows(12), "tr"), "validation": Split(rows(4), "va")}
        if spec == "no/test":
            splits.pop("validation")
        return splits

    module.load_dataset = load_dataset
    module.load_from_disk = lambda path: {"train": Split(rows(10), "disk")}
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hf_dataset_columns_splits_and_offline_flag(fake_datasets):
    test = load("hf:some/colours", "test", image_size=4, config="small")
    assert len(test) == 4 and test.info.class_names == ["red", "green"] and test[0][0].shape == (3, 4, 4)
    assert fake_datasets[-1] == ("some/colours", "small", True)  # no download: hub access forbidden
    train = load("hf:some/colours", "train", image_size=4, val_fraction=0.25, download=True)
    assert len(train) == 9 and fake_datasets[-1][2] is False
    colours = train.batch(torch.arange(len(train)))[0].mean(dim=(2, 3)).argmax(1)
    assert torch.equal(colours, train.labels)


def test_hf_without_test_split_and_from_disk(fake_datasets, tmp_path):
    assert len(load("hf:no/test", "test", image_size=4)) == 2  # fixed 20% of 12 (stratified: 1 + 1)
    assert len(load(f"hf:{tmp_path}", "test", image_size=4)) == 2


def test_hf_errors(fake_datasets):
    with pytest.raises(MissingAssetError, match="download=True"):
        load("hf:missing/thing", "test", image_size=4)
    with pytest.raises(ConfigError, match="label_column='nope' is not a column"):
        load("hf:some/colours", "test", image_size=4, label_column="nope")
    with pytest.raises(ConfigError, match="no split 'holdout'"):
        load("hf:some/colours", "test", image_size=4, test_split="holdout")
    with pytest.raises(ConfigError, match="give image_size"):
        load("hf:some/colours", "test")


def test_hf_without_the_library_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    with pytest.raises(MissingAssetError, match=r"pip install 'robustft\[hf\]'"):
        load("hf:cifar10", "test", image_size=32)


# ---------------------------------------------------------------- augmentations

def batch() -> torch.Tensor:
    return torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


@pytest.mark.parametrize("spec", ["flip", "color_jitter:0.25", "rotation:10", "crop:2",
                                  ["flip", "color_jitter:0.25", "rotation:10"]])
def test_augmentation_is_deterministic_for_a_generator_and_in_range(spec):
    aug = build_augmentation(spec)
    a = aug(batch(), torch.Generator().manual_seed(1))
    b = aug(batch(), torch.Generator().manual_seed(1))
    c = aug(batch(), torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == batch().shape and a.min() >= 0 and a.max() <= 1


def test_flip_mirrors_some_samples_exactly_and_leaves_the_rest():
    images = batch()
    out = build_augmentation("flip")(images, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_zero_strength_augmentations_are_identities():
    images = batch()
    assert torch.allclose(build_augmentation("color_jitter:0")(images, torch.Generator()), images, atol=1e-6)
    assert torch.allclose(build_augmentation("rotation:0")(images, torch.Generator()), images, atol=1e-5)
    assert build_augmentation(None) is None and build_augmentation([]) is None


def test_bad_augmentation_specs():
    with pytest.raises(UnknownNameError, match="Did you mean 'flip'"):
        build_augmentation("flp")
    for bad in ("color_jitter:x", "color_jitter:2", "rotation:-5", "flip:1", "crop:1.5"):
        with pytest.raises(ConfigError):
            build_augmentation(bad)
