"""On the CPU a large forward+backward pass runs in pieces (``attacks.base.CPU_PIECE``): same per-sample values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from batch_recorder import BatchSizes
from robustft.attacks import base as attacks_base
from robustft.attacks import build_attack, prepare_for_attack
from robustft.attacks.base import loss_and_grad
from robustft.models.tiny import tiny_mobilenet


def _data(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return images, torch.arange(n) % 5


def test_pieces_give_the_single_pass_loss_gradient_and_logits_in_input_order(monkeypatch) -> None:
    model = BatchSizes(prepare_for_attack(tiny_mobilenet(num_classes=5).eval()))
    images, labels = _data()

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="none")

    monkeypatch.setattr(attacks_base, "CPU_PIECE", 1000)
    whole = loss_and_grad(model, images, loss)
    assert model.sizes == [10]
    model.sizes.clear()
    monkeypatch.setattr(attacks_base, "CPU_PIECE", 4)
    pieces = loss_and_grad(model, images, loss)
    assert model.sizes == [4, 4, 2]
    for name, a, b in zip(("loss", "grad", "logits"), pieces, whole, strict=True):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("name", ["pgd", "apgd-ce"])
def test_an_early_stopped_attack_returns_the_same_points_with_pieces(monkeypatch, name: str) -> None:
    model = prepare_for_attack(tiny_mobilenet(num_classes=5).eval())
    images, labels = _data(12)
    with torch.no_grad():
        labels = model(images).argmax(1)  # every sample starts correct, so early stop shrinks the batch
    results = []
    for piece in (1000, 5):
        monkeypatch.setattr(attacks_base, "CPU_PIECE", piece)
        attack = build_attack(name, steps=5, early_stop=True, generator=torch.Generator().manual_seed(0))
        results.append(attack(model, images, labels, 8 / 255))
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=1e-6)
