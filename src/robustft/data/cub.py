"""``cub200``: CUB-200-2011 (Caltech-UCSD Birds, 200 species; papers A and B), read from its own index files.

Layout of the official archive CUB_200_2011.tgz (https://data.caltech.edu/records/65de6-vp158), found at
``<root>/CUB_200_2011`` (or ``root`` itself when it holds images.txt); root defaults to ``$ROBUSTFT_DATA``:

    images.txt               "<image id> <class folder>/<file>.jpg"   (ids 1 .. 11,788)
    image_class_labels.txt   "<image id> <class id>"                  (class ids 1-based: 1 .. 200)
    train_test_split.txt     "<image id> <1 = train, 0 = test>"       (5,994 train / 5,794 test)
    classes.txt              "<class id> 001.Black_footed_Albatross"  (names shown without the "001." prefix)
    images/<class folder>/<file>.jpg

The official split is used as is (train pool / test); robustft's validation split is held out of the train pool.
A few CUB images are greyscale: every image is decoded to RGB.
"""

from __future__ import annotations

import re
from pathlib import Path

from robustft.data.embedded import _download_root
from robustft.data.folders import listing_source, missing_files
from robustft.data.idx import CorruptDataFileError
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.data.where import PROVENANCE, missing_message
from robustft.errors import MissingAssetError

FOLDER = "CUB_200_2011"
REQUIRED = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "images")


def cub_directory(root: str | None) -> Path:
    """``root`` itself when it is the CUB_200_2011 folder, else ``<root>/CUB_200_2011``."""
    base = Path(root).expanduser() if root else _download_root()
    return base if (base / "images.txt").is_file() else base / FOLDER


def read_pairs(path: Path) -> dict[int, str]:
    """A "<integer id> <value>" file as {id: value} (values may contain spaces).

    Raises:
        CorruptDataFileError: a line without an integer id and a value, or an id given twice.
    """
    pairs: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.strip().split(maxsplit=1)
        if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) in pairs:
            raise CorruptDataFileError(f"{path} line {number}: {line.strip()!r} is not '<id> <value>' with a new "
                                       "integer id; restore the file from CUB_200_2011.tgz.")
        pairs[int(fields[0])] = fields[1]
    return pairs


def _integers(pairs: dict[int, str], path: Path, allowed: range, meaning: str) -> dict[int, int]:
    for key, value in pairs.items():
        if not value.isdigit() or int(value) not in allowed:
            raise CorruptDataFileError(f"{path}: image {key} has {value!r}; {meaning}. Restore the file from "
                                       "CUB_200_2011.tgz.")
    return {key: int(value) for key, value in pairs.items()}


def _class_names(directory: Path, images: dict[int, str], labels: dict[int, int], count: int) -> list[str]:
    """Names from classes.txt ("001.Black_footed_Albatross" -> "Black_footed_Albatross"), else image folders."""
    if (directory / "classes.txt").is_file():
        folders = {k - 1: v for k, v in read_pairs(directory / "classes.txt").items()}
    else:
        folders = {labels[i] - 1: Path(images[i]).parts[0] for i in sorted(images)}
    return [re.sub(r"^\d+\.", "", folders.get(c, f"class_{c + 1}")) for c in range(count)]


@DATASETS.register("cub200", PROVENANCE["cub200"].description())
def cub200(spec: str, root: str | None = None, download: bool = False) -> Source:
    """CUB-200-2011: 200 bird species, 5,994 train / 5,794 test (papers A, B); <root>/CUB_200_2011."""
    directory = cub_directory(root)
    absent = [name for name in REQUIRED if not (directory / name).exists()]
    if absent:
        raise MissingAssetError(missing_message("cub200", directory.parent if directory.name == FOLDER
                                                else directory, f"no {', '.join(absent)}", download, directory))
    images = read_pairs(directory / "images.txt")
    label_file, split_file = directory / "image_class_labels.txt", directory / "train_test_split.txt"
    labels = _integers(read_pairs(label_file), label_file, range(1, 1 << 31), "class ids are 1-based integers")
    is_train = _integers(read_pairs(split_file), split_file, range(2), "1 marks a training image, 0 a test image")
    for path, ids in ((label_file, labels), (split_file, is_train)):
        if set(ids) != set(images):
            odd = sorted(set(ids) ^ set(images))
            raise CorruptDataFileError(f"{path} and images.txt list different image ids (e.g. {odd[0]}, "
                                       f"{len(odd)} in all); restore both from CUB_200_2011.tgz.")
    count = max(labels.values())
    listings = {kind: [(directory / "images" / images[i], labels[i] - 1) for i in sorted(images)
                       if is_train[i] == (kind == "train")] for kind in ("train", "test")}
    for kind, listing in listings.items():
        missing = missing_files(listing)
        if missing:
            raise MissingAssetError(f"{len(missing)} of the {len(listing)} {kind} images in {directory}/images.txt "
                                    f"are not on disk (first: {missing[0]}); extract CUB_200_2011.tgz again.")
    names = _class_names(directory, images, labels, count)
    return listing_source("cub200", listings, list(range(count)), str(directory), corruption_ood("cub200"),
                          class_names=names)
