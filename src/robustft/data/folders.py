"""``imagefolder:<path>`` and ``domainnet:<domain>``: image files in class sub-directories.

ImageFolder layout (as torchvision's ``ImageFolder``): ``<path>/<class>/**/<image>``; class names = the sorted
sub-directory names. If ``<path>/train`` and ``<path>/test`` (or ``<path>/val``) exist, they are the train pool and
the test split; otherwise a fixed stratified ``test_fraction`` (default 0.2, seed ``HOLDOUT_SEED``) is the test.
Images are decoded with Pillow (any mode -> RGB), fitted to ``image_size`` (shorter side + centre crop, so
``image_size`` is required), and cached; the cache key covers every file's path, size and modification time.

DomainNet (paper A's OOD protocol): ``root`` (or ``$ROBUSTFT_DOMAINNET``) holds the six domains clipart, infograph,
painting, quickdraw, real, sketch as ``<root>/<domain>/<class>/<image>``. When the official split lists
``<root>/<domain>_train.txt`` / ``<domain>_test.txt`` ("<domain>/<class>/<file> <label>" lines) exist they define
the splits and labels; otherwise each domain folder follows the ImageFolder convention above. Class indices are
the sorted union of class names over all domains present, so a label means the same class in every domain.
``info.ood_splits`` of ``domainnet:<domain>`` lists the other domains found under root (their test images).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from robustft.data.embedded import HOLDOUT_SEED
from robustft.data.idx import CorruptDataFileError
from robustft.data.resize import pil_to_uint8
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.data.splits import holdout_split
from robustft.errors import ConfigError, MissingAssetError, UnknownNameError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
TEST_FOLDERS = ("test", "val", "valid", "validation")

Listing = list[tuple[Path, str]]  # (image path, class name)


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


def _split_listing(path: Path, test_fraction: float, classes: list[str] | None = None) -> tuple[dict[str, Listing],
                                                                                              list[str]]:
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
        labels = torch.tensor([names.index(n) for _, n in everything], dtype=torch.int64)
        train, test = holdout_split(labels, test_fraction, HOLDOUT_SEED) if len(labels) else (labels, labels)
        listings = {"train": [everything[i] for i in train.tolist()], "test": [everything[i] for i in test.tolist()]}
    if not listings["train"] and not listings["test"]:
        raise MissingAssetError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in class sub-folders of {path}; "
                                "expected <path>/<class>/<image> (optionally under train/ and test/).")
    return listings, classes or found


def _folder_source(name: str, listings: dict[str, Listing], classes: list[str], location: str,
                   ood_splits: list[str]) -> Source:
    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_listing(listings[kind], classes, image_size)

    def signature(kind: str) -> str:
        return listing_signature(listings[kind], f"{name}|{kind}|{','.join(classes)}")

    return Source(name, classes, read, signature, native_size=None, location=location, ood_splits=ood_splits)


@DATASETS.register("imagefolder:<path>")
def image_folder(spec: str, root: str | None = None, download: bool = False, test_fraction: float = 0.2) -> Source:
    """A folder of class sub-folders (train/ + test/ sub-folders, or a fixed seeded test split)."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and root:
        path = Path(root) / path
    if not path.is_dir():
        raise MissingAssetError(f"image folder {path} does not exist; imagefolder:<path> needs a directory of "
                                "class sub-folders (<path>/<class>/<image>).")
    listings, classes = _split_listing(path, test_fraction)
    return _folder_source(f"imagefolder:{spec}", listings, classes, str(path), corruption_ood(f"imagefolder:{spec}"))


def _domainnet_root(root: str | None) -> Path:
    explicit = root or os.environ.get("ROBUSTFT_DOMAINNET")
    if not explicit:
        raise MissingAssetError("DomainNet is not embedded: download the six domains (clipart, infograph, painting, "
                                "quickdraw, real, sketch) from http://ai.bu.edu/M3SDA/, unzip them into one folder "
                                "and pass root=<folder> (data.root) or set ROBUSTFT_DOMAINNET.")
    return Path(explicit).expanduser()


def _official_listing(base: Path, domain: str, kind: str) -> Listing | None:
    split_file = base / f"{domain}_{kind}.txt"
    if not split_file.is_file():
        return None
    listing = []
    for number, line in enumerate(split_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        relative = line.split()[0]
        parts = Path(relative).parts
        if len(parts) < 3:
            raise CorruptDataFileError(f"{split_file} line {number}: expected '<domain>/<class>/<file> <label>'.")
        listing.append((base / relative, parts[-2]))
    return listing


@DATASETS.register("domainnet:<domain>")
def domainnet(spec: str, root: str | None = None, download: bool = False, test_fraction: float = 0.2) -> Source:
    """DomainNet domain (clipart, infograph, painting, quickdraw, real, sketch) under root; OOD = the others."""
    if spec not in DOMAINNET_DOMAINS:
        import difflib

        close = difflib.get_close_matches(spec, DOMAINNET_DOMAINS, n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join('domainnet:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown DomainNet domain {spec!r}.{hint} Domains: {', '.join(DOMAINNET_DOMAINS)}.")
    base = _domainnet_root(root)
    present = [d for d in DOMAINNET_DOMAINS if (base / d).is_dir()]
    if spec not in present:
        raise MissingAssetError(f"DomainNet domain {spec!r} is not in {base} (found: {', '.join(present) or 'none'}); "
                                f"unzip {spec}.zip from http://ai.bu.edu/M3SDA/ there.")
    classes = sorted({c for d in present for c in class_directories(base / d) if c not in ("train",) + TEST_FOLDERS}
                     | {c for d in present for t in ("train",) + TEST_FOLDERS if (base / d / t).is_dir()
                        for c in class_directories(base / d / t)})
    official = {kind: _official_listing(base, spec, kind) for kind in ("train", "test")}
    if official["train"] is not None and official["test"] is not None:
        listings = official
        classes = sorted(set(classes) | {n for listing in listings.values() for _, n in listing})
    else:
        listings, _ = _split_listing(base / spec, test_fraction, classes)
    ood = [f"domainnet:{d}" for d in present if d != spec]
    return _folder_source(f"domainnet:{spec}", listings, classes, str(base / spec), ood)
