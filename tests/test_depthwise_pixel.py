"""DepthwisePixelConv2d computes its convolution, values and input gradient, takes the per-channel scale only on a
1 x 1 CPU map, and the prepared copy uses it only for plain centred depthwise convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustft.attacks import depthwise_pixel
from robustft.attacks.depthwise_pixel import DepthwisePixelConv2d, is_centred_depthwise
from robustft.attacks.prepare import prepare_for_attack, swap_depthwise_pixel
from robustft.models.tiny import tiny_mobilenet


def depthwise_pair(bias: bool, kernel: int = 3, stride: int = 1) -> tuple[nn.Conv2d, DepthwisePixelConv2d]:
    torch.manual_seed(0)
    options = dict(stride=stride, padding=kernel // 2, groups=6, bias=bias)
    conv = nn.Conv2d(6, 6, kernel, **options)
    fast = DepthwisePixelConv2d(6, 6, kernel, **options)
    fast.load_state_dict(conv.state_dict())
    return conv, fast


def value_and_input_grad(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.clone().requires_grad_(True)
    out = module(leaf)
    weights = torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape) % 5 - 2
    (grad,) = torch.autograd.grad((out * weights).sum(), leaf)
    return out.detach(), grad


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel, stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_on_a_one_pixel_map_it_equals_the_convolution(bias: bool, kernel: int, stride: int) -> None:
    conv, fast = depthwise_pair(bias, kernel, stride)
    x = torch.randn(7, 6, 1, 1, generator=torch.Generator().manual_seed(1))
    want_value, want_grad = value_and_input_grad(conv, x)
    got_value, got_grad = value_and_input_grad(fast, x)
    assert got_value.shape == want_value.shape == (7, 6, 1, 1)
    torch.testing.assert_close(got_value, want_value, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-6)
    assert int((got_grad != 0).sum()) >= got_grad.numel() // 2  # the zero output weights give the zeros


def test_the_weights_still_get_their_gradient_on_a_one_pixel_map() -> None:
    conv, fast = depthwise_pair(bias=True)
    x = torch.randn(4, 6, 1, 1, generator=torch.Generator().manual_seed(2))
    for module in (conv, fast):
        (module(x) * torch.arange(6.0).view(1, 6, 1, 1)).sum().backward()
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad)
    torch.testing.assert_close(fast.bias.grad, conv.bias.grad)


def count_scale_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    addcmul = torch.addcmul

    def counting(*args, **kwargs):
        calls.append(1)
        return addcmul(*args, **kwargs)

    monkeypatch.setattr(depthwise_pixel.torch, "addcmul", counting)
    return calls


def test_any_other_map_or_device_is_the_convolution_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    conv, fast = depthwise_pair(bias=True)
    calls = count_scale_calls(monkeypatch)
    fast(torch.randn(2, 6, 1, 1))
    assert len(calls) == 1
    for shape in ((3, 6, 2, 2), (3, 6, 1, 2), (3, 6, 4, 1)):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
        want_value, want_grad = value_and_input_grad(conv, x)
        got_value, got_grad = value_and_input_grad(fast, x)
        assert torch.equal(got_value, want_value) and torch.equal(got_grad, want_grad)
    assert len(calls) == 1
    out = fast.to("meta")(torch.randn(2, 6, 1, 1, device="meta"))  # another device keeps the convolution
    assert len(calls) == 1 and out.shape == (2, 6, 1, 1)


@pytest.mark.parametrize("conv, expected", [
    (nn.Conv2d(8, 8, 3, padding=1, groups=8), True),
    (nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), True),
    (nn.Conv2d(8, 8, 5, padding=2, groups=8), True),
    (nn.Conv2d(8, 8, (3, 5), padding=(1, 2), groups=8), True),
    (nn.Conv2d(8, 8, 3, padding=0, groups=8), False),  # not centred: a 1 x 1 map gives no output
    (nn.Conv2d(8, 8, 4, padding=2, groups=8), False),  # even kernel: no centre tap
    (nn.Conv2d(8, 8, 3, padding="same", groups=8), False),
    (nn.Conv2d(8, 8, 3, padding=1, groups=4), False),  # grouped, not depthwise
    (nn.Conv2d(8, 16, 3, padding=1, groups=8), False),  # a channel multiplier
    (nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8), False),
    (nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="circular"), False),
    (nn.Conv2d(8, 8, 3, padding=1), False),
])
def test_is_centred_depthwise(conv: nn.Conv2d, expected: bool) -> None:
    assert is_centred_depthwise(conv) is expected


def test_swap_changes_only_plain_centred_depthwise_convolutions_and_keeps_their_parameters() -> None:
    hooked = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    hooked.register_forward_hook(lambda module, args, out: out * 2)
    net = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Conv2d(4, 4, 3, padding=1), hooked)
    weights = {name: param for name, param in net.named_parameters()}
    assert swap_depthwise_pixel(net) == 1
    assert type(net[0]) is DepthwisePixelConv2d and type(net[1]) is nn.Conv2d and type(net[2]) is nn.Conv2d
    assert all(param is weights[name] for name, param in net.named_parameters())
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        assert swap_depthwise_pixel(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4))) == 0
    finally:
        handle.remove()


def test_the_prepared_mobilenet_scales_its_depthwise_layers_on_one_pixel_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_mobilenet(num_classes=3).eval()
    prepared = prepare_for_attack(model)
    assert sum(type(m) is DepthwisePixelConv2d for m in prepared.modules()) == 4
    assert not any(type(m) is DepthwisePixelConv2d for m in model.modules())  # the user's model is untouched
    calls = count_scale_calls(monkeypatch)
    images = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(4))  # 4 px: the last maps are 1 x 1
    _, want = value_and_input_grad(model, images)
    _, got = value_and_input_grad(prepared, images)
    assert len(calls) >= 2
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
