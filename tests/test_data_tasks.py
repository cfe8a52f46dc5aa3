"""The harder embedded tasks, elpv (solar cells, PyPI elpv-dataset) and emoji (Debian Noto Color Emoji + Unicode
emoji-test.txt): their readers on tiny fixtures in the real layouts, their errors, and (with `make assets`) the
installed sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustft.data import load
from robustft.data.elpv import ELPV_CLASSES, read_elpv_labels
from robustft.data.emoji import EMOJI_FONT, EMOJI_TEST, emoji_classes, parse_emoji_test
from robustft.data.idx import CorruptDataFileError
from robustft.errors import MissingAssetError

pytestmark = pytest.mark.usefixtures("private_data_cache")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# ---------------------------------------------------------------- elpv


def write_elpv(root: Path, per_grade: int = 5, grades: tuple[str, ...] = ("0.0", "0.3333333333333333",
                                                                           "0.6666666666666666", "1.0")) -> Path:
    """The package layout: labels.csv rows '<images/cellNNNN.png> <probability> <type>' and 300x300 grey PNGs whose
    pixel (0, 0) is 50 * grade index, so the image/label pairing is checkable after decoding."""
    (root / "images").mkdir(parents=True)
    rows = []
    for number in range(per_grade * len(grades)):
        grade = number % len(grades)
        pixels = np.full((300, 300), 128, dtype=np.uint8)
        pixels[0, 0] = 50 * grade
        name = f"images/cell{number:04d}.png"
        Image.fromarray(pixels).save(root / name)
        rows.append(f"{name}  {grades[grade]:20s}{'mono' if number % 2 else 'poly'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_elpv_reads_the_four_grades_with_their_images(tmp_path):
    root = write_elpv(tmp_path / "elpv")
    test = load("elpv", "test", root=str(root))
    train = load("elpv", "train", root=str(root), val_fraction=0.0)
    assert test.info.class_names == ELPV_CLASSES and test.info.num_classes == 4 and test.info.image_size == 300
    assert (len(train), len(test)) == (16, 4) and torch.bincount(test.labels).tolist() == [1, 1, 1, 1]
    # pixel (0, 0) was written as 50 * grade: each image kept its own label through decoding and splitting
    for dataset in (train, test):
        assert (dataset.images[:, 0, 0, 0].long() == 50 * dataset.labels).all()


def test_elpv_grade_is_the_nearest_of_the_four_probabilities(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("images/a.png 0.0 mono\nimages/b.png 0.333 poly\n\nimages/c.png 0.667 mono\nimages/d.png 1 poly\n")
    names, grades = read_elpv_labels(path)
    assert names == ["images/a.png", "images/b.png", "images/c.png", "images/d.png"]
    assert grades.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("text, message", [("images/a.png 0.5 mono\n", "not one of 0, 1/3"),
                                           ("images/a.png mono\n", "not '<image path>"),
                                           ("\n", "lists no image")])
def test_elpv_refuses_a_label_file_that_is_not_the_benchmark(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(CorruptDataFileError, match=message) as error:
        read_elpv_labels(path)
    assert "elpv-dataset==1.0.0.post1" in str(error.value)


def test_elpv_refuses_an_image_of_the_wrong_size(tmp_path):
    root = write_elpv(tmp_path / "elpv", per_grade=2)
    Image.new("L", (64, 64)).save(root / "images" / "cell0003.png")
    with pytest.raises(CorruptDataFileError, match="cell0003.png is 64 x 64, not the benchmark's 300 x 300"):
        load("elpv", "test", root=str(root))


def test_elpv_not_installed_says_how_to_install_it(tmp_path):
    with pytest.raises(MissingAssetError, match=r"pip install --no-deps elpv-dataset==1.0.0.post1.*ROBUSTFT_ELPV"):
        load("elpv", "test", root=str(tmp_path))


# ---------------------------------------------------------------- emoji

EMOJI_TEST_FIXTURE = """\
# group: Smileys & Emotion

# subgroup: face-smiling
1F600 ; fully-qualified # grinning face
1F603 ; fully-qualified # grinning face with big eyes
263A FE0F ; fully-qualified # smiling face
263A ; unqualified # smiling face

# subgroup: face-hat
1F920 ; fully-qualified # cowboy hat face

# group: People & Body

# subgroup: hand-fingers-open
1F44B ; fully-qualified # waving hand
1F44C ; fully-qualified # ok hand
1F44D ; fully-qualified # thumbs up

# group: Travel & Places

# subgroup: sky & weather
2600 FE0F ; fully-qualified # sun
2602 FE0F ; fully-qualified # umbrella
1F98A ; fully-qualified # (not a sky emoji, but one DejaVu Sans has no glyph for)
1F32A 200D 2600 ; fully-qualified # a sequence of two code points

