"""``load(name, split, ...)``: one entry point for every dataset source, with hold-out, limit, resize, corruptions.

Steps, identical for every source: validate the arguments; resolve the name (``DATASETS`` entry, a prefixed
pattern such as ``tv:<name>``, and any ``@corruption:severity`` suffixes); read the source's natural train pool or
test split as uint8 (from the on-disk cache after the first time, resized once in a batched pass); hold out the
seeded stratified ``val_fraction`` of the train pool as "val"; take the seeded stratified ``limit``; apply the
corruptions; wrap in an ``ImageTensorDataset``.

Corruption chains: ``"fashion-mnist@gaussian_noise:3@contrast:2"`` applies gaussian_noise at severity 3, then
contrast at severity 2, in the order written. Everything after the first ``@`` is a corruption, so dataset
names (and imagefolder paths) cannot contain ``@``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from collections import OrderedDict

import torch

from robustft.data.base import SPLITS, DatasetInfo, ImageTensorDataset
from robustft.data.cache import cached_arrays
from robustft.data.corruptions import CORRUPTIONS, check_severity
from robustft.data.resize import resize_uint8
from robustft.data.sources import DATASETS, Source, to_nchw_uint8
from robustft.data.splits import holdout_split, stratified_subset
from robustft.errors import ConfigError, UnknownNameError

_CORRUPTION_SPEC = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<severity>[^:]*))?$")
_MEMORY: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
_MEMORY_ENTRIES = 4  # train pool + test of one dataset at two sizes: what one run loads repeatedly
# Enlarged copies above this size are not stored: e.g. CIFAR-10 at 224 px would be 7.5 GB instead of 150 MB.
# Below it (Fashion-MNIST 28 -> 32 px: 61 MB) resizing once beats interpolating every batch.
MAX_STORED_ENLARGED_BYTES = 1 << 30


def parse_name(name: str) -> tuple[str, list[tuple[str, int]]]:
    """``"fashion-mnist@gaussian_noise:3@contrast:2"`` -> ("fashion-mnist", [("gaussian_noise", 3), ("contrast", 2)]).

    Raises:
        ConfigError: empty base name or a corruption without a 1..5 severity.
        UnknownNameError: a corruption name that is not in ``CORRUPTIONS``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"dataset name {name!r} is empty; `robustft list datasets` shows the names.")
    base, *parts = name.strip().split("@")
    if not base:
        raise ConfigError(f"dataset name {name!r} has no dataset before '@': write e.g. fashion-mnist@contrast:3.")

    chain = []
    for part in parts:
        match = _CORRUPTION_SPEC.match(part)
        if not match or match["severity"] is None:
            raise ConfigError(f"{part!r} in {name!r} is not a corruption:severity pair; write it like "
                              f"{base}@gaussian_noise:3 (severity 1..5). "
                              f"Corruptions: {', '.join(CORRUPTIONS.names())}.")
        CORRUPTIONS.get(match["name"])  # unknown -> UnknownNameError with close matches
        chain.append((match["name"], check_severity(match["severity"], f"{match['name']} in {name!r}")))
    return base, chain


def resolve_source(base: str) -> tuple[object, str]:
    """(factory, spec) for a base dataset name: an exact entry, or a ``prefix:<...>`` pattern entry."""
    if base in DATASETS:
        return DATASETS.get(base), base
    if ":" in base:
        prefix, spec = base.split(":", 1)
        for entry in DATASETS.names():
            if entry.startswith(prefix + ":") and "<" in entry:
                if not spec:
                    raise ConfigError(f"dataset {base!r} needs a name after '{prefix}:', as in {entry}.")
                return DATASETS.get(entry), spec
        raise UnknownNameError(f"unknown dataset source prefix {prefix + ':'!r} in {base!r}. "
                               f"Valid dataset names: {', '.join(DATASETS.names())}.")
    raise UnknownNameError(DATASETS.unknown_message(base))


def _check_arguments(split: str, image_size: int | None, limit: int | None, val_fraction: float) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use one of {', '.join(SPLITS)} ('val' is the seeded "
                          "val_fraction held out of the training data).")
    for key, value in (("image_size", image_size), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ConfigError(f"{key}={value!r} must be a positive integer (or None for "
                              f"{'the native size' if key == 'image_size' else 'all samples'}).")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or \
            not math.isfinite(val_fraction) or not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction!r} must be a fraction in [0, 1), e.g. 0.1 (paper A's 10%); "
                          "0 means no validation split.")


def _build_source(factory, spec: str, base: str, root: str | None, download: bool, options: dict) -> Source:
    parameters = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    known = [n for n in parameters if n not in ("spec", "root", "download")]
    unknown = sorted(set(options) - set(known)) if not accepts_any else []
    if unknown:
        raise ConfigError(f"dataset {base!r} does not take option(s) {', '.join(unknown)}; "
                          f"it takes: {', '.join(known) or 'no options'}.")
    return factory(spec, root=root, download=download, **options)


