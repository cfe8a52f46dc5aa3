"""Backbones that take [0, 1] images and normalise inside: ``build(name, num_classes, ...) -> RobustModel``.

Sources: the embedded ImageNet MobileNetV2 and ViT-S/14 (offline, sha256-verified), ``timm:<name>``, ``tv:<name>``,
``hf:<repo id>``, and the tiny random models for tests. ``MODELS`` lists them (``robustft list models``).
"""

from robustft.models.build import MODELS, build, options_of
from robustft.models.wrapper import ModelInfo, RobustModel

__all__ = ["MODELS", "ModelInfo", "RobustModel", "build", "options_of"]
