"""Making the attacked model cheap without changing its function.

An attack runs many forward+backward passes w.r.t. the input only, in eval mode. So: a deep copy in eval mode (the
user's model object is untouched), the strategy's mergeable adaptations (LoRA, (IA)3, peft tuners) merged into the
copy's weights and adapters still at their zero init dropped (``strategies.merge``), Compacter's PHM projections as
the plain frozen layers they compute (``strategies.plain_projections``), every plain Conv2d directly followed by a
plain BatchNorm2d inside a ``Sequential`` folded into one conv (torch's ``fuse_conv_bn_eval``; eval-mode BN is an
affine map, so the function is the same up to float rounding), parameters frozen (backward computes no weight
gradients and keeps fewer activations), in-place ReLU6 modules replaced by one that does not copy its input under
autograd (``relu6_in_place``), 1 x 1 convolutions run as matrix products where the map is small
(``pointwise_linear``), the stem's input gradient as one matrix product (``stem_input_grad``), and channels_last
memory format for CNNs (faster convolutions on CPU and CUDA). On the embedded MobileNetV2 this gives about 2x the
forward+backward throughput on CPU.

Why both the merge and the "plain" rule. Strategies attach their modules to existing layers with forward hooks
(``strategies.hooks``: a LoRA delta added to a conv's output, an (IA)3 scale on its output or input).
``fuse_conv_bn_eval`` deep-copies the conv, hooks included, and puts the BatchNorm's affine map inside it, so a
hook that acted before the BatchNorm then acts after it: on the demo's LoRA MobileNetV2 the attacked copy differed
from the trained model by up to 16.9 in the logits, and every robust accuracy of LoRA and (IA)3 on a CNN was that
of another network. Hence two rules; the first makes a wrong fold impossible whatever attached the hook, the
second keeps the fast path fast:

1. ``fold_conv_bn`` folds a pair only when both modules are plain (``is_plain``): exactly ``nn.Conv2d`` /
   ``nn.BatchNorm2d``, no forward hooks or pre-hooks, no ``forward`` replaced on the instance, and no global
   module hooks registered. Anything else is left as it is (correct, only slower).
2. ``prepare_for_attack`` merges first, on its private copy: a merged LoRA or (IA)3 leaves a plain conv behind (and
   a merged peft layer is replaced by its base layer), so the pair folds again and the attack stays fast. The
   training objectives craft their attacks on this same copy (``training.objectives.crafting_model``).
tests/test_fast_paths.py holds every strategy x backbone to the trained model's logits on these paths.

Every attack function prepares the model it is given (``pgd(model, ...)`` directly is as fast as
``robust_accuracy``), through ``attacks.prepared_cache``: the copy made for a model object is kept and refreshed
in place from the model's tensors at the next call, unless the model's structure changed or it has hooks (then a
fresh copy). A model that is already a ``PreparedModel`` is used as it is, so robust evaluation and adversarial
training make no second copy; ``prepare=False`` attacks the model object itself. ``prepare_for_attack`` itself
always returns a new copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from robustft import strategies
from robustft.attacks.base import warn_train_mode_batchnorm
from robustft.attacks.pointwise_linear import PointwiseConv2d, is_pointwise
from robustft.attacks.prepare_vit import speed_up_vits
from robustft.attacks.relu6_in_place import HIGH, LOW, InPlaceReLU6
from robustft.attacks.stem_input_grad import StemConv2d, is_stem

# A CNN's prepared copy runs on the CPU at batch sizes rounded up to a multiple of this (1, 2, 4, 8 below it):
# oneDNN compiles its kernels per layer and batch shape, and an early-stopping attack shrinks its batch at nearly
# every step, so without rounding nearly every step of an attack on new images compiled the whole network again
# (about 30 ms per forward+backward of the embedded MobileNetV2 on 2 threads, against 48 ms for the pass itself).
# Rounded, a process sees at most 35 sizes up to 256, which stay in oneDNN's cache (robustft/__init__.py sets its
# capacity). The zero images added cost at most 7 samples' compute. Measured on the embedded MobileNetV2 (PGD-10
# through robust_accuracy, 4 new batches of 256 after one warm-up batch, 3 runs each, idle, 2026-12-06): 2 threads
# 574-588 ms per call against 642-673 ms unrounded, 1 thread 874-917 against 958-1,002; the same batches a second
# time (every shape already compiled) 554-569 against 527-541 and 865-893 against 846-889 (the padding's cost).
# Multiples of 16 measured the same within noise; of 32, the padding cost 13% on a repeated batch. 1: no rounding.
BATCH_STEP = 8


def bucket_size(count: int, step: int | None = None) -> int:
    """The batch size ``count`` images run at: ``count`` rounded up to a multiple of ``step`` (default
    ``BATCH_STEP``), or to a power of two when ``count`` is at most ``step``; ``count`` itself when step <= 1."""
    step = BATCH_STEP if step is None else step
    if step <= 1 or count <= 0:
        return count
    if count <= step:
        return 1 << (count - 1).bit_length()
    return -(-count // step) * step


class PreparedModel(nn.Module):
    """A frozen eval-mode copy whose inputs are converted to channels_last; same logits as the original.

    A CNN's copy on the CPU pads its batch with zero images to ``bucket_size`` and returns only the given images'
    logits: in eval mode, BatchNorm folded, each image's logits depend on that image alone.
    """

    def __init__(self, model: nn.Module, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.info = getattr(model, "info", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images, float N x C x H x W in [0, 1]. Returns: logits N x K."""
        if self.channels_last and images.dim() == 4:
            count = images.shape[0]
            size = bucket_size(count) if images.device.type == "cpu" else count
            if size != count:
                padding = images.new_zeros((size - count, *images.shape[1:]))
                images = torch.cat([images, padding])
            images = images.contiguous(memory_format=torch.channels_last)
            return self.model(images)[:count]
        return self.model(images)

    def train(self, mode: bool = True) -> PreparedModel:
        # Attack-only copy: BatchNorm is folded away, so train mode would not mean anything; stay in eval.
        return super().train(False)


