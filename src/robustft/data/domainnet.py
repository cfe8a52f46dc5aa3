"""``domainnet:<domain>``: one DomainNet domain as the dataset, the other domains as its OOD splits (paper A).

Layout of the official download (http://ai.bu.edu/M3SDA/): a folder holding the six domains clipart, infograph,
painting, quickdraw, real, sketch as ``<domain>/<class>/<file>.jpg`` next to the split lists
``<domain>_train.txt`` / ``<domain>_test.txt``, whose lines read ``<domain>/<class>/<file>.jpg <label>`` with
0-based labels over 345 classes. That folder is ``root`` (``data.root``) when the domains are directly in it, else
``<root>/domainnet``; without root, ``$ROBUSTFT_DOMAINNET``, else ``$ROBUSTFT_DATA/domainnet`` (default
~/.cache/robustft/downloads/domainnet).

Labels are the lists' label column. Their class order is not Python's ``sorted``: it ignores case and punctuation
("The_Eiffel_Tower" comes after "tent", "t-shirt" after "trumpet" as label 327), so the class of each label is read
from the lists of every domain present (one class per label and one label per class, checked), and a class found
only in a folder (a domain unpacked without its lists) follows in that same case- and punctuation-blind order. A
domain without lists follows the ImageFolder convention (``train/`` + ``test/`` folders, else a fixed seeded
``test_fraction`` test split). ``info.ood_splits`` names the other domains present: paper A's OOD accuracy is the
accuracy on the other five domains' test images, which ``data.ood: auto`` (or the names listed) evaluates.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from robustft.data.embedded import _download_root
from robustft.data.folders import TEST_FOLDERS, Listing, class_directories, listing_source, missing_files, split_listing
from robustft.data.idx import CorruptDataFileError
from robustft.data.sources import DATASETS, Source
from robustft.data.where import PROVENANCE, missing_message
from robustft.errors import MissingAssetError, UnknownNameError

DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
KINDS = ("train", "test")

Entry = tuple[str, str, int]  # (path relative to the DomainNet folder, class name, label)


def official_order(name: str) -> tuple[str, str]:
    """Sort key reproducing the split lists' class order: letters and digits only, case-blind (ties: the name)."""
    return re.sub(r"[^a-z0-9]", "", name.lower()), name


def domainnet_directory(root: str | None) -> Path:
    """The folder holding the domains (see the module docstring for where it is looked for)."""
    if root:
        base = Path(root).expanduser()
        return base if any((base / d).is_dir() for d in DOMAINNET_DOMAINS) else base / "domainnet"
    explicit = os.environ.get("ROBUSTFT_DOMAINNET")
    return Path(explicit).expanduser() if explicit else _download_root() / "domainnet"


def read_split_file(path: Path) -> list[Entry]:
    """The entries of one ``<domain>_<kind>.txt`` list.

    Raises:
        CorruptDataFileError: a line that is not ``<domain>/<class>/<file> <label>`` with a label >= 0.
    """
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        parts = Path(fields[0]).parts
        if len(fields) != 2 or len(parts) < 3 or not fields[1].isdigit():
            raise CorruptDataFileError(f"{path} line {number}: {line.strip()!r} is not '<domain>/<class>/<file> "
                                       "<label>' with a 0-based label; restore the file from the download.")
        entries.append((fields[0], parts[-2], int(fields[1])))
    return entries


@functools.lru_cache(maxsize=16)
def _label_pairs(path: str, mtime_ns: int, size: int) -> frozenset[tuple[str, int]]:
    """The (class, label) pairs one list uses; cached per file version (every domain's load reads all lists)."""
    return frozenset((name, label) for _, name, label in read_split_file(Path(path)))


def _split_files(base: Path, domain: str) -> dict[str, Path] | None:
    files = {kind: base / f"{domain}_{kind}.txt" for kind in KINDS}
    found = [kind for kind, file in files.items() if file.is_file()]
    if len(found) == 1:
        other = next(kind for kind in KINDS if kind not in found)
        raise MissingAssetError(f"{files[found[0]]} is there but {files[other].name} is not; download both split "
                                f"lists of {domain} from http://ai.bu.edu/M3SDA/ into {base}.")
    return files if found else None


def class_order(base: Path, present: list[str]) -> list[str]:
    """Class names in label order: the labels of every present domain's lists, then folder-only classes.

    Raises:
        CorruptDataFileError: two classes with one label, or one class with two labels, across the lists.
    """
    name_of: dict[int, str] = {}
    label_of: dict[str, int] = {}
    for domain in present:
        for file in (_split_files(base, domain) or {}).values():
            stat = file.stat()
            for name, label in sorted(_label_pairs(str(file), stat.st_mtime_ns, stat.st_size)):
                if name_of.setdefault(label, name) != name or label_of.setdefault(name, label) != label:
                    raise CorruptDataFileError(
                        f"{file} gives label {label} to {name!r}, but the lists also pair label {label} with "
                        f"{name_of[label]!r} and {name!r} with label {label_of[name]}; every list must use one "
                        "numbering (restore the official lists).")
    in_folders = {c for d in present for c in class_directories(base / d) if c not in ("train",) + TEST_FOLDERS}
    in_folders |= {c for d in present for t in ("train",) + TEST_FOLDERS if (base / d / t).is_dir()
                   for c in class_directories(base / d / t)}
    size = max(name_of, default=-1) + 1
    names = [name_of.get(label, f"unlisted_{label}") for label in range(size)]
    return names + sorted(in_folders - set(label_of), key=official_order)


def _listed(base: Path, domain: str, files: dict[str, Path]) -> dict[str, Listing]:
    listings = {kind: [(base / relative, name) for relative, name, _ in read_split_file(file)]
                for kind, file in files.items()}
    for kind, listing in listings.items():
        missing = missing_files(listing)
        if missing:
            raise MissingAssetError(
                f"{len(missing)} of the {len(listing)} images listed in {files[kind]} are not on disk (first: "
                f"{missing[0]}). Unzip {domain}.zip from http://ai.bu.edu/M3SDA/ into {base} again (the lists "
                "belong to the cleaned version of the domains).")
    return listings


@DATASETS.register("domainnet:<domain>", PROVENANCE["domainnet"].description())
def domainnet(spec: str, root: str | None = None, download: bool = False, test_fraction: float = 0.2) -> Source:
    """DomainNet domain (clipart, infograph, painting, quickdraw, real, sketch): 345 classes; OOD = the others."""
    if spec not in DOMAINNET_DOMAINS:
        import difflib

        close = difflib.get_close_matches(spec, DOMAINNET_DOMAINS, n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join('domainnet:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown DomainNet domain {spec!r}.{hint} Domains: {', '.join(DOMAINNET_DOMAINS)}.")
    base = domainnet_directory(root)
    present = [d for d in DOMAINNET_DOMAINS if (base / d).is_dir()] if base.is_dir() else []
    if spec not in present:
        data_root = base.parent if base.name == "domainnet" else base
        found = f"domains found: {', '.join(present) or 'none'}"
        raise MissingAssetError(missing_message("domainnet", data_root, found, download, base,
                                                subject=f"DomainNet domain {spec!r}"))
    classes = class_order(base, present)
    files = _split_files(base, spec)
    if files is not None:
        listings = _listed(base, spec, files)
    else:
        listings, _ = split_listing(base / spec, test_fraction, classes)
    ood = [f"domainnet:{d}" for d in present if d != spec]
    return listing_source(f"domainnet:{spec}", listings, classes, str(base / spec), ood)
