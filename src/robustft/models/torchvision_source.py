"""``tv:<name>``: torchvision classification models (``tv:resnet50``, ``tv:vit_b_16``, ``tv:convnext_tiny``...).

The architecture is always built without weights, then the pretrained state dict (torchvision's download,
cached under ``torch.hub.get_dir()``, or ``pretrained_file=``) is loaded with ``weights_only=True`` minus the
head; ViT position embeddings are resampled with torchvision's own ``interpolate_embeddings`` when
``image_size`` differs from the pretrained size. One code path for hub and local weights.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.vision_transformer import interpolate_embeddings

from robustft.errors import ConfigError, MissingAssetError, OfflineError, UnknownNameError
from robustft.models import hub
from robustft.models.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_patch_multiple,
    cnn_min_size,
    detect_family,
    fresh_linear_like,
    qualified_name,
    replace_submodule,
)
from robustft.models.wrapper import ModelInfo, RobustModel

PRETRAINED_CLASSES = 1000  # every torchvision classification weight set is ImageNet-1k


def classification_models() -> list[str]:
    """torchvision's classification model names (``tv:`` accepts these)."""
    return torchvision.models.list_models(module=torchvision.models)


def _check_known(name: str) -> None:
    names = classification_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f" Did you mean {', '.join(f'tv:{c}' for c in close)}?" if close else ""
        raise UnknownNameError(f"torchvision has no classification model {name!r}.{hint} "
                               f"Valid tv: names: {', '.join(names)}.")


def _weights_enum(name: str, weights: str) -> Any:
    enum = torchvision.models.get_model_weights(name)
    try:
        return enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise UnknownNameError(f"tv:{name} has no weights {weights!r}; valid: DEFAULT, "
                               f"{', '.join(w.name for w in enum)}.") from None


def _head_of(backbone: nn.Module) -> tuple[str, nn.Module]:
    """The last Linear (or 1x1 conv) producing the 1000 ImageNet logits: torchvision's classifier."""
    found = None
    for name, module in backbone.named_modules():
        if (isinstance(module, nn.Linear) and module.out_features == PRETRAINED_CLASSES) or (
                isinstance(module, nn.Conv2d) and module.out_channels == PRETRAINED_CLASSES):
            found = (name, module)
    if found is None:
        raise ConfigError("cannot find the classification head of this torchvision model; use timm: instead.")
    return found


def _download_state(name: str, weights: Any) -> dict[str, torch.Tensor]:
    url = weights.url
    cached = os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)))
    if not cached and (hub.offline_forced() or not hub.reachable(url)):
        raise OfflineError(
            f"tv:{name} with pretrained=True needs {url} from the internet, which is not reachable and not in the "
            f"torch hub cache ({torch.hub.get_dir()}). Connect once (weights are cached), or pass "
            "pretrained_file=PATH to a local copy, or use pretrained=False."
        )
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception as error:
        if hub.looks_like_network_error(error):
            raise OfflineError(f"downloading {url} for tv:{name} failed ({error}); check the connection or pass "
                               "pretrained_file=PATH.") from None
        raise


