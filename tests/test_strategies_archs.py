"""Tiny test architectures for the strategy and layout tests: one per supported family, random init, offline.

Imported by test_strategies*.py and test_layout.py (pytest puts tests/ on sys.path); its own test checks that
each builder gives a working ``RobustModel``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from robustft.models.wrapper import ModelInfo, RobustModel


def _info(name: str, family: str, head: str, size: int = 32) -> ModelInfo:
    return ModelInfo(name, family, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 10, head=head, min_input_size=size)


def build_tiny_cnn() -> RobustModel:
    from robustft.models.tiny import tiny_cnn

    return tiny_cnn(num_classes=10)


def build_tiny_vit() -> RobustModel:
    from robustft.models.tiny import tiny_vit

    return tiny_vit(num_classes=10)


def build_resnet() -> RobustModel:
    """A timm ResNet (Bottleneck blocks, 1x1 stride-2 downsample convs) with narrow channels."""
    from timm.models.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    net = ResNet(Bottleneck, [1, 1, 1, 1], channels=(8, 8, 16, 16), num_classes=10)
    return RobustModel(net, _info("timm:resnet-tiny", "cnn", "backbone.fc"))


def build_convnext() -> RobustModel:
    """A timm ConvNeXt (depthwise 7x7 + Linear MLP blocks, LayerNorm, layer scale)."""
    from timm.models.convnext import ConvNeXt

    torch.manual_seed(0)
    net = ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 16, 32), num_classes=10)
    return RobustModel(net, _info("timm:convnext-tiny", "cnn", "backbone.head.fc"))


def build_mobilenet_v2() -> RobustModel:
    """torchvision MobileNetV2 (the embedded backbone's architecture) at width 0.25, random init."""
    import torchvision

    torch.manual_seed(0)
    return RobustModel(torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25), _info("mobilenet_v2", "cnn",
                                                                             "backbone.classifier.1"))


class HFViTClassifier(nn.Module):
    """A Hugging Face ViTModel with a linear head on the CLS token (what paper A fine-tunes)."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import ViTConfig, ViTModel

        config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=32, patch_size=8)
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(32, 10)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.vit(pixel_values=pixel_values).last_hidden_state[:, 0])


def build_hf_vit() -> RobustModel:
    torch.manual_seed(0)
    return RobustModel(HFViTClassifier(), _info("hf:vit-tiny", "vit", "backbone.classifier"))


ARCHITECTURES: dict[str, Callable[[], RobustModel]] = {
    "tiny_cnn": build_tiny_cnn,
    "tiny_vit": build_tiny_vit,
    "timm_resnet": build_resnet,
    "timm_convnext": build_convnext,
    "mobilenet_v2": build_mobilenet_v2,
    "hf_vit": build_hf_vit,
}


_BUILT: dict[str, RobustModel] = {}


def fresh(arch: str) -> RobustModel:
    """A new, un-adapted copy of ``arch`` (built once per session, then deep-copied: building is the slow part)."""
    if arch not in _BUILT:
        _BUILT[arch] = ARCHITECTURES[arch]()
    return copy.deepcopy(_BUILT[arch])


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_builds_a_classifier(arch: str) -> None:
    model = fresh(arch).eval()
    logits = model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    assert isinstance(model.head_module(), nn.Linear)