def _global_hooks() -> bool:
    """Whether module hooks that run around EVERY module call are registered (``register_module_forward_hook``):
    replacing a BatchNorm by ``nn.Identity`` would change what they see."""
    hooks = torch.nn.modules.module
    return bool(getattr(hooks, "_global_forward_hooks", None) or getattr(hooks, "_global_forward_pre_hooks", None))


def is_plain(module: nn.Module, kind: type[nn.Module]) -> bool:
    """Whether calling ``module`` computes ``kind.forward`` on its own parameters and buffers, nothing else.

    False for a subclass, a module with forward hooks or forward pre-hooks (a strategy's LoRA delta, (IA)3 scale,
    anything a user registered) and a module whose ``forward`` was replaced on the instance. (A child module alone
    changes nothing: ``Conv2d.forward`` never calls one; strategies reach their modules through hooks.)
    """
    return (type(module) is kind and not module._forward_hooks and not module._forward_pre_hooks
            and "forward" not in vars(module))


def fold_conv_bn(model: nn.Module) -> int:
    """Folds eval-mode Conv2d -> BatchNorm2d pairs inside every Sequential, in place. Returns the pairs folded.

    Only pairs of plain modules fold (``is_plain``; see the module docstring for why): a hooked conv or BatchNorm,
    or any pair while global module hooks are registered, is left as it is, so the function never changes.
    """
    if _global_hooks():
        return 0
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if (is_plain(conv, nn.Conv2d) and is_plain(bn, nn.BatchNorm2d) and bn.track_running_stats
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
                folded += 1
    return folded


def swap_relu6(model: nn.Module) -> int:
    """Replaces every plain in-place ``nn.ReLU6`` of ``model`` by ``InPlaceReLU6`` (same function, no copy of its
    input under autograd: attacks/relu6_in_place.py), in place. Returns how many were replaced.

    A ReLU6 with hooks, a subclass, one with ``inplace=False`` (its caller may still need the input) or one whose
    bounds were changed from 0 and 6 (``nn.ReLU6`` is a ``Hardtanh``: ``min_val`` / ``max_val`` are attributes a user
    may set) is left as it is, and so is every module while global module hooks are registered (they would see other
    modules).
    """
    if _global_hooks():
        return 0
    swaps = [(parent, name) for parent in model.modules() for name, child in parent._modules.items()
             if child is not None and is_plain(child, nn.ReLU6) and child.inplace
             and (child.min_val, child.max_val) == (LOW, HIGH)]
    for parent, name in swaps:
        parent._modules[name] = InPlaceReLU6()
    return len(swaps)


def swap_pointwise(model: nn.Module) -> int:
    """Makes every plain 1 x 1 ``nn.Conv2d`` of ``model`` a ``PointwiseConv2d`` (a matrix product on a 1 x 1 map:
    attacks/pointwise_linear.py), in place. Returns how many were changed.

    The module object, its name and its parameters stay (only its class changes), so whatever refers to them, the
    crafting copy's refresh plan included, still does. A convolution with hooks, a subclass, and every module
    while global module hooks are registered keep their own forward.
    """
    return _change_class(model, is_pointwise, PointwiseConv2d)


def swap_stem(model: nn.Module) -> int:
    """Makes every plain 3 x 3 stride-2 ``nn.Conv2d`` on a few input channels a ``StemConv2d`` (its input gradient
    as one matrix product: attacks/stem_input_grad.py), in place, as ``swap_pointwise`` does. Returns how many."""
    return _change_class(model, is_stem, StemConv2d)


def _change_class(model: nn.Module, applies: Callable[[nn.Conv2d], bool], kind: type[nn.Conv2d]) -> int:
    """Gives every plain ``nn.Conv2d`` of ``model`` for which ``applies`` holds the class ``kind`` (a subclass that
    only computes the same function another way): module, name and parameters stay. Nothing under global hooks."""
    if _global_hooks():
        return 0
    swaps = [module for module in model.modules() if is_plain(module, nn.Conv2d) and applies(module)]
    for module in swaps:
        module.__class__ = kind
    return len(swaps)


def prepare_for_attack(model: nn.Module, *, fold_bn: bool = True, channels_last: bool | None = None) -> nn.Module:
    """A cheaper copy of ``model`` for attacking/evaluating: same function, eval mode, frozen parameters.

    Args:
        model: a classifier on [0, 1] images (not modified in any way).
        fold_bn: fold plain Conv2d+BatchNorm2d pairs (after the strategy's mergeable adaptations are merged, which
            always happens: it is exact up to float rounding and saves the adapters' own passes).
        channels_last: use channels_last memory format; default: when the model has convolutions.

    Returns:
        A ``PreparedModel`` (an ``nn.Module`` on the same device, eval mode, ``requires_grad`` False everywhere,
        with ``.info`` of the original). Already prepared models are returned as they are.
    """
    if isinstance(model, PreparedModel):
        return model
    warn_train_mode_batchnorm(model)
    prepared = copy.deepcopy(model).eval()
    for param in prepared.parameters():
        param.requires_grad_(False)
        param.grad = None
    strategies.merge(prepared)  # a merged LoRA / (IA)3 / peft conv is a plain conv again, and folds
    strategies.plain_projections(prepared)  # Compacter's PHM projections as frozen 1x1 convolutions / linears
    if fold_bn:
        fold_conv_bn(prepared)
    swap_relu6(prepared)
    swap_pointwise(prepared)
    swap_stem(prepared)
    speed_up_vits(prepared)  # timm ViTs: a cheaper input gradient and class-token-only last block (prepare_vit)
    if channels_last is None:
        # A ViT's lone patch-embedding conv gains nothing from it; a CNN's many convolutions do.
        channels_last = sum(isinstance(m, nn.Conv2d) for m in prepared.modules()) > 2
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return PreparedModel(prepared, channels_last).eval()
