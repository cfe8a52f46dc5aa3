"""``stanford-dogs``: Stanford Dogs (120 breeds, 12,000 train / 8,580 test; papers A and B), from its MATLAB lists.

Layout of the official download (http://vision.stanford.edu/aditya86/ImageNetDogs/): images.tar unpacks to
``Images/n02085620-Chihuahua/n02085620_10074.jpg``; lists.tar unpacks to ``train_list.mat`` and ``test_list.mat``
(and file_list.mat) beside it. robustft looks in ``<root>/stanford_dogs`` (or ``root`` itself when it holds
Images/), root defaulting to ``$ROBUSTFT_DATA``; the lists may also sit in a ``lists/`` sub-folder.

Each list is a MATLAB file read with ``scipy.io.loadmat``: ``file_list`` (N cells such as
'n02085620-Chihuahua/n02085620_10074.jpg', relative to Images/) and ``labels`` (N x 1, 1-based: 1 .. 120). Labels
become 0-based; a class's name is its folder without the WordNet id ("Chihuahua"). The official split is used as
is (train pool / test); robustft's validation split is held out of the train pool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustft.data.embedded import _download_root
from robustft.data.folders import listing_source, missing_files
from robustft.data.idx import CorruptDataFileError
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.data.where import PROVENANCE, missing_message
from robustft.errors import MissingAssetError

FOLDER = "stanford_dogs"
LISTS = {"train": "train_list.mat", "test": "test_list.mat"}


def dogs_directory(root: str | None) -> Path:
    """``root`` itself when it holds Images/, else ``<root>/stanford_dogs``."""
    base = Path(root).expanduser() if root else _download_root()
    return base if (base / "Images").is_dir() else base / FOLDER


def list_file(directory: Path, kind: str) -> Path | None:
    """``<directory>/<kind>_list.mat`` or ``<directory>/lists/<kind>_list.mat``, whichever exists."""
    return next((p for p in (directory / LISTS[kind], directory / "lists" / LISTS[kind]) if p.is_file()), None)


def read_list(path: Path) -> tuple[list[str], np.ndarray]:
    """(relative image paths, int64 1-based labels) of one ``*_list.mat``.

    Raises:
        CorruptDataFileError: not a MATLAB file, no file_list / labels, their lengths differ, or a label < 1.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(str(path), squeeze_me=True)
    except (MatReadError, ValueError, OSError) as error:
        raise CorruptDataFileError(f"cannot read {path} as a MATLAB file ({error}); extract lists.tar again.") from None
    if "file_list" not in content or "labels" not in content:
        raise CorruptDataFileError(f"{path} has no file_list / labels variables (it has: "
                                   f"{', '.join(k for k in content if not k.startswith('__'))}); extract lists.tar "
                                   "again.")
    # squeeze_me turns the N x 1 cell array into N strings (a single entry into one string: atleast_1d)
    files = [str(np.asarray(f).reshape(-1)[0]) for f in np.atleast_1d(content["file_list"])]
    labels = np.atleast_1d(np.asarray(content["labels"])).reshape(-1).astype(np.int64)
    if len(files) != len(labels) or (len(labels) and labels.min() < 1):
        raise CorruptDataFileError(f"{path}: {len(files)} files and {len(labels)} labels (1-based, min "
                                   f"{labels.min() if len(labels) else '-'}); extract lists.tar again.")
    return files, labels


def _class_names(entries: list[tuple[str, int]], path: Path) -> list[str]:
    """Label order -> breed name, checking each label keeps one folder across both lists."""
    folder_of: dict[int, str] = {}
    for file, label in entries:
        folder = Path(file).parts[0]
        if folder_of.setdefault(label, folder) != folder:
            raise CorruptDataFileError(f"{path}: label {label + 1} is given to both {folder_of[label]!r} and "
                                       f"{folder!r}; extract lists.tar again.")
    count = max(folder_of, default=-1) + 1
    # "n02085620-Chihuahua" -> "Chihuahua" (the WordNet id is only a prefix)
    return [folder_of[c].split("-", 1)[-1] if c in folder_of else f"class_{c + 1}" for c in range(count)]


@DATASETS.register("stanford-dogs", PROVENANCE["stanford-dogs"].description())
def stanford_dogs(spec: str, root: str | None = None, download: bool = False) -> Source:
    """Stanford Dogs: 120 breeds, 12,000 train / 8,580 test (papers A, B); <root>/stanford_dogs."""
    directory = dogs_directory(root)
    lists = {kind: list_file(directory, kind) for kind in LISTS}
    absent = ([] if (directory / "Images").is_dir() else ["Images/"]) + \
        [LISTS[kind] for kind, path in lists.items() if path is None]
    if absent:
        data_root = directory.parent if directory.name == FOLDER else directory
        raise MissingAssetError(missing_message("stanford-dogs", data_root, f"no {', '.join(absent)}", download,
                                                directory))
    read = {kind: read_list(path) for kind, path in lists.items()}
    entries = {kind: [(f, int(label) - 1) for f, label in zip(files, labels, strict=True)]
               for kind, (files, labels) in read.items()}
    names = _class_names(entries["train"] + entries["test"], lists["train"])
    listings = {kind: [(directory / "Images" / f, label) for f, label in items] for kind, items in entries.items()}
    for kind, listing in listings.items():
        missing = missing_files(listing)
        if missing:
            raise MissingAssetError(f"{len(missing)} of the {len(listing)} images in {lists[kind]} are not on disk "
                                    f"(first: {missing[0]}); extract images.tar into {directory} again.")
    return listing_source("stanford-dogs", listings, list(range(len(names))), str(directory),
                          corruption_ood("stanford-dogs"), class_names=names)
