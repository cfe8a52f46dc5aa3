"""The model contract every robustft model satisfies.

A ``RobustModel`` takes float images in [0, 1] (N x C x H x W) and normalises inside ``forward``, so attacks
work in pixel space and epsilons mean the same thing for every backbone. ``info`` carries what later code
needs: input size, mean/std, family, and the qualified name of the classification head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn


@dataclass
class ModelInfo:
    """Metadata of a built model.

    Attributes:
        name: the name it was built from (``mobilenet_v2``, ``timm:vit_tiny_patch16_224``, ...).
        family: ``cnn`` or ``vit``; strategies place their modules by family.
        input_size: the image side the model is meant for (it may accept others; see ``min_input_size``).
        mean: per-channel normalisation mean, applied inside forward.
        std: per-channel normalisation std.
        num_classes: size of the fresh head.
        head: qualified name, within the ``RobustModel``, of the classification head module
            (e.g. ``backbone.classifier.1``); always trained by every strategy.
        min_input_size: the smallest image side the architecture accepts.
        extra: free-form metadata (source, pretrained checkpoint, sha256, ...).
    """

    name: str
    family: Literal["cnn", "vit"]
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    head: str
    min_input_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class RobustModel(nn.Module):
    """A classifier on [0, 1] images: ``logits = backbone((x - mean) / std)``.

    Args:
        backbone: the network, taking normalised images and returning logits (N x num_classes).
        info: its metadata; ``info.mean``/``info.std`` become non-trainable buffers.
    """

    def __init__(self, backbone: nn.Module, info: ModelInfo) -> None:
        super().__init__()
        self.backbone = backbone
        self.info = info
        self.register_buffer("mean", torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images, float N x C x H x W in [0, 1]. Returns: logits, N x num_classes."""
        return self.backbone((images - self.mean) / self.std)

    def head_module(self) -> nn.Module:
        """The classification head (``info.head``)."""
        return self.get_submodule(self.info.head)
