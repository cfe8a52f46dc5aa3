"""The stem's input gradient as one matrix product and four phase sums equals the convolution's, on every shape;
StemConv2d takes that path only where it was measured to pay and the weights need no gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks import stem_input_grad as stem_module
from robustft.attacks.prepare import prepare_for_attack, swap_stem
from robustft.attacks.stem_input_grad import MAX_INPUT_PIXELS, StemConv2d, is_stem, stem_input_grad
from robustft.models.tiny import tiny_cnn, tiny_mobilenet


def convolution_input_grad(grad: torch.Tensor, weight: torch.Tensor, x_shape: tuple[int, ...]) -> torch.Tensor:
    """torch's own input gradient of conv2d(x, weight, stride=2, padding=1) (the slow path, independent)."""
    x = torch.zeros(x_shape)
    return torch.ops.aten.convolution_backward(grad, x, weight, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                                               [True, False, False])[0]


@pytest.mark.parametrize("height, width", [(32, 32), (31, 31), (32, 7), (6, 9), (2, 2), (1, 1), (1, 4)])
@pytest.mark.parametrize("c_in", [1, 3, 4])
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_input_gradient_equals_the_convolutions(height: int, width: int, c_in: int, channels_last: bool) -> None:
    generator = torch.Generator().manual_seed(height * 100 + width + c_in)
    weight = torch.randn(5, c_in, 3, 3, generator=generator)
    h_o, w_o = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    grad = torch.randn(3, 5, h_o, w_o, generator=generator)
    if channels_last:
        grad = grad.contiguous(memory_format=torch.channels_last)
    want = convolution_input_grad(grad, weight, (3, c_in, height, width))
    got = stem_input_grad(grad, weight, height, width)
    assert got.shape == (3, c_in, height, width)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert float(want.abs().min()) > 0 or height * width < 4  # every input pixel receives a tap at these sizes


def test_every_tap_lands_where_the_adjoint_puts_it() -> None:
    """One output pixel, one tap at a time: the gradient is that tap's weight at exactly one input pixel (a
    swapped tap or phase would move it; a sum over the wrong neighbour would add a second pixel)."""
    for u in range(3):
        for v in range(3):
            weight = torch.zeros(1, 1, 3, 3)
            weight[0, 0, u, v] = 1.0
            grad = torch.zeros(1, 1, 3, 3)
            grad[0, 0, 1, 1] = 1.0  # output pixel (1, 1) reads input pixel (2 + u - 1, 2 + v - 1)
            got = stem_input_grad(grad, weight, 6, 6)
            expected = torch.zeros(1, 1, 6, 6)
            expected[0, 0, 1 + u, 1 + v] = 1.0
            assert torch.equal(got, expected), (u, v)


def test_even_sizes_return_the_written_tensor_itself_and_odd_ones_a_dense_copy() -> None:
    weight = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(5))
    even = stem_input_grad(torch.randn(2, 4, 5, 4), weight, 10, 8)
    odd = stem_input_grad(torch.randn(2, 4, 5, 4), weight, 9, 7)
    assert even._base is None  # no crop, no copy
    assert odd.shape == (2, 3, 9, 7) and odd.is_contiguous(memory_format=torch.channels_last)


def test_the_gradient_takes_the_output_gradients_dtype() -> None:
    """A float64 output gradient with float32 weights: a float64 input gradient, equal to float64 autograd's."""
    generator = torch.Generator().manual_seed(6)
    weight = torch.randn(5, 3, 3, 3, generator=generator)
    grad = torch.randn(2, 5, 4, 3, generator=generator, dtype=torch.float64)
    got = stem_input_grad(grad, weight, 8, 6)
    assert got.dtype == torch.float64
    want = torch.ops.aten.convolution_backward(grad, torch.zeros(2, 3, 8, 6, dtype=torch.float64), weight.double(),
                                               None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                                               [True, False, False])[0]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def stem_pair(bias: bool) -> tuple[nn.Conv2d, StemConv2d]:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=bias)
    fast = StemConv2d(3, 6, 3, stride=2, padding=1, bias=bias)
    fast.load_state_dict(conv.state_dict())
    for module in (conv, fast):
        module.requires_grad_(False)
    return conv, fast


def value_and_input_grad(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.clone().requires_grad_(True)
    out = module(leaf)
    weights = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape) % 7 - 3
    (grad,) = torch.autograd.grad((out * weights).sum(), leaf)
    return out.detach(), grad


