"""robustft.data: datasets as in-memory uint8 splits, seeded loaders, augmentations and OOD corruptions.

``load(name, split, ...)`` returns a torch Dataset of (float32 3 x H x W in [0, 1], int label) with ``.info``
(``DatasetInfo``) and ``.labels``; ``make_loader`` batches it with seeded per-epoch shuffling and
``set_epoch``; ``build_augmentation`` builds batch augmentations; ``CORRUPTIONS`` are the OOD corruptions used
by names like ``fashion-mnist@gaussian_noise:3``. ``DATASETS`` lists the sources (``robustft list datasets``).
The papers' datasets have short names: cifar10, cifar100, caltech256, stanford-cars, fgvc-aircraft, imagenette
(through torchvision), cub200, stanford-dogs and domainnet:<domain> (their own readers); a missing one raises
``MissingAssetError`` naming where to get it and the folder under the data root it belongs in.

Environment variables: ``ROBUSTFT_CACHE`` (decoded-array cache, default ~/.cache/robustft/data),
``ROBUSTFT_DATA`` (data root: downloads and the papers' datasets, default ~/.cache/robustft/downloads),
``ROBUSTFT_FASHION_MNIST``, ``ROBUSTFT_MNIST_JSON``, ``ROBUSTFT_ANIMAL_MNIST``, ``ROBUSTFT_ELPV``, ``ROBUSTFT_EMOJI``
(embedded asset locations), ``ROBUSTFT_DOMAINNET`` (the folder holding the six DomainNet domains).
"""

# importing the source modules registers their DATASETS entries
from robustft.data import cub as _cub  # noqa: F401
from robustft.data import domainnet as _domainnet  # noqa: F401
from robustft.data import elpv as _elpv  # noqa: F401
from robustft.data import embedded as _embedded  # noqa: F401
from robustft.data import emoji as _emoji  # noqa: F401
from robustft.data import folders as _folders  # noqa: F401
from robustft.data import hf_source as _hf_source  # noqa: F401
from robustft.data import paper_sets as _paper_sets  # noqa: F401
from robustft.data import stanford_dogs as _stanford_dogs  # noqa: F401
from robustft.data import torchvision_source as _torchvision_source  # noqa: F401
from robustft.data.augment import build_augmentation
from robustft.data.base import DatasetInfo, ImageTensorDataset
from robustft.data.batches import Loader, make_loader
from robustft.data.complexity import probe_cell, probe_keys, task_complexity
from robustft.data.corruptions import CORRUPTIONS, corrupt
from robustft.data.loading import load
from robustft.data.sources import DATASETS, Source


def list_table() -> tuple[list[str], list[list[str]]]:
    """``robustft list datasets``: every source, then the OOD corruption suffix any of them takes.

    The measured complexity columns (class count, then the frozen backbones' linear-probe accuracy per
    ``model@size``) come from the shipped table ``complexity.json``; "-" = not measured.
    """
    keys = probe_keys()
    rows = []
    for entry in DATASETS.entries():
        measured = task_complexity(entry.name)
        rows.append([entry.name, str(measured["classes"]) if measured else "-",
                     *(probe_cell(entry.name, key) for key in keys), entry.description])
    rows.append(["<name>@<corruption>:<1-5>", "", *([""] * len(keys)), "OOD split: the dataset corrupted at a "
                 "severity (chain several @...), corruptions: " + ", ".join(CORRUPTIONS.names())])
    return ["name", "classes", *(f"probe {key}" for key in keys), "description"], rows


__all__ = ["CORRUPTIONS", "DATASETS", "DatasetInfo", "ImageTensorDataset", "Loader", "Source",
           "build_augmentation", "corrupt", "list_table", "load", "make_loader"]
