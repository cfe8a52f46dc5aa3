"""The training fast paths compute the same step: ``train.cpu_fast_paths`` on and off, strategy x backbone.

On the CPU the trainer trains a CNN in channels_last and runs the trained depthwise convolutions on maps of <= 2 x 2
pixels as a product (robustft.training.small_map_depthwise). For every registered strategy on every built-in
backbone, one real ``Trainer.update`` with the fast paths and one without, from the same adapted model and batch,
must compute the same loss and the same gradient of every trainable parameter within float rounding. The CNNs run
at 8 px and 4 px (tiny-mobilenet's depthwise convolutions then see 4 x 4, 2 x 2 and 1 x 1 maps), and the test
asserts the product was taken where the weights it needs train.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from tests.test_fast_paths import NOT_APPLICABLE, OPTIONS, pretrained_like, strategy_names

from robustft import strategies
from robustft.config import from_dict
from robustft.errors import MissingAssetError
from robustft.models.tiny import tiny_cnn, tiny_mobilenet, tiny_vit
from robustft.strategies import StrategyNotApplicableError
from robustft.training import small_map_depthwise
from robustft.training.trainer import build_trainer

BACKBONES = {"tiny-cnn": (tiny_cnn, (8, 4)), "tiny-mobilenet": (tiny_mobilenet, (8, 4)), "tiny-vit": (tiny_vit, (32,))}


class Images:
    """n seeded images of one side, 4 classes."""

    def __init__(self, n: int, side: int, seed: int, dtype: torch.dtype = torch.float32) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, side, side, generator=generator, dtype=torch.float64).to(dtype)
        self.labels = torch.randint(0, 4, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def _gradients_of_one_update(model: torch.nn.Module, name: str, side: int, fast: bool, tmp_path,
                             objective: str = "standard", dtype: torch.dtype = torch.float32,
                             ) -> tuple[float, dict[str, torch.Tensor], torch.nn.Module]:
    """One trainer update of ``model`` (a copy, in ``dtype``) with ``name`` on images in ``dtype``; returns its
    loss, the gradient of every trainable parameter as the optimiser saw it, and the trainer's model."""
    splits = {"train": Images(16, side, 0, dtype), "val": Images(4, side, 1, dtype), "test": Images(4, side, 2, dtype),
              "ood": {}}
    strategy, _ = strategies.resolve_name(name, {})
    options = {k: v for k, v in strategy.example_options.items() if k != "type"} | OPTIONS.get(name, {})
    config = {"name": f"{name.replace(':', '-')}-{side}-{fast}", "output_dir": str(tmp_path), "device": "cpu",
              "seed": 0,
              "strategy": {"name": name, "options": options},
              "objective": {"name": objective, "steps": 1},
              "optim": {"batch_size": 16, "lr": 0.05, "warmup": 0}, "train": {"steps": 2, "epochs": None,
                                                                              "cpu_fast_paths": fast},
              "eval": {"subset": 4, "splits": ["test"], "eps": [], "final": None, "ood": False},
              "logging": {"progress": False}}
    trainer = build_trainer(from_dict(config), model=copy.deepcopy(model).to(dtype), datasets=splits)
    trainer._on_progress()
    seen: dict[str, torch.Tensor] = {}

    def record_gradients() -> None:
        seen.update({n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None})

    trainer.optimizer.step = record_gradients
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)  # the same dropout / random start on both sides
        loss = trainer.update(itertools.repeat((splits["train"].images, splits["train"].labels)), 8 / 255)
    return loss, seen, trainer.model