def count_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = stem_module.stem_input_grad

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(stem_module, "stem_input_grad", counting)
    return calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("height, width", [(32, 32), (17, 17), (16, 9), (7, 12)])
def test_stem_conv_computes_the_convolution_and_its_input_gradient(
        bias: bool, height: int, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    conv, fast = stem_pair(bias)
    x = torch.rand(4, 3, height, width, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=torch.channels_last)
    want_value, want_grad = value_and_input_grad(conv, x)
    got_value, got_grad = value_and_input_grad(fast, x)
    assert len(calls) == 1  # the fast path ran
    assert torch.equal(got_value, want_value)  # the forward is the convolution itself
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-5)
    assert float(got_grad.abs().sum()) > 0


def test_the_fast_path_runs_only_where_it_pays_and_nothing_else_needs_a_gradient(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    _, fast = stem_pair(bias=True)
    small = torch.rand(2, 3, 8, 8)
    value_and_input_grad(fast, small)
    assert len(calls) == 1
    value_and_input_grad(fast, torch.rand(2, 3, MAX_INPUT_PIXELS // 16 + 1, 8))  # more pixels: oneDNN wins there
    assert len(calls) == 1
    value_and_input_grad(fast, torch.rand(2, 3, MAX_INPUT_PIXELS // 16, 8))  # exactly the limit: the product
    assert len(calls) == 2
    calls.clear()
    value_and_input_grad(fast, small)
    assert len(calls) == 1
    with torch.no_grad():
        fast(small)  # no gradient wanted
    fast(small)  # an input that needs no gradient
    assert len(calls) == 1
    fast.weight.requires_grad_(True)  # a trainable weight must get its gradient from the convolution
    leaf = small.clone().requires_grad_(True)
    fast(leaf).sum().backward()
    assert len(calls) == 1 and fast.weight.grad is not None and float(fast.weight.grad.abs().sum()) > 0
    fast.weight.requires_grad_(False)
    fast.bias.requires_grad_(True)
    fast(small.clone().requires_grad_(True)).sum().backward()
    assert len(calls) == 1 and fast.bias.grad is not None
    fast.bias.requires_grad_(False)
    out = fast.to("meta")(torch.randn(2, 3, 8, 8, device="meta", requires_grad=True))  # not the CPU: the conv
    assert len(calls) == 1 and out.shape == (2, 6, 4, 4)


@pytest.mark.parametrize("conv, expected", [
    (nn.Conv2d(3, 32, 3, stride=2, padding=1), True),
    (nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), True),
    (nn.Conv2d(4, 8, 3, stride=2, padding=1), True),
    (nn.Conv2d(5, 8, 3, stride=2, padding=1), False),  # not an image's few channels
    (nn.Conv2d(3, 8, 3, stride=1, padding=1), False),
    (nn.Conv2d(3, 8, 3, stride=2, padding=0), False),
    (nn.Conv2d(3, 8, 7, stride=2, padding=3), False),
    (nn.Conv2d(3, 8, 3, stride=2, padding=1, dilation=2), False),
    (nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3), False),
    (nn.Conv2d(3, 8, 3, stride=2, padding=1, padding_mode="reflect"), False),
])
def test_is_stem(conv: nn.Conv2d, expected: bool) -> None:
    assert is_stem(conv) is expected


def test_swap_stem_changes_only_plain_stems_and_keeps_their_parameters() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1))
    hooked = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    hooked.register_forward_hook(lambda module, args, out: out * 2)
    net.append(nn.Sequential(hooked))
    weights = {name: param for name, param in net.named_parameters()}
    assert swap_stem(net) == 1
    assert type(net[0]) is StemConv2d and type(net[1]) is nn.Conv2d and type(hooked) is nn.Conv2d
    assert all(param is weights[name] for name, param in net.named_parameters())
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        assert swap_stem(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1))) == 0
    finally:
        handle.remove()


def test_the_prepared_mobilenet_takes_its_stems_input_gradient_this_way(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    model = tiny_mobilenet(num_classes=3).eval()
    prepared = prepare_for_attack(model)
    assert sum(type(m) is StemConv2d for m in prepared.modules()) == 1
    assert not any(type(m) is StemConv2d for m in model.modules())  # the user's model is untouched
    assert not any(type(m) is StemConv2d for m in prepare_for_attack(tiny_cnn(num_classes=3).eval()).modules())
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    _, want = value_and_input_grad(model, images)
    _, got = value_and_input_grad(prepared, images)
    assert len(calls) == 1
    assert F.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.9999
