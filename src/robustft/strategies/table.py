"""``robustft list strategies``: each strategy's axes and trainable share on the default backbone (and ViT-B/16).

Counting needs the module structure, not the weights, so the models are built on torch's ``meta`` device: no
memory is allocated and ViT-B/16 costs milliseconds to adapt.
"""

from __future__ import annotations

import copy
import functools

import torch

from robustft.errors import RobustftError
from robustft.models import build
from robustft.models.wrapper import ModelInfo, RobustModel
from robustft.strategies.adapt import apply, resolve_name
from robustft.strategies.registry import STRATEGIES

HEADER = ["name", "information", "mechanism", "trainable (mobilenet_v2)", "share", "share (ViT-B/16)"]


def _default_cnn() -> RobustModel:
    return build("mobilenet_v2", 10, pretrained=False)


def _vit_b16() -> RobustModel:
    import timm

    info = ModelInfo("vit_base_patch16_224", "vit", 224, (0.5,) * 3, (0.5,) * 3, 10, head="backbone.head",
                     min_input_size=224)
    return RobustModel(timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10), info)


@functools.lru_cache(maxsize=1)
def _reference_models() -> tuple[RobustModel, RobustModel]:
    with torch.device("meta"):
        return _default_cnn(), _vit_b16()


def _count(model: RobustModel, name: str) -> tuple[str, str, str, str] | None:
    """(information, mechanism, trainable count, share) of ``name`` on a copy of ``model``; None if n/a."""
    strategy, _ = resolve_name(name, {})
    try:
        info = apply(copy.deepcopy(model), name, **strategy.example_options)
    except RobustftError:
        return None
    return ", ".join(info.information), info.mechanism, f"{info.trainable_count:,}", f"{100 * info.share:.2f}%"


def list_table() -> tuple[list[str], list[list[str]]]:
    """Header and one row per strategy: name, information axis, mechanism, trainable count and share."""
    cnn, vit = _reference_models()
    rows = []
    for entry in STRATEGIES.entries():
        name = f"{entry.name}:<type>" if entry.name == "peft" else entry.name
        probe = "peft:lora" if entry.name == "peft" else entry.name
        on_cnn, on_vit = _count(cnn, probe), _count(vit, probe)
        described = on_cnn or on_vit
        information, mechanism = (described[0], described[1]) if described else ("?", "?")
        if entry.name == "peft":
            mechanism = "any (peft:lora shown)"
        rows.append([name, information if on_vit is None else on_vit[0], mechanism,
                     on_cnn[2] if on_cnn else f"n/a ({'/'.join(STRATEGIES.get(entry.name).families)} only)",
                     on_cnn[3] if on_cnn else "n/a", on_vit[3] if on_vit else "n/a"])
    return HEADER, rows