def check_same_update(backbone: str, name: str, build, side: int, tmp_path, dtype: torch.dtype = torch.float32) -> int:
    """Asserts the fast and the reference update agree; returns how many product calls the fast one made.

    float32 compares within 1e-4 of the largest gradient: enough on the tiny backbones. The embedded MobileNetV2
    is compared in float64: there float32 alone moves its stem's gradient by 0.2% of its largest entry between
    two kernel choices (measured against float64: plain 9e-3, channels_last 3e-2, the product 2e-4, on entries
    up to 5.7), so float32 could not tell a wrong fast path from rounding. float64 can: the paths agree to 1e-14
    there, up to the float32 cross-entropy both take on their logits.
    """
    if name.startswith("peft:"):
        pytest.importorskip("peft")
    model = build()
    if backbone.startswith("tiny-"):
        pretrained_like(model, torch.Generator().manual_seed(0))
    try:
        loss, reference, plain_model = _gradients_of_one_update(model, name, side, False, tmp_path, dtype=dtype)
    except StrategyNotApplicableError:
        assert (backbone, name) in NOT_APPLICABLE, f"{name} unexpectedly refused {backbone}"
        pytest.skip(f"{name} does not apply to {backbone} (expected)")
    calls = []
    real = small_map_depthwise.depthwise_as_product

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    small_map_depthwise.depthwise_as_product = counted
    try:
        fast_loss, fast, fast_model = _gradients_of_one_update(model, name, side, True, tmp_path, dtype=dtype)
    finally:
        small_map_depthwise.depthwise_as_product = real
    assert reference, f"{name} on {backbone}: the update computed no gradient"
    assert fast.keys() == reference.keys()
    assert fast_loss == pytest.approx(loss, rel=1e-5, abs=1e-6)
    scale = max(float(g.abs().max()) for g in reference.values())
    tolerance = 1e-4 if dtype == torch.float32 else 1e-6
    for key, gradient in reference.items():
        torch.testing.assert_close(fast[key], gradient, rtol=tolerance, atol=tolerance * scale,
                                   msg=lambda m, key=key: f"{name} on {backbone} at {side} px, {key}: {m}")
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in fast_model.modules())
    conv_weights = [p for p in fast_model.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights) == (convolutions > 2), \
        "a CNN trains in channels_last with the fast paths, a ViT (one convolution) does not"
    assert all(p.is_contiguous() for p in plain_model.parameters()), "without them nothing changes layout"
    return len(calls)


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_the_fast_training_step_is_the_reference_step(backbone: str, name: str, tmp_path) -> None:
    build, sides = BACKBONES[backbone]
    calls = {side: check_same_update(backbone, name, lambda: build(num_classes=4), side, tmp_path) for side in sides}
    if backbone == "tiny-mobilenet" and name == "full":
        # its four depthwise convolutions train: at 4 px all see <= 2 x 2 maps, at 8 px the first two see 4 x 4
        assert calls[4] == 4 and calls[8] == 2, calls
    if backbone == "tiny-vit":
        assert calls == {32: 0}


def test_the_product_is_not_taken_where_the_depthwise_weights_are_frozen(tmp_path) -> None:
    model = tiny_mobilenet(num_classes=4)
    pretrained_like(model, torch.Generator().manual_seed(0))
    assert check_same_update("tiny-mobilenet", "bitfit", lambda: model, 4, tmp_path) == 0
    assert check_same_update("tiny-mobilenet", "linear", lambda: model, 4, tmp_path) == 0


def test_an_adversarial_update_agrees_too(tmp_path) -> None:
    """The attack crafts on a prepared copy of a channels_last model and channels_last images: the same
    perturbation up to rounding, so the same update (FGSM-like single step: no sign flips at this scale)."""
    model = tiny_mobilenet(num_classes=4)
    pretrained_like(model, torch.Generator().manual_seed(0))
    losses = []
    for fast in (False, True):
        loss, gradients, _ = _gradients_of_one_update(model, "full", 4, fast, tmp_path, objective="adversarial")
        losses.append(loss)
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


EMBEDDED = {"mobilenet_v2": 32, "vit_small_dinov2": 28}


@pytest.mark.slow
@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(EMBEDDED))
def test_the_fast_training_step_is_the_reference_step_on_the_embedded_backbones(backbone: str, name: str,
                                                                              tmp_path) -> None:
    from robustft.models import build

    size = EMBEDDED[backbone]
    try:
        build(backbone, 4, pretrained=True, image_size=size)
    except MissingAssetError as error:
        pytest.skip(str(error))
    calls = check_same_update(backbone, name, lambda: build(backbone, 4, pretrained=True, image_size=size), size,
                              tmp_path, dtype=torch.float64)
    if backbone == "mobilenet_v2" and name == "full":
        assert calls == 10  # the depthwise convolutions of the last ten blocks see 2 x 2 and 1 x 1 maps at 32 px
