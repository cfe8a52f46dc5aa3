"""Making the attacked model cheap without changing its function.

An attack runs many forward+backward passes w.r.t. the input only, in eval mode. So: a deep copy in eval
mode (the user's model object is untouched), every Conv2d directly followed by a BatchNorm2d inside a
``Sequential`` folded into one conv (torch's ``fuse_conv_bn_eval``; eval-mode BN is an affine map, so the
function is the same up to float rounding), parameters frozen (backward computes no weight gradients and keeps
fewer activations), and channels_last memory format for CNNs (faster convolutions on CPU and CUDA). On the
embedded MobileNetV2 this gives about 2x the forward+backward throughput on CPU.

Every attack function prepares the model it is given (``pgd(model, ...)`` directly is as fast as
``robust_accuracy``): one copy per call, which costs milliseconds next to the attack's passes. A model that is
already a ``PreparedModel`` is used as it is, so robust evaluation and adversarial training, which prepare once
per evaluation or training step, make no second copy; ``prepare=False`` attacks the model object itself.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from robustft.attacks.base import warn_train_mode_batchnorm


class PreparedModel(nn.Module):
    """A frozen eval-mode copy whose inputs are converted to channels_last; same logits as the original."""

    def __init__(self, model: nn.Module, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.info = getattr(model, "info", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images, float N x C x H x W in [0, 1]. Returns: logits N x K."""
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def train(self, mode: bool = True) -> PreparedModel:
        # Attack-only copy: BatchNorm is folded away, so train mode would not mean anything; stay in eval.
        return super().train(False)


def fold_conv_bn(model: nn.Module) -> int:
    """Folds eval-mode Conv2d -> BatchNorm2d pairs inside every Sequential, in place. Returns the pairs folded."""
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
                folded += 1
    return folded


def prepare_for_attack(model: nn.Module, *, fold_bn: bool = True, channels_last: bool | None = None,
                       copy_model: bool = True) -> nn.Module:
    """A cheaper copy of ``model`` for attacking/evaluating: same function, eval mode, frozen parameters.

    Args:
        model: a classifier on [0, 1] images (not modified in any way).
        fold_bn: fold Conv2d+BatchNorm2d pairs.
        channels_last: use channels_last memory format; default: when the model has convolutions.
        copy_model: deep-copy ``model`` first (default). False when the caller passes a private copy it made
            itself (the training loop does, to merge adapters first), so no second copy is made per step.

    Returns:
        A ``PreparedModel`` (an ``nn.Module`` on the same device, eval mode, ``requires_grad`` False everywhere,
        with ``.info`` of the original). Already prepared models are returned as they are.
    """
    if isinstance(model, PreparedModel):
        return model
    warn_train_mode_batchnorm(model)
    prepared = (copy.deepcopy(model) if copy_model else model).eval()
    for param in prepared.parameters():
        param.requires_grad_(False)
        param.grad = None
    if fold_bn:
        fold_conv_bn(prepared)
    if channels_last is None:
        # A ViT's lone patch-embedding conv gains nothing from it; a CNN's many convolutions do.
        channels_last = sum(isinstance(m, nn.Conv2d) for m in prepared.modules()) > 2
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return PreparedModel(prepared, channels_last).eval()


def attack_target(model: nn.Module, prepare: bool) -> nn.Module:
    """The module an attack runs on: ``prepare_for_attack(model)`` (same function, faster), or ``model``."""
    return prepare_for_attack(model) if prepare else model