def _remember(key: tuple, build) -> tuple[torch.Tensor, torch.Tensor]:
    if key[0] is not None and key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    value = build()
    if key[0] is not None:
        _MEMORY[key] = value
        while len(_MEMORY) > _MEMORY_ENTRIES:
            _MEMORY.popitem(last=False)
    return value


def _checked(arrays: tuple[torch.Tensor, torch.Tensor], source: Source) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = arrays
    images = to_nchw_uint8(torch.as_tensor(images))
    labels = torch.as_tensor(labels).to(torch.int64).flatten()
    if images.dtype != torch.uint8 or images.shape[1] not in (1, 3) or len(images) != len(labels):
        raise ConfigError(f"dataset {source.name!r} produced {tuple(images.shape)} {images.dtype} images and "
                          f"{len(labels)} labels; expected uint8 N x (1|3) x H x W and N labels.")
    return images, labels


def source_arrays(source: Source, kind: str, image_size: int | None,
                  cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The source's ``kind`` ("train" pool or "test") as (uint8 N x C x S x S, int64 N), cached on disk + memory."""
    signature = source.signature(kind) if cache else None
    if source.native_size is None:
        if image_size is None:
            raise ConfigError(f"the images of {source.name!r} vary in size: give image_size (e.g. 224).")
        return _remember((signature, image_size), lambda: cached_arrays(
            signature, image_size, lambda: _checked(source.read(kind, image_size), source)))

    def native() -> tuple[torch.Tensor, torch.Tensor]:
        return _remember((signature, None), lambda: cached_arrays(
            signature, None, lambda: _checked(source.read(kind, None), source)))

    if image_size is None or image_size == source.native_size:
        return native()
    images, _ = native()
    enlarged_bytes = images.shape[0] * images.shape[1] * image_size * image_size
    if image_size > source.native_size and enlarged_bytes > MAX_STORED_ENLARGED_BYTES:
        return images, _  # enlarged per batch by ImageTensorDataset: storing it would waste memory and disk

    def resized() -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = native()
        return resize_uint8(images, image_size), labels

    return _remember((signature, image_size), lambda: cached_arrays(signature, image_size, resized))


def load(name: str, split: str, image_size: int | None = None, limit: int | None = None, seed: int = 0,
         val_fraction: float = 0.1, root: str | None = None, download: bool = False,
         **options) -> ImageTensorDataset:
    """A dataset split as a torch Dataset: ``ds[i] -> (float32 3 x H x W in [0, 1], int label)``.

    Args:
        name: a ``DATASETS`` name (``robustft list datasets``), optionally followed by corruptions:
            ``"fashion-mnist@gaussian_noise:3"`` (chains apply left to right).
        split: "train" (the train pool minus the validation hold-out), "val" or "test".
        image_size: output height = width (antialiased bilinear); None keeps the native size.
        limit: keep a seeded, stratified subset of at most this many samples.
        seed: seeds the validation hold-out, the limit subset and the corruptions.
        val_fraction: share of the train pool held out as "val" (stratified), in [0, 1).
        root: where the source's files are (each source documents its layout); None = its default location.
        download: allow online sources (and Fashion-MNIST when not installed) to download.
        **options: source-specific options (e.g. ``cache=False``; hf: ``image_column``, ``label_column``).

    Returns:
        An ``ImageTensorDataset`` with ``.info`` (``DatasetInfo``), ``.labels`` (int64 N) and ``.indices``.

    Raises:
        UnknownNameError: unknown dataset or corruption (with close matches).
        ConfigError: bad split, image_size, limit, val_fraction, severity or option.
        MissingAssetError / OfflineError: the data is not on this machine (the message says how to get it).
    """
    _check_arguments(split, image_size, limit, val_fraction)
    image_size, limit = (None if v is None else int(v) for v in (image_size, limit))
    cache = options.pop("cache", True)
    if not isinstance(cache, bool):
        raise ConfigError(f"cache={cache!r} must be true or false (false re-decodes the files every time).")
    base, chain = parse_name(name)
    factory, spec = resolve_source(base)
    source = _build_source(factory, spec, base, root, download, options)
    kind = "test" if split == "test" else "train"
    images, labels = source_arrays(source, kind, image_size, cache=cache)
    indices = torch.arange(len(labels))
    if split != "test":
        kept, held_out = holdout_split(labels, float(val_fraction), seed)
        indices = held_out if split == "val" else kept
    if limit is not None and limit < len(indices):
        indices = indices[stratified_subset(labels[indices], limit, seed)]
    info = DatasetInfo(name=name, split=split, num_classes=len(source.class_names),
                       class_names=list(source.class_names), image_size=int(image_size or images.shape[-1]),
                       channels=3, source=source.location, ood_splits=list(source.ood_splits))
    rows = None if len(indices) == len(labels) else indices  # the whole split (always sorted) needs no index list
    return ImageTensorDataset(images, labels[indices], info, indices, corruptions=chain, seed=seed, rows=rows)
