"""Every fast path computes the trained model's function: strategy x backbone, after a training-like change.

Logits on every path, and the input gradient (what an attack asks of the model) on the two that attacks run on.

The paths: ``attacks.prepare_for_attack`` (what every attack, ``eval`` and continuous evaluation run on; BatchNorm
folded, adapters merged), the copy kept per model across attack calls (``attacks.prepared_cache``: made before
training, refreshed after), ``attacks.fold_conv_bn`` alone on an unmerged copy, ``strategies.merge``, the merged
export (``strategies.merge(strict=True)`` reloaded into the plain network) and the copy the training objectives
craft their attacks on (``training.objectives.crafting_model``). Each must give the adapted model's own eval-mode
logits within float tolerance. The strategies are read from the registry, so a newly registered one is covered
without editing this file; only ``StrategyNotApplicableError`` skips a case, and only where ``NOT_APPLICABLE``
says it should.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from robustft import strategies
from robustft.attacks import fold_conv_bn, prepare_for_attack
from robustft.attacks.prepared_cache import prepared_copy
from robustft.errors import ConfigError, MissingAssetError
from robustft.models.tiny import tiny_cnn, tiny_mobilenet, tiny_vit
from robustft.models.wrapper import RobustModel
from robustft.strategies import STRATEGIES, StrategyNotApplicableError
from robustft.strategies.export import plain_network
from robustft.strategies.peft_tuner import MECHANISMS
from robustft.training.objectives import ObjectiveContext, crafting_model

BACKBONES: dict[str, Callable[[], RobustModel]] = {
    "tiny-cnn": lambda: tiny_cnn(num_classes=10),  # plain conv-BN-ReLU sequential, a depthwise conv in it
    "tiny-mobilenet": lambda: tiny_mobilenet(num_classes=10),  # inverted residuals, as the default backbone
    "tiny-vit": lambda: tiny_vit(num_classes=10),  # timm ViT, fused qkv
}
# Options a case needs beyond the strategy's own ``example_options``.
OPTIONS: dict[str, dict] = {"peft:adalora": {"total_step": 10}}
# Where a strategy says it does not apply. Kept exact both ways: a case missing here must apply, a case listed
# here must refuse, so no strategy can drop out of the comparison silently.
CNNS = ("tiny-cnn", "tiny-mobilenet", "mobilenet_v2")
NOT_APPLICABLE = {
    *((cnn, "vpt") for cnn in CNNS),  # prompts need tokens
    *((cnn, "peft:randlora") for cnn in CNNS),  # peft's RandLora has no Conv2d layer
    *((backbone, "peft:vera") for backbone in (*BACKBONES, "mobilenet_v2", "vit_small_dinov2")),  # not injectable
}
# Strategies whose added computation no weight can hold: the merged export refuses them.
UNMERGEABLE = {"adapter", "compacter", "vpt"}


def strategy_names() -> list[str]:
    """Every registered strategy; ``peft`` once per tuner type robustft names (``peft_tuner.MECHANISMS``)."""
    names = []
    for entry in STRATEGIES.entries():
        if entry.name == "peft":
            names += [f"peft:{kind}" for kind in sorted(MECHANISMS)]
        else:
            names.append(entry.name)
    return names


@torch.no_grad()
def pretrained_like(model: nn.Module, generator: torch.Generator) -> None:
    """BatchNorm layers as a pretrained network has them (scales and statistics far from 1 and 0), so a delta
    added after a BatchNorm instead of before it shows in the logits."""
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            channels = module.num_features
            module.weight.copy_(0.5 + 1.5 * torch.rand(channels, generator=generator))
            module.bias.normal_(0.0, 0.3, generator=generator)
            module.running_mean.normal_(0.0, 0.5, generator=generator)
            module.running_var.copy_(torch.exp(torch.randn(channels, generator=generator)))


@torch.no_grad()
def train_like(model: nn.Module, trainable: list[str], generator: torch.Generator) -> None:
    """Moves every parameter that trains in any phase by seeded noise (10% of its RMS; 0.05 for zero-initialised
    ones such as LoRA's B) and moves the BatchNorm statistics, as training with ``bn_stats=update`` would."""
    wanted = set(trainable)
    for name, param in model.named_parameters():
        if name in wanted:
            rms = float(param.float().pow(2).mean().sqrt())
            param.add_((0.1 * rms if rms > 0 else 0.05) * torch.randn(param.shape, generator=generator))
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean.add_(0.1 * torch.randn(module.num_features, generator=generator))
            module.running_var.mul_(torch.exp(0.1 * torch.randn(module.num_features, generator=generator)))


def adapted(backbone: str, name: str, build: Callable[[], RobustModel],
            before_training: Callable[[RobustModel], object] | None = None) -> tuple[RobustModel, list[str]]:
    """The built model (pretrained-like when it is a random tiny one), adapted with ``name`` and trained-like
    (``before_training`` sees it adapted, untrained); skips only where expected."""
    if name.startswith("peft:"):
        pytest.importorskip("peft")
    generator = torch.Generator().manual_seed(0)
    model = build()
    if backbone.startswith("tiny-"):  # the embedded backbones are pretrained already
        pretrained_like(model, generator)
    strategy, _ = strategies.resolve_name(name, {})
    options = {k: v for k, v in strategy.example_options.items() if k != "type"} | OPTIONS.get(name, {})
    try:
        info = strategies.apply(model, name, **options)
    except StrategyNotApplicableError as error:
        assert (backbone, name) in NOT_APPLICABLE, f"{name} unexpectedly refused {backbone}: {error}"
        pytest.skip(f"{name} does not apply to {backbone} (expected)")
    assert (backbone, name) not in NOT_APPLICABLE, f"{name} now applies to {backbone}: update NOT_APPLICABLE"
    if before_training is not None:
        before_training(model)
    train_like(model, info.trainable_names, generator)
    return model.eval(), info.trainable_names


def assert_same_function(actual: torch.Tensor, reference: torch.Tensor, path: str) -> None:
    """Equal within float rounding relative to the logits' scale (the adapted functions differ by far more)."""
    scale = float(reference.abs().max())
    torch.testing.assert_close(actual, reference, rtol=1e-4, atol=1e-4 * scale, msg=lambda m: f"{path}: {m}")


def input_gradient(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """d(sum of logits x fixed random weights)/d(images): what an attack's step asks of the model."""
    x = images.clone().requires_grad_(True)
    logits = model(x)
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(7))
    (gradient,) = torch.autograd.grad((logits * weights).sum(), x)
    return gradient


def check_input_gradients(model: nn.Module, images: torch.Tensor) -> None:
    """What attacks differentiate: the input gradient through the prepared copy and through the crafting copy.

    Against autograd through the same copy's weights made trainable (a ViT's prepared patch embedding then takes
    torch's own convolution backward, attacks/prepare_vit.py): equal within float rounding. Against autograd
    through the model itself: the same direction (cosine >= 0.999), not equal element by element, because folding a
    BatchNorm rounds differently and a pre-activation that lands on a ReLU6 kink can flip its mask (BitFit on
    tiny-mobilenet: 0.9% of the largest entry).
    """
    reference = input_gradient(model, images)
    for path, copy_of in (("prepare_for_attack", prepare_for_attack),
                          ("the crafting copy", lambda m: crafting_model(m, ObjectiveContext())),
                          ("the kept prepared copy", prepared_copy)):
        prepared = copy_of(model)
        gradient = input_gradient(prepared, images)
        autograd_copy = copy.deepcopy(prepared)
        for param in autograd_copy.parameters():
            param.requires_grad_(True)
        assert_same_function(gradient, input_gradient(autograd_copy, images), f"{path}'s input gradient")
        cosine = F.cosine_similarity(gradient.flatten(), reference.flatten(), dim=0)
        assert cosine >= 0.999, f"{path}'s input gradient points elsewhere than the model's: cosine {cosine:.4f}"


def check_every_path(backbone: str, name: str, build: Callable[[], RobustModel], images: torch.Tensor) -> None:
    # The copy every attack call keeps (attacks/prepared_cache.py) is made before training and refreshed after.
    model, _ = adapted(backbone, name, build, before_training=prepared_copy)
    with torch.no_grad():
        reference = model(images)
        kept = prepared_copy(model)(images)
        assert_same_function(kept, reference, "the kept prepared copy, refreshed after training")
        assert torch.equal(kept, prepare_for_attack(model)(images)), "the refreshed copy is not a fresh prepare's"
    check_input_gradients(model, images)
    with torch.no_grad():
        assert_same_function(prepare_for_attack(model)(images), reference, "prepare_for_attack")
        folded = copy.deepcopy(model)
        fold_conv_bn(folded)
        assert_same_function(folded(images), reference, "fold_conv_bn on the adapted (unmerged) model")
        assert_same_function(strategies.merge(copy.deepcopy(model))(images), reference, "strategies.merge")
        assert_same_function(crafting_model(model, ObjectiveContext())(images), reference, "objectives' crafting copy")
        # the train-time copy was private: the model still computes what it did, adapters and all
        assert torch.equal(model(images), reference)
        exported = copy.deepcopy(model)
        try:
            strategies.merge(exported, strict=True)
        except ConfigError:
            assert name in UNMERGEABLE, f"{name} could not be exported merged"
            return
        assert name not in UNMERGEABLE, f"{name} now merges: update UNMERGEABLE"
        plain = copy.deepcopy(plain_network(build()))  # a fresh network of the same architecture, no strategy
        plain.load_state_dict(plain_network(exported).state_dict(), strict=True)
        normalised = (images - model.mean) / model.std  # the sidecar's mean / std, applied outside the network
        assert_same_function(plain.eval()(normalised), reference, "merged export reloaded as the plain network")


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_fast_path_computes_the_trained_model(backbone: str, name: str) -> None:
    # 32 px and, for the CNNs, 4 px: there tiny-mobilenet's last maps are 2 x 2 and 1 x 1, where the prepared copy
    # runs its pointwise layers as matrix products (attacks/pointwise_linear.py).
    for side in (32,) if backbone == "tiny-vit" else (32, 4):
        images = torch.rand(4, 3, side, side, generator=torch.Generator().manual_seed(1))
        check_every_path(backbone, name, BACKBONES[backbone], images)


def test_the_cases_cover_every_registered_strategy() -> None:
    """Nothing but the registry decides the cases: every entry is there, and the peft tuners robustft names."""
    names = strategy_names()
    for entry in STRATEGIES.entries():
        assert entry.name in names or any(n.startswith(entry.name + ":") for n in names)
    assert {"lora", "ia3", "peft:lora", "peft:ia3", "vpt", "lp-ft", "partial"} <= set(names)


EMBEDDED = {"mobilenet_v2": 32, "vit_small_dinov2": 28}  # input side: small, valid for each (ViT: 2 x 2 patches)


@pytest.mark.slow
@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(EMBEDDED))
def test_every_fast_path_computes_the_trained_embedded_model(backbone: str, name: str) -> None:
    from robustft.models import build

    size = EMBEDDED[backbone]
    try:
        build(backbone, 10, pretrained=True, image_size=size)
    except MissingAssetError as error:
        pytest.skip(str(error))
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))

    def embedded() -> RobustModel:
        return build(backbone, 10, pretrained=True, image_size=size)

    check_every_path(backbone, name, embedded, images)
