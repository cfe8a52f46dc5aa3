"""``domainnet:<domain>`` on a fixture laid out like the DomainNet download: labels from the split lists in their
own class order, domains without lists, the other domains as OOD splits (paper A), broken lists."""

from __future__ import annotations

import pytest
import torch

import dataset_fixtures as fx
from robustft.data import load
from robustft.data.idx import CorruptDataFileError
from robustft.errors import MissingAssetError
from test_data_papers_torchvision import assert_pixels_match_labels, both


@pytest.fixture(autouse=True)
def _cache(private_data_cache, monkeypatch, tmp_path):
    monkeypatch.delenv("ROBUSTFT_DOMAINNET", raising=False)
    monkeypatch.setenv("ROBUSTFT_DATA", str(tmp_path / "default-root"))
    yield


def test_domainnet_labels_are_the_lists_labels_in_their_own_class_order(tmp_path):
    fx.write_domainnet(tmp_path)
    train, test = both("domainnet:painting", tmp_path)
    # the lists' order ignores case and punctuation; Python's sorted() would put The_Eiffel_Tower first
    assert test.info.class_names == list(fx.DOMAINNET_CLASSES) != sorted(fx.DOMAINNET_CLASSES)
    # painting_train.txt has no t-shirt (as the real one): 8 train images, the class count stays 5
    assert (len(train), len(test)) == (8, 5) and train.info.num_classes == 5
    assert test.labels.tolist() == [0, 1, 2, 3, 4]
    assert_pixels_match_labels(train)
    assert_pixels_match_labels(test)


@pytest.mark.parametrize("lists", [(), ("clipart",)], ids=["no-lists", "clipart-lists"])
def test_domainnet_domain_without_lists_uses_the_same_class_order(tmp_path, lists):
    fx.write_domainnet(tmp_path, domains=("clipart", "sketch"), lists=lists)
    sketch = load("domainnet:sketch", "train", image_size=8, root=str(tmp_path), val_fraction=0.0)
    test = load("domainnet:sketch", "test", image_size=8, root=str(tmp_path))
    assert sketch.info.class_names == list(fx.DOMAINNET_CLASSES)
    assert (len(sketch), len(test)) == (12, 3)  # no lists: the fixed stratified 20% test split
    assert_pixels_match_labels(sketch)
    assert_pixels_match_labels(test)


def test_domainnet_ood_splits_are_the_other_five_domains_test_images(tmp_path):
    from robustft.config import from_dict
    from robustft.training.components import load_datasets

    fx.write_domainnet(tmp_path)
    cfg = from_dict({"data": {"name": "domainnet:clipart", "image_size": 8, "root": str(tmp_path),
                              "ood": "auto", "val_fraction": 0.2}})
    splits = load_datasets(cfg)
    others = ["infograph", "painting", "quickdraw", "real", "sketch"]
    assert list(splits["ood"]) == [f"domainnet:{d}" for d in others]
    for name, ood in splits["ood"].items():
        assert len(ood) == 5 and ood.info.class_names == splits["train"].info.class_names, name
        assert_pixels_match_labels(ood)
    # the domains' own folders: each OOD split reads its domain's test list, not clipart's
    assert splits["ood"]["domainnet:real"].info.source.endswith("real")
    # root may also be the DomainNet folder itself
    assert len(load("domainnet:real", "test", image_size=8, root=str(tmp_path / "domainnet"))) == 5


def test_domainnet_inconsistent_or_incomplete_lists(tmp_path, monkeypatch):
    fx.write_domainnet(tmp_path, domains=("clipart", "real"))
    base = tmp_path / "domainnet"
    real = (base / "real_test.txt").read_text()
    (base / "real_test.txt").write_text(real.replace(" 1\n", " 2\n", 1))  # cello given cell_phone's label
    with pytest.raises(CorruptDataFileError, match="real_test.txt gives label 2 to 'cello'"):
        load("domainnet:clipart", "test", image_size=8, root=str(tmp_path))
    (base / "real_test.txt").write_text(real + "real/cello/real_missing.jpg 1\n")
    with pytest.raises(MissingAssetError, match="1 of the 6 images listed in .*real_test.txt are not on disk"):
        load("domainnet:real", "test", image_size=8, root=str(tmp_path))
    (base / "real_test.txt").unlink()
    with pytest.raises(MissingAssetError, match="real_train.txt is there but real_test.txt is not"):
        load("domainnet:real", "test", image_size=8, root=str(tmp_path))
    (base / "real_test.txt").write_text(real)
    monkeypatch.setenv("ROBUSTFT_DATA", str(tmp_path))  # no root: $ROBUSTFT_DATA/domainnet
    assert torch.equal(load("domainnet:clipart", "test", image_size=8).labels, torch.arange(5))