# subgroup: transport-ground
1F682 ; fully-qualified # locomotive
1F683 ; fully-qualified # railway car
1F684 ; fully-qualified # high-speed train
"""


def write_emoji_test(path: Path) -> Path:
    path.write_text(EMOJI_TEST_FIXTURE, encoding="utf-8")
    return path


def test_emoji_keeps_single_code_point_emoji_of_large_subgroups_outside_people(tmp_path):
    entries = parse_emoji_test(write_emoji_test(tmp_path / "emoji-test.txt"), min_per_class=3)
    # face-hat (1 emoji) is too small, People & Body is excluded, unqualified and multi-code-point lines are not
    # emoji of their own; FE0F (presentation selector) does not make a sequence
    assert [e.character for e in entries] == ["\U0001F600", "\U0001F603", "\u263A", "\u2600", "\u2602",
                                              "\U0001F98A", "\U0001F682", "\U0001F683", "\U0001F684"]
    assert emoji_classes(entries) == ["face-smiling", "sky & weather", "transport-ground"]
    assert entries[3].group == "Travel & Places"


def test_emoji_refuses_a_listing_with_no_subgroup_left(tmp_path):
    path = write_emoji_test(tmp_path / "emoji-test.txt")
    with pytest.raises(CorruptDataFileError, match="no subgroup with 50 or more"):
        parse_emoji_test(path, min_per_class=50)
    path.write_text("# subgroup: x\nZZZZ ; fully-qualified # bad\n")
    with pytest.raises(CorruptDataFileError, match="not hexadecimal"):
        parse_emoji_test(path)


@pytest.mark.skipif(not DEJAVU.is_file(), reason="Debian fonts-dejavu-core not installed")
def test_emoji_draws_each_glyph_and_leaves_out_what_the_font_lacks(tmp_path, monkeypatch):
    monkeypatch.setattr("robustft.data.emoji.EMOJI_MIN_PER_CLASS", 3)
    root = tmp_path / "emoji"
    root.mkdir()
    write_emoji_test(root / "emoji-test.txt")
    shutil.copy(DEJAVU, root / "NotoColorEmoji.ttf")  # a plain font: draws the sun and umbrella, not the fox
    train = load("emoji", "train", root=str(root), val_fraction=0.0)
    test = load("emoji", "test", root=str(root))
    assert train.info.class_names == ["face-smiling", "sky & weather", "transport-ground"]
    assert train.info.image_size == 136 and train.images.shape[1] == 3
    # DejaVu Sans has glyphs for the three faces, the sun and the umbrella; the fox and the trains would draw as its
    # missing-glyph box and are left out (the class stays, empty, so labels keep their meaning)
    labels = sorted(train.labels.tolist() + test.labels.tolist())
    assert labels == [0, 0, 0, 1, 1]
    images = torch.cat([train.images, test.images])
    assert (images < 128).any() and len({bytes(i.numpy()) for i in images}) == 5  # five different drawings


def test_emoji_not_installed_names_the_debian_packages(tmp_path):
    with pytest.raises(MissingAssetError, match="apt-get install fonts-noto-color-emoji unicode-data"):
        load("emoji", "test", root=str(tmp_path))


# ---------------------------------------------------------------- the installed sets


def _elpv_installed() -> bool:
    try:
        import elpv_dataset  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.needs_assets
@pytest.mark.skipif(not _elpv_installed(), reason="elpv-dataset not installed (`make assets`)")
def test_real_elpv_has_2624_cells_split_2099_525():
    from robustft.data.elpv import elpv_directory

    _, grades = read_elpv_labels(elpv_directory(None) / "labels.csv")
    assert np.bincount(grades).tolist() == [1508, 295, 106, 715]  # the benchmark's published grade counts
    test = load("elpv", "test", image_size=32)  # (the train pool would decode all 2,624 images a second time)
    assert len(test) == 525 and torch.bincount(test.labels).tolist() == [302, 59, 21, 143]
    assert test.info.image_size == 32 and 0.2 < test.images.float().mean() / 255 < 0.8


@pytest.mark.needs_assets
@pytest.mark.skipif(not (Path(EMOJI_FONT).is_file() and Path(EMOJI_TEST).is_file()),
                    reason="Debian fonts-noto-color-emoji / unicode-data not installed (`make assets`)")
def test_real_emoji_is_43_colour_subgroups():
    test, train = load("emoji", "test"), load("emoji", "train", val_fraction=0.0)
    assert test.info.num_classes == 43 and len(train) + len(test) == 977 and len(test) == 195
    assert {"animal-mammal", "animal-bird", "food-fruit", "food-vegetable"} <= set(test.info.class_names)
    # colour: the channels differ (a grey image would have three equal ones)
    assert (test.images[:, 0].float() - test.images[:, 2].float()).abs().mean() > 10
