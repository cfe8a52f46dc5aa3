"""InPlaceReLU6 computes nn.ReLU6(inplace=True), values and input gradient, and the prepared copy uses it only where
that is safe (plain, in-place modules; no global hooks)."""

from __future__ import annotations

import copy

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


@pytest.mark.parametrize("bounds", [(0.0, 0.5), (-1.0, 6.0)])
def test_a_relu6_whose_bounds_were_changed_keeps_its_own_and_the_prepared_copy_its_function(bounds) -> None:
    """A newcomer found this: ``max_val`` set on an ``nn.ReLU6`` was clamped to 6 in the attacked copy."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU6(inplace=True), nn.Flatten(), nn.Linear(64, 3))
    model[1].min_val, model[1].max_val = bounds
    assert swap_relu6(copy.deepcopy(model)) == 0
    x = torch.rand(2, 3, 4, 4) * 4
    with torch.no_grad():
        torch.testing.assert_close(prepare_for_attack(model)(x), model.eval()(x))


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


class _SameGradient(torch.autograd.Function):
    """a + b whose backward hands the very same gradient tensor to both inputs (as a sum's backward may)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, grad


class _SharedMemoryGradient(_SameGradient):
    """As _SameGradient, but the second input gets another tensor on the same memory (no view, no shared object)."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad.detach(), grad


def _conv() -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, 3, padding=1)
    for param in conv.parameters():
        param.requires_grad_(False)
    return conv


CONV = _conv()
# Each builds a function of the ReLU6 module ``act`` and its input ``x``. In the ones that share, the other branch is
# created first, so autograd runs the ReLU6's backward while the other branch still holds its gradient.
GRAPHS = {
    "a conv after it (masked in place)": (lambda act, x: CONV(act(x)), True),
    "the same gradient tensor to two branches": (lambda act, x: _SameGradient.apply(x * 2, act(x.clone())), False),
    "a sum's gradient, which torch's add hands to both inputs": (lambda act, x: x * 2 + act(x.clone()), False),
    "another tensor on the gradient's memory": (lambda act, x: _SharedMemoryGradient.apply(x * 2, act(x.clone())),
                                                False),
    "an expanded gradient (a plain sum after it)": (lambda act, x: act(x).sum(dim=(2, 3), keepdim=True), False),
}


def test_a_fresh_gradients_reference_count_was_measured() -> None:
    from robustft.attacks import relu6_in_place

    assert relu6_in_place._fresh[0] is not None and relu6_in_place._fresh[0] > 1
    assert relu6_in_place._fresh_references() == relu6_in_place._fresh[0]  # measured again: the same count


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_the_gradient_is_masked_in_place_only_where_nothing_else_reads_it(graph: str, monkeypatch) -> None:
    from robustft.attacks import relu6_in_place

    build, in_place = GRAPHS[graph]
    decisions: list[bool] = []
    decide = relu6_in_place.mask_in_place
    monkeypatch.setattr(relu6_in_place, "mask_in_place", lambda g, like, refs: decisions.append(
        decide(g, like, refs)) or decisions[-1])
    x = values_with_edges()
    _, want = value_and_input_grad(lambda t: build(nn.ReLU6(inplace=True), t), x)
    _, got = value_and_input_grad(lambda t: build(InPlaceReLU6(), t), x)
    assert torch.equal(got, want)
    assert decisions == [in_place]


def test_a_gradient_a_hook_keeps_is_not_masked_under_it() -> None:
    kept: list[torch.Tensor] = []
    leaf = values_with_edges().requires_grad_(True)
    out = InPlaceReLU6()(leaf * 1.0)
    out.register_hook(lambda g: kept.append(g))
    weights = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape) % 7 - 3
    torch.autograd.grad((CONV(out) * weights[:, :, :, :]).sum(), leaf)
    reference = values_with_edges().requires_grad_(True)
    plain = nn.ReLU6(inplace=True)(reference * 1.0)
    (want,) = torch.autograd.grad((CONV(plain) * weights).sum(), plain)
    assert torch.equal(kept[0], want)  # the unmasked gradient of the ReLU6's output, as the hook saw it


def test_owned_alone_refuses_views_graph_tensors_and_other_shapes() -> None:
    from robustft.attacks.relu6_in_place import owned_alone

    like = torch.zeros(2, 3, 4, 4)
    assert owned_alone(torch.ones(2, 3, 4, 4), like)
    assert owned_alone(torch.ones(2, 3, 4, 4).contiguous(memory_format=torch.channels_last), like)
    assert not owned_alone(torch.ones(4, 3, 4, 4)[:2], like)  # a view
    assert not owned_alone(torch.ones(2, 3, 4, 4, requires_grad=True), like)
    assert not owned_alone(torch.ones(2, 3, 4, 5), like)
    assert not owned_alone(torch.empty_strided((2, 3, 4, 4), (100, 30, 6, 1)), like)  # gaps, not a view
    kept = torch.ones(2, 3, 4, 4)
    also = kept  # noqa: F841 - a second Python name is not a second tensor reference
    assert owned_alone(kept, like)
