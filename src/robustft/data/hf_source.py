"""``hf:<dataset id>``: Hugging Face ``datasets`` image classification datasets (``pip install 'robustft[hf]'``).

``hf:cifar10``, ``hf:uoft-cs/cifar100`` (options: ``config`` = the dataset's configuration name,
``image_column`` / ``label_column`` (default: the first Image / ClassLabel feature, else "image"/"img" and
"label"/"labels"/"fine_label"), ``train_split`` (default "train"), ``test_split`` (default "test", else
"validation"; with neither, a fixed stratified 20% of train). A local folder written by ``save_to_disk`` works
too: ``hf:/path/to/folder``. Without ``download=True`` nothing is fetched: the dataset must already be in the
Hugging Face cache (``root`` = its ``cache_dir``). Images are decoded once, fitted to ``image_size`` (shorter
side + centre crop) and cached by the dataset's fingerprint.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from robustft.data.embedded import HOLDOUT_FRACTION, HOLDOUT_SEED
from robustft.data.resize import pil_to_uint8
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.data.splits import holdout_split
from robustft.errors import ConfigError, MissingAssetError, OfflineError


def _datasets_module() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingAssetError("hf:<dataset id> needs the Hugging Face `datasets` library: "
                                "pip install 'robustft[hf]' (or pip install datasets).") from None
    return datasets


@contextlib.contextmanager
def _offline(enabled: bool, datasets: Any) -> Iterator[None]:
    """Forbids hub access while loading (the libraries read these flags at call time through their config)."""
    if not enabled:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    config = getattr(datasets, "config", None)
    saved_config = {k: getattr(config, k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if hasattr(config, k)}
    os.environ.update({k: "1" for k in saved_env})
    for key in saved_config:
        setattr(config, key, True)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for key, value in saved_config.items():
            setattr(config, key, value)


def _load_all(datasets: Any, spec: str, config: str | None, root: str | None, download: bool) -> Any:
    local = Path(spec).expanduser()
    try:
        if local.is_dir():
            return datasets.load_from_disk(str(local))
        with _offline(not download, datasets):
            return datasets.load_dataset(spec, name=config, cache_dir=root)
    except Exception as error:  # noqa: BLE001 - the library raises many types; each becomes one clear message
        if download:
            raise OfflineError(f"loading hf:{spec} failed ({type(error).__name__}: {error}). Downloading needs the "
                               "internet; check the dataset id (and config=) on huggingface.co.") from None
        raise MissingAssetError(f"hf:{spec} is not in the local Hugging Face cache ({type(error).__name__}: {error}). "
                                "Pass download=True (--data.download true or data.download=true) to fetch it, "
                                "or check the id and config=.") from None


def _pick(features: dict, wanted: str | None, type_name: str, fallbacks: tuple[str, ...], what: str) -> str:
    if wanted is not None:
        if wanted not in features:
            raise ConfigError(f"{what}={wanted!r} is not a column; columns: {', '.join(features)}.")
        return wanted
    typed = [n for n, f in features.items() if type(f).__name__ == type_name]
    named = [n for n in fallbacks if n in features]
    if typed or named:
        return (typed or named)[0]
    raise ConfigError(f"cannot tell the {what.replace('_', ' ')} among columns {', '.join(features)}; "
                      f"pass {what}=<column>.")


@DATASETS.register("hf:<dataset id>")
def huggingface(spec: str, root: str | None = None, download: bool = False, config: str | None = None,
                image_column: str | None = None, label_column: str | None = None, train_split: str = "train",
                test_split: str | None = None) -> Source:
    """Hugging Face datasets (hf:cifar10, hf:<save_to_disk folder>); options image_column, label_column, config."""
    datasets = _datasets_module()
    splits = _load_all(datasets, spec, config, root, download)
    available = list(splits.keys()) if hasattr(splits, "keys") else []
    if train_split not in available:
        raise ConfigError(f"hf:{spec} has no split {train_split!r} (it has {', '.join(available) or 'none'}); "
                          "pass train_split=<name>.")
    if test_split is None:
        test_split = next((s for s in ("test", "validation", "valid", "val") if s in available), None)
    elif test_split not in available:
        raise ConfigError(f"hf:{spec} has no split {test_split!r} (it has {', '.join(available)}).")
    train = splits[train_split]
    features = dict(train.features)
    image_key = _pick(features, image_column, "Image", ("image", "img", "picture"), "image_column")
    label_key = _pick(features, label_column, "ClassLabel", ("label", "labels", "fine_label", "target"),
                      "label_column")
    names = getattr(features[label_key], "names", None)

    def decode(part: Any, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if image_size is None:
            raise ConfigError(f"hf:{spec} images may vary in size: give image_size (e.g. 224).")
        images = torch.empty((len(part), 3, image_size, image_size), dtype=torch.uint8)
        labels = torch.empty(len(part), dtype=torch.int64)
        for i, row in enumerate(part):
            images[i] = pil_to_uint8(row[image_key], image_size)
            labels[i] = int(row[label_key])
        return images, labels

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if test_split is not None:
            return decode(splits[test_split if kind == "test" else train_split], image_size)
        images, labels = decode(train, image_size)
        kept, held = holdout_split(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
        keep = held if kind == "test" else kept
        return images[keep], labels[keep]

    def signature(kind: str) -> str | None:
        part = splits[test_split if (kind == "test" and test_split) else train_split]
        fingerprint = getattr(part, "_fingerprint", None)
        return None if fingerprint is None else f"hf:{spec}:{config}:{kind}:{test_split}:{image_key}:{label_key}:" \
                                                f"{fingerprint}"

    if names is None:
        labels = [int(v) for v in train[label_key]]
        names = [str(i) for i in range(max(labels) + 1 if labels else 0)]
    return Source(f"hf:{spec}", [str(n) for n in names], read, signature, native_size=None,
                  location=f"Hugging Face dataset {spec}", ood_splits=corruption_ood(f"hf:{spec}"))
