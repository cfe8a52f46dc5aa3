"""Helpers every model source shares: seeded head creation, head lookup, family detection, input-size checks.

Written here rather than borrowed because they bridge three libraries (torchvision, timm, transformers) whose
own conventions differ: where the head lives, how attention is spelled, which input sizes a network takes.
"""

from __future__ import annotations

import torch
from torch import nn

from robustft.errors import ConfigError
from robustft.seeding import seeded

# torchvision's ImageNet normalisation, also the default of most timm CNNs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def qualified_name(root: nn.Module, target: nn.Module, prefix: str = "") -> str:
    """The dotted name of ``target`` inside ``root`` (found by identity), with ``prefix`` prepended."""
    for name, module in root.named_modules():
        if module is target:
            return ".".join(part for part in (prefix, name) if part)
    raise ValueError(f"{type(target).__name__} is not a submodule of {type(root).__name__}")


def replace_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    """Sets the submodule at dotted ``name`` (relative to ``root``) to ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def fresh_linear_like(old: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """A new, seeded classification layer with the input width of ``old`` and ``num_classes`` outputs.

    ``old`` is a ``Linear`` (almost every network) or a 1x1 ``Conv2d`` (SqueezeNet-style heads).
    """
    with seeded(seed):
        if isinstance(old, nn.Linear):
            return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        if isinstance(old, nn.Conv2d) and old.kernel_size == (1, 1):
            return nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    raise ConfigError(f"cannot replace a classification head of type {type(old).__name__}; "
                      "use a model whose head is a Linear layer.")


def is_attention(module: nn.Module) -> bool:
    """True for a self-attention block: torch MultiheadAttention, or a class named *Attention with q/k/v layers."""
    if isinstance(module, nn.MultiheadAttention):
        return True
    if not type(module).__name__.lower().endswith("attention"):
        return False
    return any(hasattr(module, attr) for attr in ("qkv", "q", "q_proj", "query", "in_proj_weight"))


def detect_family(backbone: nn.Module) -> str:
    """``vit`` when the network mixes tokens by self-attention, else ``cnn``."""
    return "vit" if any(is_attention(m) for m in backbone.modules()) else "cnn"


def _accepts(backbone: nn.Module, size: int, channels: int) -> bool:
    try:
        backbone(torch.zeros(1, channels, size, size))
    except Exception:  # noqa: BLE001 - any failure (shape assertion, empty feature map) means "not accepted"
        return False
    return True


def smallest_accepted_size(backbone: nn.Module, upper: int, channels: int = 3) -> int:
    """The smallest square input side in [1, upper] the backbone runs on (binary search, eval mode, no grad).

    Args:
        backbone: a network taking normalised N x channels x H x W images.
        upper: a size known to work (the model's input size).
    Returns:
        The smallest side that runs; ``upper`` if nothing smaller does.
    """
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            low, high = 1, upper  # invariant: ``high`` is accepted
            if _accepts(backbone, low, channels):
                return low
            while high - low > 1:
                middle = (low + high) // 2
                if _accepts(backbone, middle, channels):
                    high = middle
                else:
                    low = middle
            return high
    finally:
        backbone.train(was_training)


def check_runs_at(backbone: nn.Module, size: int, model_name: str, hint: str, channels: int = 3) -> None:
    """Raises ConfigError if the backbone cannot take ``size`` x ``size`` inputs (one eval-mode forward, no grad)."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            ok = _accepts(backbone, size, channels)
    finally:
        backbone.train(was_training)
    if not ok:
        raise ConfigError(f"model {model_name!r} cannot take {size}x{size} images. {hint}")


def check_patch_multiple(image_size: int, patch_size: int, model_name: str) -> None:
    """A ViT's image side must be a positive multiple of its patch size; else ConfigError naming valid sizes."""
    if image_size < patch_size or image_size % patch_size:
        below = max(patch_size, image_size // patch_size * patch_size)
        raise ConfigError(
            f"image_size={image_size} does not suit {model_name!r}: a ViT with {patch_size}px patches takes "
            f"multiples of {patch_size} (e.g. {below} or {below + patch_size}); set image_size to one of them."
        )


def check_min_size(image_size: int, min_size: int, model_name: str) -> None:
    """ConfigError when ``image_size`` is below what the network accepts."""
    if image_size < min_size:
        raise ConfigError(
            f"image_size={image_size} is too small for {model_name!r}: it accepts images of at least "
            f"{min_size}x{min_size} pixels; set image_size >= {min_size} (datasets are resized to it)."
        )


# Probing costs a few forward passes; the answer depends only on the architecture, so it is kept per name.
_MIN_SIZE_CACHE: dict[str, int] = {}


def cnn_min_size(name: str, backbone: nn.Module, image_size: int, default_size: int) -> int:
    """The smallest input side ``backbone`` accepts (probed once per ``name``), after checking ``image_size``.

    Raises:
        ConfigError: ``image_size`` is below it (the message names the smallest valid size).
    """
    if name not in _MIN_SIZE_CACHE:
        _MIN_SIZE_CACHE[name] = smallest_accepted_size(backbone, max(image_size, default_size))
    check_min_size(image_size, _MIN_SIZE_CACHE[name], name)
    return _MIN_SIZE_CACHE[name]


def check_image_size_value(image_size: int | None) -> None:
    """Rejects non-integer or non-positive image sizes early, before any model is built."""
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ConfigError(f"image_size must be a positive integer number of pixels (e.g. 32 or 224), "
                          f"got {image_size!r}.")
