"""robustft's own readers of CUB-200-2011 (``cub200``: index files) and Stanford Dogs (``stanford-dogs``: MATLAB
lists), on fixtures laid out like the real downloads (tests/dataset_fixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest

import dataset_fixtures as fx
from robustft.data import load
from robustft.data.idx import CorruptDataFileError
from robustft.errors import MissingAssetError
from test_data_papers_torchvision import assert_pixels_match_labels, both, mean_colours


@pytest.fixture(autouse=True)
def _cache(private_data_cache):
    yield


def test_cub200_official_split_zero_based_labels_and_greyscale(tmp_path):
    fx.write_cub(tmp_path)
    train, test = both("cub200", tmp_path)
    assert (len(train), len(test)) == (6, 6) and train.info.num_classes == 3
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]  # image_class_labels.txt says 1, 1, 2, 2, 3, 3
    assert train.info.class_names == ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross"]
    assert_pixels_match_labels(train)
    assert_pixels_match_labels(test)
    grey = [c for c in mean_colours(test) if np.ptp(c) < 1]  # the greyscale JPEG: three equal channels
    assert len(grey) == 1 and np.allclose(grey[0], fx.as_mode(fx.colour(1), "L"), atol=3)
    # root may also be the CUB_200_2011 folder itself; the validation split comes out of the train pool
    assert len(load("cub200", "val", image_size=8, root=str(tmp_path / "CUB_200_2011"), val_fraction=0.5)) == 3


def test_cub200_bad_index_files_name_the_file_and_the_fix(tmp_path):
    fx.write_cub(tmp_path)
    base = tmp_path / "CUB_200_2011"
    labels = (base / "image_class_labels.txt").read_text()
    (base / "image_class_labels.txt").write_text(labels.replace("1 1\n", "1 0\n", 1))
    with pytest.raises(CorruptDataFileError, match="image_class_labels.txt: image 1 has '0'; class ids are 1-based"):
        load("cub200", "test", image_size=8, root=str(tmp_path))
    (base / "image_class_labels.txt").write_text(labels)
    split = (base / "train_test_split.txt").read_text()
    (base / "train_test_split.txt").write_text(split.replace("12 0\n", ""))
    with pytest.raises(CorruptDataFileError, match="train_test_split.txt and images.txt list different image ids"):
        load("cub200", "test", image_size=8, root=str(tmp_path))
    (base / "train_test_split.txt").write_text(split)
    next((base / "images" / fx.CUB_CLASSES[2]).iterdir()).unlink()
    with pytest.raises(MissingAssetError, match="1 of the 6 train images .* extract CUB_200_2011.tgz again"):
        load("cub200", "train", image_size=8, root=str(tmp_path))


@pytest.mark.parametrize("lists_folder", ["", "lists"])
def test_stanford_dogs_reads_the_mat_lists_with_one_based_labels(tmp_path, lists_folder):
    fx.write_stanford_dogs(tmp_path, lists_folder=lists_folder)
    train, test = both("stanford-dogs", tmp_path)
    assert (len(train), len(test)) == (9, 6) and test.info.num_classes == 3
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]  # the lists say 1, 1, 2, 2, 3, 3
    assert test.info.class_names == ["Chihuahua", "Japanese_spaniel", "Maltese_dog"]
    assert_pixels_match_labels(train)
    assert_pixels_match_labels(test)


def test_stanford_dogs_bad_lists_name_the_file(tmp_path):
    from scipy.io import loadmat, savemat

    fx.write_stanford_dogs(tmp_path)
    path = tmp_path / "stanford_dogs" / "test_list.mat"
    content = loadmat(str(path))
    content["labels"][0, 0] = 2  # a Chihuahua labelled as the second breed
    savemat(str(path), {k: v for k, v in content.items() if not k.startswith("__")})
    with pytest.raises(CorruptDataFileError, match="label 2 is given to both"):
        load("stanford-dogs", "test", image_size=8, root=str(tmp_path))
    path.write_bytes(b"not a MATLAB file")
    with pytest.raises(CorruptDataFileError, match="test_list.mat as a MATLAB file"):
        load("stanford-dogs", "test", image_size=8, root=str(tmp_path))
