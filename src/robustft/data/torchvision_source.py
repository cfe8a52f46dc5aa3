"""``tv:<Name>``: torchvision's datasets (CIFAR10, CIFAR100, Caltech256, Flowers102, FGVCAircraft, StanfordCars,
DTD, Food101, OxfordIIITPet, SVHN, STL10, Imagenette, MNIST, ...).

Split conventions mapped to robustft's train pool / test (the validation split is always robustft's seeded
hold-out of the train pool, as paper A does): datasets with a ``train`` flag use train=True / False;
``split`` datasets use "train" / "test", with the official validation part folded into the train pool where one
exists (Flowers102, DTD: train + val; FGVCAircraft, OxfordIIITPet: trainval; Country211: train + valid;
Imagenette, ImageNet, Places365: their val split as test). Datasets without splits (Caltech101, Caltech256,
SUN397, EuroSAT) get a fixed stratified 20% test split (seed ``HOLDOUT_SEED``).
Files live under ``root`` (default ``$ROBUSTFT_DATA`` or ~/.cache/robustft/downloads); nothing is downloaded
unless ``download=True``. Images are decoded once, fitted to ``image_size`` (shorter side + centre crop) and
cached; datasets held as one uint8 array (CIFAR, MNIST, SVHN, STL10) are read directly at their native size.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from robustft.data.embedded import HOLDOUT_FRACTION, HOLDOUT_SEED, _download_root
from robustft.data.resize import pil_to_uint8
from robustft.data.sources import DATASETS, Source, corruption_ood, to_nchw_uint8
from robustft.data.splits import holdout_split
from robustft.data.where import TORCHVISION_NAMES, missing_message
from robustft.errors import ConfigError, MissingAssetError, OfflineError, UnknownNameError

# kind -> list of constructor keyword sets whose samples are concatenated; None = no official split
SPLITS: dict[str, dict[str, list[dict[str, Any]]] | None] = {
    "Flowers102": {"train": [{"split": "train"}, {"split": "val"}], "test": [{"split": "test"}]},
    "DTD": {"train": [{"split": "train"}, {"split": "val"}], "test": [{"split": "test"}]},
    "FGVCAircraft": {"train": [{"split": "trainval"}], "test": [{"split": "test"}]},
    "OxfordIIITPet": {"train": [{"split": "trainval"}], "test": [{"split": "test"}]},
    "Country211": {"train": [{"split": "train"}, {"split": "valid"}], "test": [{"split": "test"}]},
    "Imagenette": {"train": [{"split": "train"}], "test": [{"split": "val"}]},
    "ImageNet": {"train": [{"split": "train"}], "test": [{"split": "val"}]},
    "Places365": {"train": [{"split": "train-standard"}], "test": [{"split": "val"}]},
    "Caltech101": None, "Caltech256": None, "SUN397": None, "EuroSAT": None,
}


def _dataset_class(spec: str) -> type:
    import torchvision.datasets as datasets

    cls = getattr(datasets, spec, None)
    if not isinstance(cls, type) or not hasattr(cls, "__getitem__") or spec.startswith("_"):
        import difflib

        names = sorted(n for n in dir(datasets) if isinstance(getattr(datasets, n), type) and n[0].isupper())
        close = difflib.get_close_matches(spec, names, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join('tv:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"torchvision has no dataset {spec!r} (names are case-sensitive).{hint} "
                               f"Available: {', '.join(names)}.")
    return cls


def _split_arguments(spec: str, cls: type) -> dict[str, list[dict[str, Any]]] | None:
    if spec in SPLITS:
        return SPLITS[spec]
    parameters = inspect.signature(cls.__init__).parameters
    if "train" in parameters:
        return {"train": [{"train": True}], "test": [{"train": False}]}
    if "split" in parameters:
        return {"train": [{"split": "train"}], "test": [{"split": "test"}]}
    return None


_CONSTRUCTED: OrderedDict[tuple, Any] = OrderedDict()
_CONSTRUCTED_ENTRIES = 6  # train + test (+ val parts) of one dataset: a run loads each split and OOD from them


def _construct(cls: type, spec: str, root: str, download: bool, arguments: dict[str, Any]) -> Any:
    """The torchvision dataset object, reused within the process (CIFAR re-reads 150 MB on every construction)."""
    key = (cls, root, tuple(sorted(arguments.items())))
    if key in _CONSTRUCTED:
        _CONSTRUCTED.move_to_end(key)
        return _CONSTRUCTED[key]
    dataset = _build(cls, spec, root, download, arguments)
    _CONSTRUCTED[key] = dataset
    while len(_CONSTRUCTED) > _CONSTRUCTED_ENTRIES:
        _CONSTRUCTED.popitem(last=False)
    return dataset


def _build(cls: type, spec: str, root: str, download: bool, arguments: dict[str, Any]) -> Any:
    try:
        return cls(root=root, download=download, **arguments)
    except (RuntimeError, FileNotFoundError, OSError, ValueError) as error:
        # ValueError: StanfordCars refuses download=True (its host is gone); a bad argument value is ours, not
        # the user's (the splits are fixed here), so every failure means "the files are not there".
        if spec in TORCHVISION_NAMES:
            raise MissingAssetError(missing_message(TORCHVISION_NAMES[spec], root, f"torchvision: {error}",
                                                    download)) from None
        if download:
            raise OfflineError(f"downloading tv:{spec} into {root} failed ({error}). It needs the internet; or "
                               f"put its files under root= yourself.") from None
        raise MissingAssetError(f"tv:{spec} is not in {root} ({error}). Pass download=True (--data.download true "
                                "or data.download=true) to download it (needs the internet), or point root= at "
                                "the folder that holds it.") from None
    except TypeError as error:
        raise ConfigError(f"tv:{spec} cannot be built with {arguments} ({error}); it may not be an image "
                          "classification dataset.") from None


def _labels_of(dataset: Any) -> np.ndarray | None:
    for attribute in ("targets", "labels", "_labels", "y"):
        value = getattr(dataset, attribute, None)
        if value is not None and len(value) == len(dataset):
            try:
                return np.asarray(value, dtype=np.int64).reshape(-1)
            except (TypeError, ValueError):
                return None
    return None


def _arrays(dataset: Any, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(images uint8 N x C x H x W, labels, fixed_size) of one torchvision dataset object."""
    data, labels = getattr(dataset, "data", None), _labels_of(dataset)
    if labels is not None and isinstance(data, (np.ndarray, torch.Tensor)) and data.ndim in (3, 4) \
            and len(data) == len(labels) and torch.as_tensor(data[:1]).dtype == torch.uint8:
        return to_nchw_uint8(torch.as_tensor(np.asarray(data))), torch.from_numpy(labels), True
    if image_size is None:
        raise ConfigError(f"{type(dataset).__name__} images vary in size: give image_size (e.g. 224).")
    images, targets = [], []
    for index in range(len(dataset)):
        image, label = dataset[index]
        if isinstance(label, (tuple, list)):
            label = label[0]
        images.append(pil_to_uint8(image, image_size))
        targets.append(int(label))
    if not images:
        return torch.zeros((0, 3, image_size, image_size), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), False
    return torch.stack(images), torch.tensor(targets, dtype=torch.int64), False


