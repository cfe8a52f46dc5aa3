"""On-disk cache of decoded (and resized) uint8 arrays, so a dataset is decoded once per machine.

Location: ``$ROBUSTFT_CACHE`` if set, else ``~/.cache/robustft/data``. A cache entry is keyed by the
source's signature (its files' absolute paths, sizes and modification times, or a content description) plus the
image size, so replacing a source file invalidates it. Writes are atomic (temporary file + rename): concurrent
runs of a sweep never read a half-written array. An unwritable cache directory only costs speed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = "1"


def cache_dir() -> Path:
    """The cache directory (``$ROBUSTFT_CACHE`` or ``~/.cache/robustft/data``)."""
    env = os.environ.get("ROBUSTFT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustft" / "data"


def files_signature(paths: Iterable[str | os.PathLike]) -> str:
    """A string identifying files by absolute path, size and modification time (no full read needed)."""
    parts = []
    for path in paths:
        stat = Path(path).stat()
        parts.append(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _key(signature: str, size: int | None) -> str:
    return hashlib.sha256(f"{FORMAT_VERSION}|{signature}|{size}".encode()).hexdigest()[:24]


def cached_arrays(signature: str | None, size: int | None,
                  build: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 N x C x H x W, labels int64 N) from the cache, or ``build()`` them and store them.

    Args:
        signature: identifies the source content; None disables caching for this source.
        size: the image size the arrays were resized to (None = native).
        build: decodes (and resizes) the arrays on a cache miss.
    """
    if signature is None:
        return build()
    base = cache_dir() / _key(signature, size)
    images_path, labels_path = base.with_suffix(".images.npy"), base.with_suffix(".labels.npy")
    if images_path.exists() and labels_path.exists():
        try:
            images = torch.from_numpy(np.load(images_path, allow_pickle=False))
            labels = torch.from_numpy(np.load(labels_path, allow_pickle=False))
            if images.dtype == torch.uint8 and images.ndim == 4 and labels.shape == (images.shape[0],):
                return images, labels.to(torch.int64)
        except (OSError, ValueError):
            pass  # a damaged entry is rebuilt below
    images, labels = build()
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(labels_path, labels.numpy())
        _atomic_save(images_path, images.numpy())
    except OSError as error:
        warnings.warn(f"robustft could not write its data cache in {base.parent} ({error}); set ROBUSTFT_CACHE "
                      "to a writable directory to make later loads faster.", stacklevel=2)
    return images, labels


def _atomic_save(path: Path, array: np.ndarray) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
