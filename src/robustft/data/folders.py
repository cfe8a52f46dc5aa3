"""``imagefolder:<path>``: image files in class sub-directories; the listing helpers every folder source shares.

ImageFolder layout (as torchvision's ``ImageFolder``): ``<path>/<class>/**/<image>``; class names = the sorted
sub-directory names. If ``<path>/train`` and ``<path>/test`` (or ``<path>/val``) exist, they are the train pool and
the test split; otherwise a fixed stratified ``test_fraction`` (default 0.2, seed ``HOLDOUT_SEED``) is the test.
Images are decoded with Pillow (any mode -> RGB), fitted to ``image_size`` (shorter side + centre crop, so
``image_size`` is required), and cached; the cache key covers every file's path, size and modification time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from pathlib import Path

import torch

from robustft.data.embedded import HOLDOUT_SEED
from robustft.data.idx import CorruptDataFileError
from robustft.data.resize import pil_to_uint8
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.data.splits import holdout_split
from robustft.errors import ConfigError, MissingAssetError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
TEST_FOLDERS = ("test", "val", "valid", "validation")

Listing = list[tuple[Path, Hashable]]  # (image path, class key: its name, or its label in a split file)


def class_directories(path: Path) -> list[str]:
    return sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))


def list_images(path: Path) -> Listing:
    """Every image under ``path/<class>/``, sorted, with its class name."""
    return [(file, name) for name in class_directories(path)
            for file in sorted((path / name).rglob("*"))
            if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file()]


def listing_signature(listing: Listing, extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for file, name in listing:
        stat = file.stat()
        digest.update(f"{file.resolve()}|{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return f"folder:{digest.hexdigest()}"


def decode_listing(listing: Listing, classes: list[str], image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 N x 3 x S x S, int64 N) for the listed files; a file Pillow cannot read is named in the error."""
    from PIL import Image, UnidentifiedImageError

    if image_size is None:
        raise ConfigError("image folders hold images of any size: give image_size (e.g. 224).")
    index = {name: i for i, name in enumerate(classes)}
    images = torch.empty((len(listing), 3, image_size, image_size), dtype=torch.uint8)
    for i, (file, _) in enumerate(listing):
        try:
            with Image.open(file) as image:
                images[i] = pil_to_uint8(image, image_size)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise CorruptDataFileError(f"cannot decode image {file} ({error}); delete or replace it.") from None
    return images, torch.tensor([index[name] for _, name in listing], dtype=torch.int64)


def split_listing(path: Path, test_fraction: float,
                  classes: list[str] | None = None) -> tuple[dict[str, Listing], list[str]]:
    """{"train": listing, "test": listing} of an image folder (train/ + test/ folders, or the fixed seeded split)."""
    test_dir = next((path / t for t in TEST_FOLDERS if (path / t).is_dir()), None)
    if (path / "train").is_dir() and test_dir is not None:
        listings = {"train": list_images(path / "train"), "test": list_images(test_dir)}
        found = sorted(set(class_directories(path / "train")) | set(class_directories(test_dir)))
    else:
        everything = list_images(path)
        found = class_directories(path)
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction={test_fraction!r} must be in (0, 1).")
        names = classes or found
        position = {n: i for i, n in enumerate(names)}  # not names.index: DomainNet's 345 classes x 100k files
        labels = torch.tensor([position[n] for _, n in everything], dtype=torch.int64)
        train, test = holdout_split(labels, test_fraction, HOLDOUT_SEED) if len(labels) else (labels, labels)
        listings = {"train": [everything[i] for i in train.tolist()], "test": [everything[i] for i in test.tolist()]}
    if not listings["train"] and not listings["test"]:
        raise MissingAssetError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in class sub-folders of {path}; "
                                "expected <path>/<class>/<image> (optionally under train/ and test/).")
    return listings, classes or found


def listing_source(name: str, listings: dict[str, Listing], classes: list, location: str, ood_splits: list[str],
                   class_names: list[str] | None = None) -> Source:
    """A Source decoding ``listings["train"]`` / ``["test"]``; a file's label is its key's index in ``classes``.

    ``class_names`` (default: ``classes`` as strings) are what ``info.class_names`` shows.
    """
    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_listing(listings[kind], classes, image_size)

    def signature(kind: str) -> str:
        return listing_signature(listings[kind], f"{name}|{kind}|{','.join(map(str, classes))}")

    names = [str(c) for c in classes] if class_names is None else list(class_names)
    return Source(name, names, read, signature, native_size=None, location=location, ood_splits=ood_splits)


def missing_files(listing: Listing) -> list[Path]:
    """The listed files that are not on disk (a split file naming images an unpacked archive lacks)."""
    return [file for file, _ in listing if not file.is_file()]


@DATASETS.register("imagefolder:<path>")
def image_folder(spec: str, root: str | None = None, download: bool = False, test_fraction: float = 0.2) -> Source:
    """A folder of class sub-folders (train/ + test/ sub-folders, or a fixed seeded test split)."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and root:
        path = Path(root) / path
    if not path.is_dir():
        raise MissingAssetError(f"image folder {path} does not exist; imagefolder:<path> needs a directory of "
                                "class sub-folders (<path>/<class>/<image>).")
    listings, classes = split_listing(path, test_fraction)
    return listing_source(f"imagefolder:{spec}", listings, classes, str(path), corruption_ood(f"imagefolder:{spec}"))
