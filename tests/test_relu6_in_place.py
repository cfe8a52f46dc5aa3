"""InPlaceReLU6 computes nn.ReLU6(inplace=True), values and input gradient, and the prepared copy uses it only where
that is safe (plain, in-place modules; no global hooks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustft.attacks.prepare import prepare_for_attack, swap_relu6
from robustft.attacks.relu6_in_place import InPlaceReLU6


def values_with_edges() -> torch.Tensor:
    """2 x 3 x 4 x 4 values spread over [-3, 9], with exact 0s and 6s (where the gradient's mask flips)."""
    x = torch.linspace(-3.0, 9.0, 96).reshape(2, 3, 4, 4)
    x[0, 0, 0, :2] = 0.0
    x[1, 2, 3, 2:] = 6.0
    return x


def value_and_input_grad(activation: nn.Module, x: torch.Tensor, channels_last: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(activation(x * 1), d(sum(weights * activation(x * 1)))/dx): the product gives in-place ops a non-leaf."""
    leaf = x.clone().requires_grad_(True)
    start = leaf * 1.0
    if channels_last:
        start = start.contiguous(memory_format=torch.channels_last)
    out = activation(start)
    weights = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape) % 7 - 3
    (grad,) = torch.autograd.grad((out * weights).sum(), leaf)
    return out.detach(), grad


@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_input_gradient_equal_torchs_in_place_relu6(channels_last: bool) -> None:
    x = values_with_edges()
    want_value, want_grad = value_and_input_grad(nn.ReLU6(inplace=True), x, channels_last)
    got_value, got_grad = value_and_input_grad(InPlaceReLU6(), x, channels_last)
    assert torch.equal(got_value, want_value)
    assert torch.equal(got_grad, want_grad)
    # the mask is strict at both ends: no gradient at exactly 0 or 6, nor outside
    assert float(got_grad[0, 0, 0, :2].abs().sum()) == 0.0 and float(got_grad[1, 2, 3, 2:].abs().sum()) == 0.0
    assert float(got_grad.abs().sum()) > 0


def test_it_writes_into_its_input_with_and_without_autograd() -> None:
    x = values_with_edges()
    with torch.no_grad():
        same = x.clone()
        assert InPlaceReLU6()(same) is same
        assert torch.equal(same, x.clamp(0, 6))
    start = x.clone().requires_grad_(True) * 1.0
    out = InPlaceReLU6()(start)
    assert out.data_ptr() == start.data_ptr() and torch.equal(out.detach(), x.clamp(0, 6))


def test_a_later_in_place_change_of_its_output_is_refused_as_torch_refuses_it() -> None:
    start = values_with_edges().requires_grad_(True) * 1.0
    out = InPlaceReLU6()(start)
    out.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


class Reuses(nn.Module):
    """A block that needs its activation's input afterwards: an out-of-place ReLU6 must stay out of place."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU6(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(x)
        return (self.act(hidden) + hidden).flatten(1)


def test_only_plain_in_place_relu6_modules_are_swapped() -> None:
    hooked = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU6(inplace=True))
    hooked[1].register_forward_hook(lambda module, inputs, output: output)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU6(inplace=True), Reuses(inplace=False), hooked)
    assert swap_relu6(model) == 1
    assert type(model[1]) is InPlaceReLU6
    assert type(model[2].act) is nn.ReLU6 and type(model[3][1]) is nn.ReLU6


def test_no_module_is_swapped_while_a_global_module_hook_is_registered() -> None:
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU6(inplace=True))
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: output)
    try:
        assert swap_relu6(model) == 0
    finally:
        handle.remove()
    assert type(model[1]) is nn.ReLU6


@pytest.mark.parametrize("inplace", [False, True])
def test_the_prepared_copy_keeps_the_function_of_a_block_that_reuses_the_input(inplace: bool) -> None:
    torch.manual_seed(0)
    model = Reuses(inplace=False).eval()
    if inplace:  # the same block written wrongly on purpose: in place, the sum sees the clamped tensor twice
        model.act = nn.ReLU6(inplace=True)
    x = torch.rand(2, 3, 8, 8) * 4 - 1
    prepared = prepare_for_attack(model)
    want_value, want_grad = value_and_input_grad(model, x)
    got_value, got_grad = value_and_input_grad(prepared, x)
    assert torch.allclose(got_value, want_value, atol=1e-6)
    assert torch.allclose(got_grad, want_grad, atol=1e-6)
    assert (type(prepared.model.act) is InPlaceReLU6) == inplace


def test_the_prepared_mobilenet_runs_on_the_in_place_relu6() -> None:
    from robustft.models.tiny import tiny_mobilenet

    prepared = prepare_for_attack(tiny_mobilenet(num_classes=10).eval())
    kinds = {type(m) for m in prepared.modules()}
    assert InPlaceReLU6 in kinds and nn.ReLU6 not in kinds
