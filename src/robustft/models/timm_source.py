"""``timm:<name>``: any timm model (optionally with a pretrained tag, e.g. ``timm:resnet50.a1_in1k``).

timm does the heavy lifting (architecture, weight download, checkpoint filtering such as position-embedding
resampling); this module adds the robustft contract: normalisation from the pretrained config, a fresh seeded
head found via ``get_classifier()``, an honest input-size check, and clear errors offline.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustft.errors import ConfigError, MissingAssetError, OfflineError, UnknownNameError
from robustft.models import hub
from robustft.models.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_patch_multiple,
    check_runs_at,
    cnn_min_size,
    detect_family,
    qualified_name,
)
from robustft.models.wrapper import ModelInfo, RobustModel
from robustft.seeding import seeded


def _check_known(name: str) -> None:
    import timm

    if timm.is_model(name):
        return
    arch = name.split(".", 1)[0]
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(f'timm:{c}' for c in close)}?" if close else ""
    raise UnknownNameError(f"timm has no model {arch!r}.{hint} List them with "
                           f"`python -c \"import timm; print(timm.list_models('*{arch[:4]}*'))\"`.")


def _pretrained_cfg(name: str) -> dict[str, Any]:
    import timm

    try:
        cfg = timm.get_pretrained_cfg(name)
    except RuntimeError as error:  # an unknown pretrained tag
        arch = name.split(".", 1)[0]
        tags = timm.list_pretrained(f"{arch}.*")
        raise UnknownNameError(f"{error}. Pretrained tags of {arch}: {', '.join(tags) or 'none'}; "
                               f"use timm:<one of them> or timm:{arch}.") from None
    return cfg.to_dict() if cfg is not None else {}


def _cached_url_file(url: str) -> bool:
    return os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)))


def _source_reachable(cfg: dict[str, Any]) -> bool:
    if cfg.get("hf_hub_id"):
        return hub.hf_hub_reachable()
    if cfg.get("url"):
        return _cached_url_file(cfg["url"]) or (not hub.offline_forced() and hub.reachable(cfg["url"]))
    return False


def _offline_error(name: str, cfg: dict[str, Any]) -> OfflineError:
    return OfflineError(
        f"timm:{name} with pretrained=True needs its weights from the internet "
        f"({cfg.get('hf_hub_id') or cfg.get('url') or 'the hub'}), which is not reachable and not "
        "in the local cache. Connect to the internet once (weights are cached), or pass "
        "pretrained_file=PATH to a local weights file, or use pretrained=False."
    )


def _create(name: str, kwargs: dict[str, Any], pretrained: bool, pretrained_file: Path | None,
            cfg: dict[str, Any]) -> torch.nn.Module:
    import timm

    overlay = None
    if pretrained_file is not None:
        # num_classes=-1 never equals the model's, so timm drops the file's head keys and loads the rest
        # strictly; timm reads the file with torch.load(weights_only=True) (or safetensors).
        overlay = {"file": str(pretrained_file), "num_classes": -1}
        pretrained = True
        online = True
    else:
        online = _source_reachable(cfg) if pretrained else True
        if not online and not cfg.get("hf_hub_id"):
            # a plain URL download has no offline mode to fall back on: fail now rather than hang on it
            raise _offline_error(name, cfg)
    try:
        with hub.hf_offline_mode(not online):
            return timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs)
    except (MissingAssetError, UnknownNameError):
        raise
    except Exception as error:
        if pretrained_file is not None:
            raise ConfigError(f"cannot load pretrained_file={pretrained_file} into timm:{name} "
                              f"({type(error).__name__}: {error}). The file must be a state dict (or a "
                              f"checkpoint with 'state_dict'/'model') of this architecture.") from None
        if pretrained and (not online or hub.looks_like_network_error(error)):
            raise _offline_error(name, cfg) from None
        if pretrained and "pretrained" in str(error).lower():
            raise ConfigError(f"timm:{name} has no pretrained weights ({error}); use pretrained=False, a tagged "
                              "name with weights, or pretrained_file=PATH.") from None
        if isinstance(error, TypeError):
            raise ConfigError(f"timm:{name} rejected its options ({error}); check model_kwargs.") from None
        raise


def build_timm(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
               pretrained_file: str | os.PathLike | None = None,
               model_kwargs: dict[str, Any] | None = None) -> RobustModel:
    """Any timm model: timm:<name>[.<pretrained tag>] (hub weights online, or pretrained_file=PATH offline).

    Args:
        spec: the timm model name, with or without a pretrained tag (``vit_base_patch16_224.augreg_in1k``).
        num_classes: outputs of the fresh head (``get_classifier()``).
        pretrained: load pretrained weights from the hub (cache first); ``False`` gives random weights.
        image_size: input side; ViTs are built for it (position embeddings resampled), CNNs checked against it.
        seed: seeds the fresh head.
        pretrained_file: local weights (``.pth``/``.safetensors``) loaded instead of the hub, head keys skipped
            (when ``pretrained`` is True, the default).
        model_kwargs: extra keyword arguments for ``timm.create_model`` (e.g. ``{"drop_path_rate": 0.1}``).
    """
    _check_known(spec)
    cfg = _pretrained_cfg(spec)
    file = _weights_file(spec, pretrained, pretrained_file, cfg)
    fixed_size = bool(cfg.get("fixed_input_size"))
    kwargs = _create_kwargs(model_kwargs, num_classes, image_size if fixed_size else None)
    backbone = _create(spec, kwargs, pretrained, file, cfg)
    with seeded(seed):
        backbone.reset_classifier(num_classes)
    head = qualified_name(backbone, backbone.get_classifier(), "backbone")
    pretrained_cfg = dict(getattr(backbone, "pretrained_cfg", None) or cfg)
    size, family, patch_size, min_size = _input_geometry(spec, backbone, pretrained_cfg, image_size, fixed_size)
    extra = {"source": "timm", "architecture": spec, "pretrained": pretrained, "seed": seed,
             "pretrained_file": str(file) if file else None, "hf_hub_id": pretrained_cfg.get("hf_hub_id"),
             "patch_size": patch_size}
    info = ModelInfo(f"timm:{spec}", family, size, tuple(pretrained_cfg.get("mean") or IMAGENET_MEAN),
                     tuple(pretrained_cfg.get("std") or IMAGENET_STD), num_classes, head=head,
                     min_input_size=min_size, extra=extra)
    return RobustModel(backbone, info)


def _weights_file(spec: str, pretrained: bool, pretrained_file: str | os.PathLike | None,
                  cfg: dict[str, Any]) -> Path | None:
    """The local weights file to load (None: the hub, or random weights); refuses weights that do not exist."""
    file = None
    # pretrained=False means random weights even with a file (checkpoint rebuilds pass their options again)
    if pretrained_file is not None and pretrained:
        file = Path(pretrained_file)
        if not file.is_file():
            raise MissingAssetError(f"pretrained_file={file} does not exist; pass the path of a weights file "
                                    f"(.pth or .safetensors) for timm:{spec}.")
    if pretrained and file is None and not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
        raise ConfigError(f"timm:{spec} has no pretrained weights; use pretrained=False, a name with a pretrained "
                          f"tag (timm.list_pretrained('{spec.split('.')[0]}*')), or pretrained_file=PATH.")
    return file


def _create_kwargs(model_kwargs: dict[str, Any] | None, num_classes: int, img_size: int | None) -> dict[str, Any]:
    """``timm.create_model`` keywords: the user's, plus the class count and (fixed-size models) the input size."""
    kwargs = dict(model_kwargs or {})
    clashing = sorted({"num_classes", "img_size", "pretrained", "pretrained_cfg_overlay"} & set(kwargs))
    if clashing:
        raise ConfigError(f"model_kwargs must not set {', '.join(clashing)}: pass num_classes, image_size, "
                          "pretrained and pretrained_file to build() instead.")
    kwargs["num_classes"] = num_classes
    if img_size is not None:
        kwargs["img_size"] = img_size
    return kwargs


def _input_geometry(spec: str, backbone: nn.Module, pretrained_cfg: dict[str, Any], image_size: int | None,
                    fixed_size: bool) -> tuple[int, str, int | None, int]:
    """(input size, family, patch size, smallest accepted size), checking that the backbone runs at the size."""
    default_size = int((pretrained_cfg.get("input_size") or (3, 224, 224))[-1])
    size = image_size or default_size
    family = detect_family(backbone)
    patch = getattr(getattr(backbone, "patch_embed", None), "patch_size", None)
    patch_size = int(patch[0]) if isinstance(patch, (tuple, list)) else (int(patch) if patch else None)
    if family == "vit" or fixed_size:
        if patch_size:
            check_patch_multiple(size, patch_size, f"timm:{spec}")
        if size != default_size:
            check_runs_at(backbone, size, f"timm:{spec}", f"It was pretrained at {default_size}x{default_size}; "
                          "use that or a size its windows/patches divide.")
        return size, family, patch_size, size
    return size, family, patch_size, cnn_min_size(f"timm:{spec}", backbone, size, default_size)
