"""The prepared copy runs ReLU6 / Hardtanh out of place where that is the same function, and only there."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks import prepare_for_attack
from robustft.attacks.base import loss_and_grad
from robustft.attacks.prepare import out_of_place_activations
from robustft.models.tiny import tiny_mobilenet


def _images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _inplace_twin(prepared: nn.Module) -> nn.Module:
    """The prepared copy with every Hardtanh-family activation back in place (what preparation used to give)."""
    twin = copy.deepcopy(prepared)
    for module in twin.modules():
        if isinstance(module, nn.Hardtanh):
            module.inplace = True
    return twin


def test_mobilenet_activations_run_out_of_place_with_identical_logits_and_input_gradients() -> None:
    model = tiny_mobilenet(num_classes=5).eval()
    prepared = prepare_for_attack(model)
    relu6 = [m for m in prepared.modules() if isinstance(m, nn.ReLU6)]
    assert relu6 and not any(m.inplace for m in relu6)  # every ReLU6 of MobileNetV2 follows a conv
    images, labels = _images(), torch.arange(6) % 5

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="none")

    ours, theirs = loss_and_grad(prepared, images, loss), loss_and_grad(_inplace_twin(prepared), images, loss)
    for a, b in zip(ours, theirs, strict=True):  # the same clamp and mask: bit for bit
        assert torch.equal(a, b)
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU6))  # the user's model is untouched


class _Residual(nn.Module):
    """x + body(x) with body starting with an in-place ReLU6: the sum reads x after the clamp (in-place matters)."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(act, nn.Conv2d(3, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _net_with_shared_activation() -> nn.Module:
    """One in-place ReLU6 instance used twice: after a conv (safe out of place) and first in a residual body
    (where the in-place clamp of the block's input is part of the function)."""
    act = nn.ReLU6(inplace=True)
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Identity(), act, nn.Conv2d(3, 3, 1), _Residual(act),
                         nn.Flatten(), nn.LazyLinear(4)).eval()


def test_only_activations_after_a_fresh_output_change_and_as_new_instances() -> None:
    net = _net_with_shared_activation()
    x = 8 * torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) - 4  # values beyond [0, 6]
    with torch.no_grad():
        reference = net(x.clone())
        changed = copy.deepcopy(net)
        assert out_of_place_activations(changed) == 1
        assert changed[2] is not changed[4].body[0]  # the residual keeps its own, in-place, instance
        assert not changed[2].inplace and changed[4].body[0].inplace
        assert torch.equal(changed(x.clone()), reference)


def test_a_hooked_activation_or_one_after_a_hooked_conv_stays_in_place() -> None:
    for hooked in (2, 0):
        net = _net_with_shared_activation()
        net[hooked].register_forward_hook(lambda module, inputs, output: output)
        assert out_of_place_activations(net) == 0
        assert net[2].inplace
