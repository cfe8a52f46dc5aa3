"""``elpv``: electroluminescence images of solar cells, graded by how likely each cell is defective (embedded).

Source: the PyPI package ``elpv-dataset`` 1.0.0.post1 (ZAE Bayern; data CC BY-NC-SA 4.0, code Apache-2.0), which
ships the ELPV benchmark itself: 2,624 grey 300 x 300 PNG crops of mono- and polycrystalline cells from 44 solar
modules, and ``labels.csv`` rows ``images/cellNNNN.png <probability> <mono|poly>``. The four classes are the
experts' defect probabilities 0, 1/3, 2/3 and 1, as in the benchmark (the cell type is not a class). No ImageNet
class looks like an EL image, and the classes are unbalanced (1,508 / 295 / 106 / 715), so this is the embedded
task farthest from the backbones' upstream data: ``robustft list datasets`` shows its measured linear-probe
accuracy next to the others'.

Location: ``root=``, else ``$ROBUSTFT_ELPV``, else the installed ``elpv_dataset`` package; the folder is the one
holding ``labels.csv`` (and ``images/``). Split: the package has none, so the fixed stratified 20% test split of
the other single-pool datasets (525 test / 2,099 train pool), chosen with ``HOLDOUT_SEED``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robustft.data.cache import files_signature
from robustft.data.embedded import POOL_TAG, pool_split
from robustft.data.idx import CorruptDataFileError
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.errors import MissingAssetError

ELPV_PACKAGE = "elpv-dataset==1.0.0.post1"
# the benchmark's four expert grades; the label is the grade's index
ELPV_PROBABILITIES = (0.0, 1 / 3, 2 / 3, 1.0)
ELPV_CLASSES = ["functional (p=0)", "probably functional (p=1/3)", "probably defective (p=2/3)", "defective (p=1)"]
ELPV_SIZE = 300
_INSTALL_HINT = (f"Install it with `pip install --no-deps {ELPV_PACKAGE}` (or `make assets`), or point ROBUSTFT_ELPV "
                 "(or root=) at the folder holding its labels.csv and images/.")


def elpv_directory(root: str | None) -> Path:
    """The folder holding ``labels.csv``: ``root``, ``$ROBUSTFT_ELPV`` or the installed package's ``data/``."""
    explicit = root or os.environ.get("ROBUSTFT_ELPV")
    if explicit:
        candidates = [Path(explicit), Path(explicit) / "data", Path(explicit) / "elpv_dataset" / "data"]
    else:
        try:
            import elpv_dataset
        except ImportError:
            raise MissingAssetError(f"the ELPV solar-cell dataset is not installed (no elpv_dataset package). "
                                    f"{_INSTALL_HINT}") from None
        candidates = [Path(elpv_dataset.__file__).parent / "data"]
    for directory in candidates:
        if (directory / "labels.csv").is_file():
            return directory
    raise MissingAssetError(f"the ELPV solar-cell dataset is not installed: no labels.csv in {candidates[0]}. "
                            f"{_INSTALL_HINT}")


def read_elpv_labels(path: Path) -> tuple[list[str], np.ndarray]:
    """(relative image paths, int64 class per row) from ``labels.csv``; the class is the nearest grade's index.

    Raises:
        CorruptDataFileError: a row that is not ``<path> <probability in 0..1> <type>``, or a probability that is not
            one of the four grades (within 0.01).
    """
    names, grades = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            probability = float(fields[1])
        except (IndexError, ValueError):
            raise CorruptDataFileError(f"{path}:{number} is {line!r}, not '<image path> <defect probability> "
                                       f"<mono|poly>'; reinstall it: pip install --force-reinstall --no-deps "
                                       f"{ELPV_PACKAGE}.") from None
        distances = np.abs(np.asarray(ELPV_PROBABILITIES) - probability)
        if distances.min() > 0.01:
            raise CorruptDataFileError(f"{path}:{number} grades a cell {probability}, not one of 0, 1/3, 2/3, 1; "
                                       f"reinstall it: pip install --force-reinstall --no-deps {ELPV_PACKAGE}.")
        names.append(fields[0])
        grades.append(int(distances.argmin()))
    if not names:
        raise CorruptDataFileError(f"{path} lists no image; reinstall it: pip install --force-reinstall --no-deps "
                                   f"{ELPV_PACKAGE}.")
    return names, np.asarray(grades, dtype=np.int64)


def _read_cell(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise CorruptDataFileError(f"cannot read the ELPV image {path} ({error}); reinstall it: pip install "
                                   f"--force-reinstall --no-deps {ELPV_PACKAGE}.") from None
    if pixels.shape != (ELPV_SIZE, ELPV_SIZE):
        raise CorruptDataFileError(f"{path} is {pixels.shape[1]} x {pixels.shape[0]}, not the benchmark's "
                                   f"{ELPV_SIZE} x {ELPV_SIZE}; reinstall it: pip install --force-reinstall "
                                   f"--no-deps {ELPV_PACKAGE}.")
    return pixels


def read_elpv(directory: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All cells: (uint8 N x 1 x 300 x 300, int64 N grade indices), in ``labels.csv`` order."""
    names, grades = read_elpv_labels(directory / "labels.csv")
    images = np.stack([_read_cell(directory / name) for name in names])
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(grades)


@DATASETS.register("elpv")
def elpv(spec: str, root: str | None = None, download: bool = False) -> Source:
    """ELPV solar cells (PyPI elpv-dataset): 4 defect grades, 300x300 grey EL images, fixed 2,099/525 split."""
    directory = elpv_directory(root)
    labels_file = directory / "labels.csv"

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        return pool_split(*read_elpv(directory), kind)

    def signature(kind: str) -> str:
        # the label file stands for the set: the package replaces images and labels together
        return f"elpv:{kind}:{POOL_TAG}:" + files_signature([labels_file])

    return Source("elpv", ELPV_CLASSES, read, signature, native_size=ELPV_SIZE, location=str(directory),
                  ood_splits=corruption_ood("elpv"))
