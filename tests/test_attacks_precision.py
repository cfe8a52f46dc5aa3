"""The CUDA speed paths of the attacks, on CPU stand-ins: bf16 passes under autocast with fp32 verdicts, and
cudnn autotuning only while the batch shape is fixed (no CUDA needed: a ``torch.device("cuda")`` object and
bf16 autocast on the CPU exercise the same code)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustft.attacks import apgd, build_attack, pgd, robust_accuracy
from robustft.attacks.base import autocast_dtype, confirm_fooled, cudnn_autotune, loss_and_grad
from robustft.errors import ConfigError

CUDA = torch.device("cuda")


class Linear(nn.Module):
    """Flatten + Linear(3*8*8 -> 4); records the dtype of every forward's logits. With ``bf16_bias``, logits
    computed in bf16 get +``bf16_bias`` on class 0: a model whose reduced-precision verdict is wrong."""

    def __init__(self, bf16_bias: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(4, 3 * 8 * 8, generator=torch.Generator().manual_seed(1)) * 0.2)
            self.fc.bias.zero_()
        self.bf16_bias = bf16_bias
        self.dtypes: list[torch.dtype] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.fc(images.flatten(1))
        self.dtypes.append(logits.dtype)
        if logits.dtype == torch.bfloat16 and self.bf16_bias:
            logits = logits + torch.tensor([self.bf16_bias, 0.0, 0.0, 0.0], dtype=logits.dtype)
        return logits


def _data(model: nn.Module, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return images, model(images).argmax(1)


def test_auto_precision_is_bf16_on_a_cuda_device_with_bf16_and_fp32_elsewhere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", CUDA) is torch.bfloat16
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("fp32", CUDA) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", CUDA) is None


def test_an_unknown_precision_names_the_choices():
    with pytest.raises(ConfigError, match="auto, fp32, bf16"):
        autocast_dtype("half", torch.device("cpu"))


def test_bf16_passes_return_fp32_loss_gradient_and_logits():
    model = Linear()
    images, labels = _data(model, 8)
    model.dtypes.clear()
    loss, grad, logits = loss_and_grad(model, images, lambda z: nn.functional.cross_entropy(
        z, labels, reduction="none"), torch.bfloat16)
    assert model.dtypes == [torch.bfloat16]
    assert loss.dtype == grad.dtype == logits.dtype == torch.float32
    assert grad.shape == images.shape and bool(grad.abs().sum() > 0)


def test_a_reduced_precision_claim_is_checked_in_fp32():
    model = Linear()
    images, labels = _data(model, 8)
    claimed = torch.ones(8, dtype=torch.bool)  # every sample "fooled" by a bf16 pass; in fp32 none is
    assert not confirm_fooled(model, images, labels, claimed, torch.bfloat16).any()
    assert confirm_fooled(model, images, labels, claimed, None).all()  # fp32 passes are trusted as they are


@pytest.mark.parametrize("attack", [pgd, apgd])
def test_bf16_attacks_run_their_passes_in_bf16_and_fp32_ones_in_fp32(attack):
    model = Linear()
    images, labels = _data(model, 8)
    model.dtypes.clear()
    attack(model, images, labels, 8 / 255, steps=3, prepare=False, precision="bf16")
    assert model.dtypes.count(torch.bfloat16) == 3 + 1  # 3 forward+backward passes and the last iterate's forward
    model.dtypes.clear()
    attack(model, images, labels, 8 / 255, steps=3, prepare=False, precision="fp32")
    assert model.dtypes and set(model.dtypes) == {torch.float32}


@pytest.mark.parametrize("name", ["pgd", "apgd-ce"])
def test_a_model_wrong_only_in_bf16_is_attacked_until_fp32_says_fooled(name):
    # In bf16 every sample looks misclassified (class 0 +100, no label is 0), so an attack trusting its bf16
    # verdict would drop every sample at its first pass and return its random start (measured: 95-98% stay
    # robust). Checked in fp32, the attack goes on; its bf16 gradients, skewed towards class 0 by the lie, still
    # bring robust accuracy near the fp32 attack's (measured 18% vs 11%).
    honest, liar = Linear(), Linear(bf16_bias=100.0)
    images, labels = _data(honest)
    keep = labels != 0
    images, labels = images[keep], labels[keep]
    fp32 = robust_accuracy(honest, (images, labels), name, 12 / 255, prepare=False)
    bf16 = robust_accuracy(liar, (images, labels), build_attack(name, precision="bf16"), 12 / 255, prepare=False)
    assert fp32.accuracy < 0.3 and bf16.accuracy < 0.3


def test_cudnn_autotuning_is_on_only_for_fixed_shapes_on_cuda_and_restored():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with cudnn_autotune(CUDA, fixed_shapes=True):
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is False
        for device, fixed in ((CUDA, False), (torch.device("cpu"), True)):
            with cudnn_autotune(device, fixed_shapes=fixed):
                assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before
