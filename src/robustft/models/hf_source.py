"""``hf:<repo id>``: Hugging Face transformers image classifiers (ViT and kin), e.g. paper A's
``hf:google/vit-base-patch16-224-in21k``.

transformers builds the model (``AutoModelForImageClassification``, a fresh classifier with ``num_labels``);
``LogitsOnly`` makes it return a plain logits tensor like every other robustft backbone. Normalisation comes
from the repo's image-processor config (``image_mean``/``image_std``) when it can be read, else 0.5/0.5
(what paper A used). Offline, files already in the Hugging Face cache still work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustft.errors import ConfigError, MissingAssetError, OfflineError
from robustft.models import hub
from robustft.models.backbone import check_patch_multiple, detect_family, fresh_linear_like, qualified_name
from robustft.models.wrapper import ModelInfo, RobustModel

HALF = (0.5, 0.5, 0.5)


class LogitsOnly(nn.Module):
    """Wraps a transformers image classifier so ``forward(pixel_values) -> logits`` (N x num_classes).

    Args:
        model: a ``*ForImageClassification`` model.
        interpolate_pos_encoding: resample position embeddings on the fly (inputs at a non-pretrained size).
    """

    def __init__(self, model: nn.Module, interpolate_pos_encoding: bool = False) -> None:
        super().__init__()
        self.model = model
        self.interpolate_pos_encoding = interpolate_pos_encoding

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate_pos_encoding else {}
        return self.model(pixel_values=pixel_values, **kwargs).logits


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingAssetError("hf: models need the transformers library: pip install 'robustft[hf]' "
                                "(or pip install transformers).") from None
    return transformers


def _offline_error(repo: str, what: str) -> OfflineError:
    return OfflineError(
        f"hf:{repo} needs its {what} from the Hugging Face hub, which is not reachable and not in the local "
        "cache. Connect to the internet once (files are cached), or set pretrained=False with config={...} "
        "(a transformers config dict), or use timm:/tv: with pretrained_file=PATH."
    )


def _normalisation(repo: str, online: bool, revision: str | None) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """mean/std from the repo's (or local folder's) preprocessor_config.json, else 0.5/0.5 (paper A)."""
    try:
        if Path(repo).is_dir():
            path = str(Path(repo) / "preprocessor_config.json")
        else:
            from huggingface_hub import hf_hub_download

            with hub.hf_offline_mode(not online):
                path = hf_hub_download(repo, "preprocessor_config.json", revision=revision)
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        return tuple(config["image_mean"]), tuple(config["image_std"]), "preprocessor_config.json"
    except Exception:  # noqa: BLE001 - no processor config (or offline): paper A's convention
        return HALF, HALF, "default 0.5/0.5"


def _create(spec: str, num_classes: int, pretrained: bool, config: dict[str, Any] | None, revision: str | None,
            needs_hub: bool, online: bool) -> tuple[nn.Module, Any]:
    """(transformers image classifier with ``num_classes`` labels, its config); offline or unbuildable -> an error
    naming the fix."""
    transformers = _transformers()
    try:
        with hub.hf_offline_mode(not online):
            if config is not None:
                options = dict(config)
                hf_config = transformers.AutoConfig.for_model(options.pop("model_type", "vit"), **options)
            else:
                hf_config = transformers.AutoConfig.from_pretrained(spec, revision=revision)
            hf_config.num_labels = num_classes
            if pretrained:
                model = transformers.AutoModelForImageClassification.from_pretrained(
                    spec, config=hf_config, revision=revision, ignore_mismatched_sizes=True)
            else:
                model = transformers.AutoModelForImageClassification.from_config(hf_config)
    except (ConfigError, MissingAssetError):
        raise
    except Exception as error:  # noqa: BLE001 - the hub raises many types; each becomes one message
        if needs_hub and (not online or hub.looks_like_network_error(error)):
            raise _offline_error(spec, "weights" if pretrained else "config") from None
        raise ConfigError(f"transformers cannot build hf:{spec} as an image classifier "
                          f"({type(error).__name__}: {error}). Use a repo with an image-classification "
                          "architecture (e.g. google/vit-base-patch16-224-in21k).") from None
    return model, hf_config


def _fresh_classifier(model: nn.Module, spec: str, num_classes: int, seed: int) -> nn.Linear:
    """Replaces the model's Linear ``classifier`` with a fresh, seeded one; returns the new layer."""
    old = getattr(model, "classifier", None)
    if not isinstance(old, nn.Linear):
        raise ConfigError(f"hf:{spec} has no Linear `classifier` head (found {type(old).__name__}); robustft's hf: "
                          "source supports ViT-style image classifiers.")
    classifier_name = qualified_name(model, old)
    new = fresh_linear_like(old, num_classes, seed)
    parent, _, child = classifier_name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
    return new


def build_huggingface(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
                      config: dict[str, Any] | None = None, revision: str | None = None) -> RobustModel:
    """Hugging Face image models: hf:<repo id> (e.g. google/vit-base-patch16-224-in21k), via transformers.

    Args:
        spec: the hub repo id, a local ``save_pretrained`` folder, or any label when ``config`` is given.
        num_classes: outputs of the fresh classifier.
        pretrained: download (or read from cache) the repo's weights.
        image_size: input side; other than the config's size, position embeddings are interpolated.
        seed: seeds the fresh classifier.
        config: a transformers config as a dict (``model_type`` defaults to ``vit``), used instead of the
            repo's (random weights; for tests and custom shapes), only with ``pretrained=False``.
        revision: a repo branch/tag/commit to pin.
    """
    if config is not None and pretrained:
        raise ConfigError("config= builds a randomly initialised model; pass pretrained=False with it.")
    # a save_pretrained() folder or an explicit config needs no hub
    needs_hub = config is None and not Path(spec).is_dir()
    online = hub.hf_hub_reachable() if needs_hub else True
    model, hf_config = _create(spec, num_classes, pretrained, config, revision, needs_hub, online)
    new = _fresh_classifier(model, spec, num_classes, seed)
    native_size = int(getattr(hf_config, "image_size", 224))
    size = image_size or native_size
    patch_size = getattr(hf_config, "patch_size", None)
    if patch_size:
        check_patch_multiple(size, int(patch_size), f"hf:{spec}")
    backbone = LogitsOnly(model, interpolate_pos_encoding=size != native_size)
    if config is None:
        mean, std, norm_source = _normalisation(spec, online, revision)
    else:
        mean, std, norm_source = HALF, HALF, "default 0.5/0.5"
    family = detect_family(backbone)
    extra = {"source": "huggingface", "repo": spec, "revision": revision, "pretrained": pretrained, "seed": seed,
             "patch_size": patch_size, "normalisation_from": norm_source, "config": config}
    info = ModelInfo(f"hf:{spec}", family, size, mean, std, num_classes,
                     head=qualified_name(backbone, new, "backbone"),
                     min_input_size=size, extra=extra)
    return RobustModel(backbone, info)
