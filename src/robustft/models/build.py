"""``build(name, num_classes)``: one entry point for every backbone source, and the ``MODELS`` registry.

Exact names (``mobilenet_v2``, ``vit_small_dinov2``, ``tiny-cnn``, ``tiny-vit``) map to their builder; prefixed names
(``timm:<name>``, ``tv:<name>``, ``hf:<repo id>``) map to the builder registered under the prefix pattern.
Every builder has the signature ``(spec, num_classes, pretrained, image_size, seed, **its options)`` and returns
a ``RobustModel`` with a fresh, seeded head.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from robustft.errors import ConfigError, UnknownNameError
from robustft.models.backbone import check_image_size_value, check_min_size, check_patch_multiple
from robustft.models.embedded import build_mobilenet_v2
from robustft.models.embedded_vit import build_vit_small_dinov2
from robustft.models.hf_source import build_huggingface
from robustft.models.timm_source import build_timm
from robustft.models.tiny import tiny_cnn, tiny_vit
from robustft.models.torchvision_source import build_torchvision, classification_models
from robustft.models.wrapper import RobustModel
from robustft.registry import Registry

Builder = Callable[..., RobustModel]
MODELS: Registry[Builder] = Registry("model")

# prefix -> the registry entry that builds every name with it
PREFIXES = {"timm:": "timm:<name>", "tv:": "tv:<name>", "hf:": "hf:<repo id>"}
_BUILDER_ARGS = ("spec", "num_classes", "pretrained", "image_size", "seed")


def build_tiny_cnn(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
                   width: int = 16, in_channels: int = 3) -> RobustModel:
    """A ~5k-parameter random CNN with BatchNorm, for tests and smoke runs (no pretrained weights exist)."""
    model = tiny_cnn(num_classes=num_classes, in_channels=in_channels, width=width, seed=seed)
    if image_size is not None:
        check_min_size(image_size, model.info.min_input_size, spec)
        model.info.input_size = image_size
    model.info.extra.update(source="tiny", pretrained=False, seed=seed)
    return model


def build_tiny_vit(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
                   patch_size: int = 8, embed_dim: int = 32, depth: int = 2, num_heads: int = 2) -> RobustModel:
    """A few-thousand-parameter random timm ViT, for tests and smoke runs (no pretrained weights exist)."""
    size = 32 if image_size is None else image_size
    check_patch_multiple(size, patch_size, spec)
    model = tiny_vit(num_classes=num_classes, image_size=size, patch_size=patch_size, embed_dim=embed_dim,
                     depth=depth, num_heads=num_heads, seed=seed)
    model.info.extra.update(source="tiny", pretrained=False, seed=seed, patch_size=patch_size)
    return model


MODELS.add("mobilenet_v2", build_mobilenet_v2)
MODELS.add("vit_small_dinov2", build_vit_small_dinov2)
MODELS.add("tiny-cnn", build_tiny_cnn)
MODELS.add("tiny-vit", build_tiny_vit)
MODELS.add("timm:<name>", build_timm)
MODELS.add("tv:<name>", build_torchvision)
MODELS.add("hf:<repo id>", build_huggingface)


def _resolve(name: str) -> tuple[Builder, str]:
    """(builder, spec) for a model name; UnknownNameError with close matches when nothing fits."""
    if not isinstance(name, str) or not name:
        raise UnknownNameError(f"a model name must be a non-empty string, got {name!r}. "
                               f"Valid names: {', '.join(MODELS.names())}.")
    for prefix, entry in PREFIXES.items():
        if name.startswith(prefix):
            spec = name[len(prefix):]
            if not spec or spec.startswith("<"):
                example = "hf:google/vit-base-patch16-224-in21k" if prefix == "hf:" else f"{prefix}resnet50"
                raise UnknownNameError(f"{name!r} needs a model after {prefix!r}, e.g. {example}.")
            return MODELS.get(entry), spec
    if name in MODELS:
        return MODELS.get(name), name
    suggestions = _prefixed_suggestions(name)
    if suggestions:
        raise UnknownNameError(f"unknown model {name!r}: it exists as {' and '.join(suggestions)}; use the prefixed "
                               f"name. Valid model names: {', '.join(MODELS.names())}.")
    raise UnknownNameError(MODELS.unknown_message(name))


def _prefixed_suggestions(name: str) -> list[str]:
    found = []
    try:
        import timm

        if timm.is_model(name):
            found.append(f"timm:{name}")
    except ImportError:
        pass

    if name in classification_models():
        found.append(f"tv:{name}")
    return found


def options_of(builder: Builder) -> list[str]:
    """The keyword options a builder accepts beyond the common arguments."""
    return [p for p in inspect.signature(builder).parameters if p not in _BUILDER_ARGS]


def build(name: str, num_classes: int, pretrained: bool = True, image_size: int | None = None,
          **options: Any) -> RobustModel:
    """Builds a classifier on [0, 1] images with a fresh head.

    Args:
        name: ``mobilenet_v2`` or ``vit_small_dinov2`` (embedded, offline), ``tiny-cnn``, ``tiny-vit``,
            ``timm:<name>``, ``tv:<name>`` or ``hf:<repo id>``.
        num_classes: number of outputs of the fresh classification head (>= 1).
        pretrained: load pretrained weights (embedded, hub/cache, or ``pretrained_file=``).
        image_size: the input side the model is built and checked for (None: the model's native size).
        **options: ``seed`` (int, default 0: seeds the fresh head) and the source's own options
            (``weights_file``/``keep_imagenet_head`` for mobilenet_v2; ``onnx_file`` for vit_small_dinov2;
            ``pretrained_file``/``model_kwargs`` for timm; ``weights``/``pretrained_file``/``keep_imagenet_head``
            for tv; ``config``/``revision`` for hf).

    Returns:
        A ``RobustModel``: forward takes float N x C x H x W in [0, 1], returns N x num_classes logits;
        ``info`` holds input size, mean/std, family, head name and ``extra`` (source, checkpoint, sha256...).

    Raises:
        UnknownNameError: unknown model name or option (close matches listed).
        ConfigError: bad num_classes, image_size or option value.
        MissingAssetError, ChecksumError, OfflineError: weights not installed, tampered, or not downloadable.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer (the dataset's class count), got {num_classes!r}.")
    check_image_size_value(image_size)
    if not isinstance(pretrained, bool):
        raise ConfigError(f"pretrained must be true or false, got {pretrained!r}.")
    seed = options.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}.")
    builder, spec = _resolve(name)
    valid = options_of(builder)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownNameError(f"model {name!r} has no option(s) {', '.join(unknown)}. "
                               f"Valid options: seed, {', '.join(valid) or '(none)'}.")
    return builder(spec, num_classes, pretrained, image_size, seed, **options)
