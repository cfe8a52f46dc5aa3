"""The ``DATASETS`` registry and the ``Source`` every entry builds.

A registry entry is a factory ``factory(spec, root, download, **options) -> Source``; ``spec`` is the part of
the name after the prefix for pattern entries (``tv:<name>`` gets "CIFAR10"), else the name itself. A Source
reads its natural "train" pool and "test" split as uint8 arrays; ``load`` does the rest (validation hold-out,
limit, resizing, caching, corruptions) the same way for every source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from robustft.registry import Registry

# read(kind, image_size) -> (uint8 N x C x H x W, int64 N); kind is "train" or "test". Fixed-size sources may
# ignore image_size (load resizes in one batched pass); variable-size sources must resize each image to it.
Reader = Callable[[str, "int | None"], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Source:
    """A dataset's two natural splits and what describes them.

    Attributes:
        name: canonical name (``info.name`` without a corruption suffix).
        class_names: one per label 0 .. K-1.
        read: the reader (see ``Reader``).
        signature: ``signature(kind)`` identifies the content for the cache; None = do not cache.
        native_size: the images' own size (None when images vary in size: ``image_size`` is then required).
        location: where the data lives, for messages and ``info.source``.
        ood_splits: suggested OOD split names.
    """

    name: str
    class_names: list[str]
    read: Reader
    signature: Callable[[str], str | None] = lambda kind: None
    native_size: int | None = None
    location: str = ""
    ood_splits: list[str] = field(default_factory=list)


Factory = Callable[..., Source]
DATASETS: Registry[Factory] = Registry("dataset")


def corruption_ood(name: str, corruptions: tuple[str, ...] = ("gaussian_noise", "contrast", "gaussian_blur",
                                                              "fog", "jpeg")) -> list[str]:
    """Default suggested OOD splits: a few corruptions of the dataset itself at severity 3."""
    return [f"{name}@{c}:3" for c in corruptions]


def to_nchw_uint8(images: torch.Tensor) -> torch.Tensor:
    """N x H x W or N x H x W x C (C in 1, 3) or N x C x H x W -> contiguous uint8 N x C x H x W."""
    if images.ndim == 3:
        return images.unsqueeze(1).contiguous()
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        return images.permute(0, 3, 1, 2).contiguous()
    return images.contiguous()
