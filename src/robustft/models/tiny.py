"""Tiny random-initialised models for tests, smoke runs and benchmarks of the machinery itself.

They satisfy the full ``RobustModel`` contract (normalisation inside, head name in ``info``), run in
milliseconds on a CPU, and cover both families: a CNN with BatchNorm (so eval/train mode matters), a torchvision
MobileNetV2 cut down to three inverted-residual blocks (the default backbone's module structure: pointwise and
depthwise convs each followed by a BatchNorm inside ``Conv2dNormActivation`` sequentials) and a timm ViT (fused
qkv attention, MLP blocks) of a few thousand parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from robustft.models.wrapper import ModelInfo, RobustModel

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class TinyConvNet(nn.Module):
    """conv-BN-ReLU x 3 (the last two with 1x1 pointwise convs), global pool, linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1, groups=width, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def tiny_cnn(num_classes: int = 10, in_channels: int = 3, width: int = 16, seed: int = 0) -> RobustModel:
    """A ~5k-parameter CNN with BatchNorm, any input size >= 4 px. Deterministic for a seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = TinyConvNet(num_classes, in_channels, width)
    mean, std = (CIFAR_MEAN, CIFAR_STD) if in_channels == 3 else ((0.5,) * in_channels, (0.5,) * in_channels)
    info = ModelInfo("tiny-cnn", "cnn", 32, mean, std, num_classes, head="backbone.classifier", min_input_size=4)
    return RobustModel(backbone, info)


def tiny_mobilenet(num_classes: int = 10, seed: int = 0) -> RobustModel:
    """torchvision's ``MobileNetV2`` class with three small inverted-residual stages (~60k parameters, most in
    the 1280-wide last pointwise conv and the head). Deterministic for a seed.

    Strategies place their modules on it exactly as on the embedded ``mobilenet_v2`` (same classes, same
    ``Conv2d -> BatchNorm2d`` pairs for ``attacks.fold_conv_bn``), at a fraction of the cost; any input side >= 1.
    """
    from torchvision.models import MobileNetV2

    setting = [[1, 8, 1, 1], [6, 16, 2, 2], [6, 24, 1, 2]]  # expansion t, channels c, repeats n, stride s
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = MobileNetV2(num_classes=num_classes, inverted_residual_setting=setting)
    info = ModelInfo("tiny-mobilenet", "cnn", 32, CIFAR_MEAN, CIFAR_STD, num_classes, head="backbone.classifier.1",
                     min_input_size=1)
    return RobustModel(backbone, info)


def tiny_vit(num_classes: int = 10, image_size: int = 32, patch_size: int = 8, embed_dim: int = 32,
             depth: int = 2, num_heads: int = 2, seed: int = 0) -> RobustModel:
    """A timm VisionTransformer with a few thousand parameters (fused qkv, CLS token). Deterministic for a seed."""
    from timm.models.vision_transformer import VisionTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = VisionTransformer(
            img_size=image_size, patch_size=patch_size, num_classes=num_classes, embed_dim=embed_dim,
            depth=depth, num_heads=num_heads, mlp_ratio=2.0, global_pool="token",
        )
    info = ModelInfo("tiny-vit", "vit", image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), num_classes,
                     head="backbone.head", min_input_size=image_size)
    return RobustModel(backbone, info)