def load_local_state(path: Path, name: str = "pretrained_file") -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.pt`` (``weights_only=True``) or ``.safetensors`` file.

    A checkpoint dict holding ``state_dict`` or ``model`` is unwrapped; a leading ``module.`` is dropped. ``name``
    is how errors name the file's setting: the option (``pretrained_file``) or a command-line flag
    (``--pretrained-file``), so a command's user reads the flag they typed.
    """
    given = f"{name} {path}" if name.startswith("--") else f"{name}={path}"
    if not path.is_file():
        raise MissingAssetError(f"{given} does not exist; pass the path of a weights file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch and safetensors raise many types for a bad file
        raise ConfigError(f"cannot read {given} ({type(error).__name__}: {error}); it must be a "
                          "state dict saved with torch.save (tensors only) or a .safetensors file.") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"{given} holds a {type(state).__name__}, not a state dict.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_except_head(backbone: nn.Module, state: dict[str, torch.Tensor], head: str | None, origin: str) -> None:
    """Loads ``state`` into ``backbone`` strictly except for the ``head`` module's keys (skipped; None: keep all).

    Raises:
        ConfigError: missing or unexpected keys outside the head, or tensors of the wrong shape.
    """
    prefix = f"{head}." if head else "\0"
    state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    try:
        result = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even with strict=False
        raise ConfigError(f"{origin} does not match the architecture ({str(error).strip()[:300]}). "
                          "Use weights saved from the same model.") from None
    missing = [k for k in result.missing_keys if not k.startswith(prefix)]
    if missing or result.unexpected_keys:
        raise ConfigError(f"{origin} does not match the architecture: missing {missing[:5]}, unexpected "
                          f"{result.unexpected_keys[:5]}. Use weights saved from the same model.")


def _create(spec: str, size: int) -> nn.Module:
    """The architecture with random weights; torchvision ViTs are built for ``size`` (their constructor asserts
    that the patch divides it, so that is checked first, with a useful message)."""
    kwargs: dict[str, Any] = {}
    named_patch = re.fullmatch(r"vit_[a-z]_(\d+)", spec)
    if named_patch:
        check_patch_multiple(size, int(named_patch[1]), f"tv:{spec}")
        kwargs["image_size"] = size
    return torchvision.models.get_model(spec, weights=None, **kwargs)


def _load_pretrained(backbone: nn.Module, spec: str, weight_set: Any, file: Path | None, size: int,
                     head_name: str | None) -> None:
    """Loads the local file or the downloaded weight set, position embeddings resampled to ``size`` for ViTs,
    except the head ``head_name`` (None: keep every key, the ImageNet head included)."""
    state = load_local_state(file) if file is not None else _download_state(spec, weight_set)
    position = state.get("encoder.pos_embedding")
    patch_size = getattr(backbone, "patch_size", None)
    if patch_size and position is not None and position.shape != backbone.encoder.pos_embedding.shape:
        state = interpolate_embeddings(size, patch_size, state)
    origin = f"pretrained_file={file}" if file else f"tv:{spec} weights {weight_set.name}"
    load_except_head(backbone, state, head_name, origin)


def build_torchvision(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
                      weights: str = "DEFAULT", pretrained_file: str | os.PathLike | None = None,
                      keep_imagenet_head: bool = False) -> RobustModel:
    """torchvision classification models: tv:<name> (ImageNet weights online or pretrained_file=PATH).

    Args:
        spec: a torchvision classification model name (``resnet50``, ``vit_b_16``...).
        num_classes: outputs of the fresh head (torchvision's last classifier layer).
        pretrained: load ImageNet weights (``weights`` names which set).
        image_size: input side (default: the weights' size, 224 for most).
        seed: seeds the fresh head.
        weights: torchvision weight-set name (``DEFAULT``, ``IMAGENET1K_V2``...).
        pretrained_file: local weights of the same architecture, loaded instead of the download (when
            ``pretrained`` is True, the default).
        keep_imagenet_head: keep the pretrained 1000-way classifier (num_classes must be 1000).
    """
    _check_known(spec)
    weight_set = _weights_enum(spec, weights)
    if keep_imagenet_head and num_classes != PRETRAINED_CLASSES:
        raise ConfigError("keep_imagenet_head=True keeps the 1000 ImageNet classes: use num_classes=1000, or drop "
                          "keep_imagenet_head to get a fresh head.")
    default_size = int(weight_set.meta.get("min_size", (224, 224))[0]) if spec.startswith("vit_") else 224
    size = image_size or default_size
    backbone = _create(spec, size)
    head_name, head_module = _head_of(backbone)
    patch_size = getattr(backbone, "patch_size", None)
    if patch_size:
        check_patch_multiple(size, patch_size, f"tv:{spec}")
    # pretrained=False means random weights even with a file (checkpoint rebuilds pass their options again)
    file = Path(pretrained_file) if pretrained_file is not None and pretrained else None
    if pretrained:
        _load_pretrained(backbone, spec, weight_set, file, size, None if keep_imagenet_head else head_name)
    if not keep_imagenet_head:
        replace_submodule(backbone, head_name, fresh_linear_like(head_module, num_classes, seed))
    head = qualified_name(backbone, backbone.get_submodule(head_name), "backbone")

    family = detect_family(backbone)
    if family == "vit" and patch_size:
        min_size = size
    else:
        min_size = cnn_min_size(f"tv:{spec}", backbone, size, default_size)
    transforms = weight_set.transforms()
    extra = {"source": "torchvision", "architecture": spec, "pretrained": pretrained,
             "weights": weight_set.name if pretrained and file is None else None, "seed": seed,
             "pretrained_file": str(file) if file else None, "patch_size": patch_size,
             "fresh_head": not keep_imagenet_head}
    info = ModelInfo(f"tv:{spec}", family, size, tuple(getattr(transforms, "mean", IMAGENET_MEAN)),
                     tuple(getattr(transforms, "std", IMAGENET_STD)), num_classes, head=head,
                     min_input_size=min_size, extra=extra)
    return RobustModel(backbone, info)
