"""PointwiseConv2d computes its convolution, values and input gradient, takes the matrix product only on small
CPU maps (1 x 1 always; up to MAX_PIXELS in channels_last at stride 1 with frozen weights), and the prepared copy
uses it only for plain 1 x 1 convolutions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks import pointwise_linear
from robustft.attacks.pointwise_linear import MAX_PIXELS, PointwiseConv2d, is_pointwise
from robustft.attacks.prepare import prepare_for_attack, swap_pointwise
from robustft.models.tiny import tiny_mobilenet


def pointwise_pair(bias: bool, stride: int = 1) -> tuple[nn.Conv2d, PointwiseConv2d]:
    """A seeded 1 x 1 convolution (6 -> 5 channels) and a PointwiseConv2d with the same parameters."""
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 1, stride=stride, bias=bias)
    fast = PointwiseConv2d(6, 5, 1, stride=stride, bias=bias)
    fast.load_state_dict(conv.state_dict())
    return conv, fast


def value_and_input_grad(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.clone().requires_grad_(True)
    out = module(leaf)
    weights = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape) % 5 - 2
    (grad,) = torch.autograd.grad((out * weights).sum(), leaf)
    return out.detach(), grad


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_on_a_one_pixel_map_it_equals_the_convolution(bias: bool, stride: int, channels_last: bool) -> None:
    conv, fast = pointwise_pair(bias, stride)
    x = torch.randn(7, 6, 1, 1, generator=torch.Generator().manual_seed(1))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    want_value, want_grad = value_and_input_grad(conv, x)
    got_value, got_grad = value_and_input_grad(fast, x)
    assert got_value.shape == want_value.shape == (7, 5, 1, 1)
    torch.testing.assert_close(got_value, want_value, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-6)
    assert float(got_grad.abs().sum()) > 0


def test_on_a_larger_map_it_is_the_convolution_itself() -> None:
    conv, fast = pointwise_pair(bias=True)
    x = torch.randn(3, 6, 4, 2, generator=torch.Generator().manual_seed(2))
    want_value, want_grad = value_and_input_grad(conv, x)
    got_value, got_grad = value_and_input_grad(fast, x)
    assert torch.equal(got_value, want_value) and torch.equal(got_grad, want_grad)


def count_linear_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    linear = F.linear

    def counting(*args, **kwargs):
        calls.append(1)
        return linear(*args, **kwargs)

    monkeypatch.setattr(pointwise_linear.F, "linear", counting)
    return calls


def test_the_matrix_product_runs_only_on_one_pixel_maps_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_linear_calls(monkeypatch)
    _, fast = pointwise_pair(bias=True)
    fast(torch.randn(2, 6, 1, 1))
    assert len(calls) == 1
    fast(torch.randn(2, 6, 1, 2))
    fast(torch.randn(2, 6, 2, 1))
    assert len(calls) == 1
    # another device keeps the convolution (not measured there): the meta device stands in for CUDA
    out = fast.to("meta")(torch.randn(2, 6, 1, 1, device="meta"))
    assert len(calls) == 1 and out.shape == (2, 5, 1, 1)


def frozen_pair(bias: bool) -> tuple[nn.Conv2d, PointwiseConv2d]:
    conv, fast = pointwise_pair(bias)
    for module in (conv, fast):
        module.requires_grad_(False)
    return conv, fast


def count_small_map_products(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    product = pointwise_linear._channels_last_product

    def counting(*args, **kwargs):
        calls.append(1)
        return product(*args, **kwargs)

    monkeypatch.setattr(pointwise_linear, "_channels_last_product", counting)
    return calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("height, width", [(2, 2), (4, 4), (2, 3), (1, 16), (8, 2), (3, 1)])
def test_on_a_small_channels_last_map_it_equals_the_convolution(
        bias: bool, height: int, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_small_map_products(monkeypatch)
    conv, fast = frozen_pair(bias)
    x = torch.randn(5, 6, height, width, generator=torch.Generator().manual_seed(5))
    x = x.contiguous(memory_format=torch.channels_last)
    want_value, want_grad = value_and_input_grad(conv, x)
    got_value, got_grad = value_and_input_grad(fast, x)
    assert len(calls) == 2  # forward and backward each one product
    torch.testing.assert_close(got_value, want_value, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-6)
    # tensors of their own in channels_last: an in-place op after it must not make autograd copy a base
    assert got_value._base is None and got_value.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), want_value, rtol=1e-6, atol=1e-6)
    assert len(calls) == 3


def test_the_small_map_product_keeps_the_inputs_dtype() -> None:
    conv, fast = frozen_pair(bias=True)
    conv, fast = conv.double(), fast.double()
    x = torch.randn(2, 6, 2, 2, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    want_value, want_grad = value_and_input_grad(conv, x)
    got_value, got_grad = value_and_input_grad(fast, x)
    assert got_value.dtype == got_grad.dtype == torch.float64
    torch.testing.assert_close(got_value, want_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)


def test_an_in_place_relu6_after_the_product_stays_in_place() -> None:
    from robustft.attacks.relu6_in_place import InPlaceReLU6

    _, fast = frozen_pair(bias=True)
    x = torch.randn(3, 6, 2, 2).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = InPlaceReLU6()(fast(x))
    assert out._base is None and type(out.grad_fn).__name__ != "AsStridedBackward0"


def test_the_small_map_product_runs_only_where_it_was_measured_to_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_small_map_products(monkeypatch)
    conv, fast = frozen_pair(bias=True)
    side = int(MAX_PIXELS ** 0.5)
    too_large = torch.randn(2, 6, side + 1, side + 1).contiguous(memory_format=torch.channels_last)
    not_channels_last = torch.randn(2, 6, 2, 2)
    for x in (too_large, not_channels_last):
        assert torch.equal(fast(x), conv(x))
    strided_conv, strided = pointwise_pair(bias=True, stride=2)
    x = torch.randn(2, 6, 4, 4).contiguous(memory_format=torch.channels_last)
    assert torch.equal(strided.requires_grad_(False)(x), strided_conv(x))
    assert calls == []
    # trainable weights get their gradients from the convolution, equal to the convolution's own
    trainable_conv, trainable = pointwise_pair(bias=True)
    x = torch.randn(2, 6, 2, 2).contiguous(memory_format=torch.channels_last)
    for module in (trainable_conv, trainable):
        (module(x) * torch.arange(5.0).view(1, 5, 1, 1)).sum().backward()
    assert calls == []
    assert torch.equal(trainable.weight.grad, trainable_conv.weight.grad)
    assert torch.equal(trainable.bias.grad, trainable_conv.bias.grad)


@pytest.mark.parametrize("conv, expected", [
    (nn.Conv2d(4, 8, 1), True),
    (nn.Conv2d(4, 8, 1, stride=2, bias=False), True),
    (nn.Conv2d(4, 8, 1, padding="same"), True),
    (nn.Conv2d(4, 8, 1, padding="valid"), True),
    (nn.Conv2d(4, 8, 1, padding=1), False),  # a padded 1 x 1 map has 3 x 3 pixels
    (nn.Conv2d(4, 8, 1, padding=(0, 1)), False),
    (nn.Conv2d(4, 8, 1, groups=2), False),  # block-diagonal, not one matrix
    (nn.Conv2d(4, 8, 3), False),
    (nn.Conv2d(4, 8, (1, 3)), False),
])
def test_is_pointwise(conv: nn.Conv2d, expected: bool) -> None:
    assert is_pointwise(conv) is expected


class Net(nn.Module):
    """1 x 1 convolutions of every kind beside one 3 x 3, for swap_pointwise."""

    def __init__(self) -> None:
        super().__init__()
        self.plain = nn.Conv2d(3, 4, 1)
        self.grouped = nn.Conv2d(4, 4, 1, groups=2)
        self.hooked = nn.Conv2d(4, 4, 1)
        self.hooked.register_forward_hook(lambda module, args, out: out * 2)
        self.spatial = nn.Conv2d(4, 4, 3, padding=1)
        self.nested = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nested(self.spatial(self.hooked(self.grouped(self.plain(x)))))


def test_swap_pointwise_changes_only_plain_pointwise_convolutions_and_keeps_their_parameters() -> None:
    net = Net()
    x = torch.randn(2, 3, 1, 1)
    before = net(x)
    weights = {name: param for name, param in net.named_parameters()}
    assert swap_pointwise(net) == 2
    assert type(net.plain) is PointwiseConv2d and type(net.nested[0]) is PointwiseConv2d
    assert all(type(m) is nn.Conv2d for m in (net.grouped, net.hooked, net.spatial))
    assert all(param is weights[name] for name, param in net.named_parameters())
    torch.testing.assert_close(net(x), before, rtol=1e-6, atol=1e-6)


def test_swap_pointwise_changes_nothing_under_global_hooks() -> None:
    net = Net()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        assert swap_pointwise(net) == 0
    finally:
        handle.remove()
    assert type(net.plain) is nn.Conv2d


def test_the_prepared_mobilenet_runs_its_pointwise_layers_as_matrix_products_on_one_pixel_maps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_mobilenet(num_classes=3).eval()
    prepared = prepare_for_attack(model)
    pointwise = [m for m in prepared.modules() if type(m) is PointwiseConv2d]
    assert pointwise and not any(type(m) is nn.Conv2d and is_pointwise(m) and m.groups == 1
                                 for m in prepared.modules())
    assert not any(type(m) is PointwiseConv2d for m in model.modules())  # the user's model is untouched
    calls = count_linear_calls(monkeypatch)
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(prepared(images), model(images), rtol=1e-5, atol=1e-5)
        small = torch.rand(3, 3, 2, 2, generator=torch.Generator().manual_seed(4))  # 1 x 1 after the stem
        linear_before = len(calls)
        torch.testing.assert_close(prepared(small), model(small), rtol=1e-5, atol=1e-5)
    assert len(calls) > linear_before