def _class_names(dataset: Any, labels: torch.Tensor) -> list[str]:
    for attribute in ("classes", "categories"):
        names = getattr(dataset, attribute, None)
        if names is not None and len(names) >= (int(labels.max()) + 1 if len(labels) else 0):
            # Imagenette's classes are tuples of synonyms ("tench", "Tinca tinca"): the first is the name
            return [str(n[0] if isinstance(n, (tuple, list)) and n else n) for n in names]
    return [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]


@DATASETS.register("tv:<name>")
def torchvision_dataset(spec: str, root: str | None = None, download: bool = False) -> Source:
    """torchvision datasets (tv:CIFAR10, tv:Caltech256, tv:FGVCAircraft ...); download=True fetches them."""
    return torchvision_source(spec, root, download)


def torchvision_source(spec: str, root: str | None = None, download: bool = False, name: str | None = None,
                       arguments: dict[str, Any] | None = None) -> Source:
    """The Source of torchvision's dataset class ``spec``, named ``name`` (default ``tv:<spec>``).

    ``arguments`` go to every constructor call besides the split ones (Imagenette's ``size``).
    """
    cls = _dataset_class(spec)
    root = str(root or _download_root())
    name = name or f"tv:{spec}"
    splits = _split_arguments(spec, cls)
    groups = {"all": [{}]} if splits is None else splits
    groups = {kind: [{**(arguments or {}), **args} for args in arg_list] for kind, arg_list in groups.items()}
    datasets = {kind: [_construct(cls, spec, root, download, args) for args in arg_list]
                for kind, arg_list in groups.items()}
    first = next(iter(datasets.values()))[0]
    probe_labels = _labels_of(first)
    fixed_size = isinstance(getattr(first, "data", None), (np.ndarray, torch.Tensor)) and probe_labels is not None
    native = int(first.data.shape[-2] if first.data.ndim == 4 and first.data.shape[1] in (1, 3)
                 else first.data.shape[1]) if fixed_size else None
    labels_for_names = torch.from_numpy(probe_labels) if probe_labels is not None else torch.zeros(0)
    class_names = _class_names(first, labels_for_names)

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [_arrays(d, image_size) for d in datasets["all" if splits is None else kind]]
        images, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if splits is None:
            train, test = holdout_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
            keep = test if kind == "test" else train
            images, labels = images[keep], labels[keep]
        return images, labels

    if not class_names:
        class_names = _class_names(first, read("train", None if fixed_size else 8)[1])
    import torchvision

    extra = "".join(f":{k}={v}" for k, v in sorted((arguments or {}).items()))

    def signature(kind: str) -> str:
        return f"tv:{spec}{extra}:{kind}:{root}:{torchvision.__version__}"

    return Source(name, class_names, read, signature, native_size=native, location=f"torchvision {spec} in "
                  f"{root}", ood_splits=corruption_ood(name))
