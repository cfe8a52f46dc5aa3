"""The small-map depthwise product: torch.conv2d's values and gradients, taken exactly where it should be."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from robustft.training import small_map_depthwise
from robustft.training.small_map_depthwise import (
    MAX_PIXELS,
    SmallMapDepthwise,
    depthwise_as_product,
    small_map_depthwise_applies,
    tap_index,
)


@pytest.fixture(autouse=True)
def _no_cached_tap_index():
    """Each test computes its tap indices afresh: a cache filled elsewhere would hide a wrong computation."""
    small_map_depthwise._TAP_INDEX.clear()
    yield
    small_map_depthwise._TAP_INDEX.clear()


GEOMETRIES = [  # (height, width, kernel, stride, padding)
    (h, w, k, s, p)
    for (h, w), k, s, p in itertools.product([(1, 1), (1, 2), (2, 1), (2, 2), (1, 4), (4, 1)],
                                             [(3, 3), (1, 1), (5, 5), (3, 1)], [(1, 1), (2, 2), (1, 2)],
                                             [(0, 0), (1, 1), (2, 2), (1, 0)])
    if h + 2 * p[0] >= k[0] and w + 2 * p[1] >= k[1]
]


def _inputs(h: int, w: int, k: tuple[int, int], channels: int = 5, batch: int = 3, bias: bool = True):
    generator = torch.Generator().manual_seed(h * 100 + w * 10 + k[0])
    x = torch.randn(batch, channels, h, w, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(channels, 1, *k, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(channels, generator=generator, dtype=torch.float64, requires_grad=True) if bias else None
    return x, weight, b


def _values_and_gradients(fn, x, weight, bias):
    out = fn(x, weight, bias)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    wanted = [t for t in (x, weight, bias) if t is not None]
    return out.detach(), torch.autograd.grad((out * upstream).sum(), wanted)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("h", "w", "kernel", "stride", "padding"), GEOMETRIES)
def test_the_product_is_conv2d_with_its_gradients(h, w, kernel, stride, padding, bias):
    x, weight, b = _inputs(h, w, kernel, bias=bias)
    channels = x.shape[1]
    expected, expected_grads = _values_and_gradients(
        lambda x, wt, bb: F.conv2d(x, wt, bb, stride, padding, 1, channels), x, weight, b)
    actual, grads = _values_and_gradients(lambda x, wt, bb: depthwise_as_product(x, wt, bb, stride, padding),
                                          x, weight, b)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    for got, want, what in zip(grads, expected_grads, ("input", "weight", "bias"), strict=False):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=lambda m, what=what: f"{what}: {m}")


def test_the_tap_index_joins_pixels_through_the_right_taps():
    index = tap_index(2, 2, (3, 3), (1, 1), (1, 1))
    assert index.shape == (4, 4)
    # input pixel (0, 0) meets output (0, 0) at the kernel's centre (tap 4), output (1, 1) at its top-left (tap 0)
    assert index[0, 0] == 4 and index[0, 3] == 0 and index[3, 0] == 8 and index[1, 0] == 5
    one = tap_index(1, 1, (3, 3), (2, 2), (1, 1))
    assert one.tolist() == [[4]]
    assert tap_index(2, 2, (3, 3), (1, 1), (1, 1)) is index  # cached


def test_a_tap_that_joins_no_pixel_points_at_the_appended_zero():
    index = tap_index(1, 1, (3, 3), (1, 1), (2, 2))  # 1 x 1 input padded by 2: a 3 x 3 output
    assert index.shape == (1, 9)
    # output (r, c) reads input (0, 0) through tap (2 - r, 2 - c) of the 3 x 3 kernel: every tap exactly once
    assert index[0].tolist() == [8, 7, 6, 5, 4, 3, 2, 1, 0]
    index = tap_index(1, 2, (1, 1), (1, 1), (1, 1))  # a 1 x 1 kernel with padding: border outputs read padding only
    assert (index == 1).sum() == 2 * 3 * 4 - 2 and (index == 0).sum() == 2


def test_channels_last_in_gives_channels_last_out():
    x, weight, bias = _inputs(2, 2, (3, 3), channels=6)
    out = depthwise_as_product(x.detach().contiguous(memory_format=torch.channels_last), weight, bias, (1, 1), (1, 1))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    assert depthwise_as_product(x, weight, bias, (1, 1), (1, 1)).is_contiguous()


def _spy(monkeypatch) -> list:
    calls = []
    real = small_map_depthwise.depthwise_as_product

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(small_map_depthwise, "depthwise_as_product", counted)
    return calls


def test_the_mode_takes_the_product_for_a_trained_depthwise_conv_on_a_small_map(monkeypatch):
    calls = _spy(monkeypatch)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8).double()
    x = torch.randn(4, 8, 2, 2, dtype=torch.float64)
    expected = conv(x)
    with SmallMapDepthwise():
        actual = conv(x)
        keyword = F.conv2d(x, weight=conv.weight, bias=conv.bias, padding=1, groups=8)
    assert len(calls) == 2
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(keyword, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["frozen weight", "no grad", "groups 1", "depth multiplier 2", "dilation 2",
                                  "3 x 3 map", "padding 'same'", "unbatched", "meta device", "one channel",
                                  "integer input"])
def test_the_mode_leaves_every_other_convolution_to_torch(monkeypatch, case):
    calls = _spy(monkeypatch)
    channels, side, groups, out_channels, dilation, padding = 6, 2, 6, 6, 1, 1
    if case == "groups 1":
        groups = 1
    if case == "depth multiplier 2":
        out_channels = 12
    if case == "dilation 2":
        dilation, padding = 2, 2
    if case == "3 x 3 map":
        side = 3
    if case == "padding 'same'":
        padding = "same"
    if case == "one channel":
        channels = out_channels = groups = 1
    conv = torch.nn.Conv2d(channels, out_channels, 3, padding=padding, dilation=dilation, groups=groups)
    x = torch.randn(2, channels, side, side)
    if case == "frozen weight":
        conv.weight.requires_grad_(False)
    if case == "unbatched":
        x = x[0]
    if case == "meta device":
        conv, x = conv.to("meta"), x.to("meta")
    with SmallMapDepthwise():
        if case == "integer input":
            applies = small_map_depthwise_applies(x.to(torch.int64), conv.weight, 1, channels, 1)
            assert not applies
        elif case == "no grad":
            with torch.no_grad():
                conv(x)
        else:
            conv(x)
    assert calls == []


def test_the_limit_is_four_pixels():
    weight = torch.randn(4, 1, 3, 3, requires_grad=True)
    assert MAX_PIXELS == 4
    assert small_map_depthwise_applies(torch.randn(2, 4, 2, 2), weight, 1, 4, 1)
    assert small_map_depthwise_applies(torch.randn(2, 4, 1, 4), weight, 1, 4, 1)
    assert not small_map_depthwise_applies(torch.randn(2, 4, 1, 5), weight, 1, 4, 1)
    assert not small_map_depthwise_applies(torch.randn(2, 4, 1, 1), weight, 1, 4, 0)  # no valid output
    assert small_map_depthwise_applies(torch.randn(2, 4, 1, 1), weight, (1, 1), 4, (1, 1))
    assert not small_map_depthwise_applies(torch.randn(2, 4, 1, 1), weight, (1, 2), 4, (1, 1))


def _trained(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, requires_grad=True)


@pytest.mark.parametrize(("images", "weight", "padding", "applies"), [
    ((2, 2, 1, 1), (2, 1, 3, 3), 1, True),  # two channels are a depthwise convolution too
    ((3, 4, 1), (4, 1, 3, 3), 1, False),  # unbatched C x H x W (its second size only looks like channels)
    ((2, 4, 1, 4), (4, 1, 3, 3), 0, False),  # rows: 1 + 0 < 3, no output
    ((2, 4, 4, 1), (4, 1, 1, 3), 0, False),  # columns: 1 + 0 < 3, no output
    ((2, 4, 1, 1), (4, 1, 4, 4), 1, False),  # 1 + 2 < 4
    ((2, 4, 1, 1), (4, 1, 4, 4), (1, 2), False),  # rows 1 + 2 < 4 though columns 1 + 4 >= 4
    ((2, 4, 1, 1), (4, 1, 1, 4), (0, 1), False),  # columns 1 + 2 < 4
    ((2, 4, 1, 1), (4, 1, 1, 5), (0, 2), True),  # columns 1 + 4 >= 5
])
def test_the_geometry_decides(images, weight, padding, applies):
    weight_tensor = _trained(weight)
    assert small_map_depthwise_applies(torch.randn(images), weight_tensor, 1, weight[0], padding) is applies


def test_anything_but_two_tensors_is_left_alone():
    weight = _trained((4, 1, 3, 3))
    assert not small_map_depthwise_applies(None, weight, 1, 4, 1)
    assert not small_map_depthwise_applies(torch.randn(2, 4, 1, 1), None, 1, 4, 1)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [((3, 3), [2], [1]), ((3, 1), (1, 2), (1, 0)),
                                                        ((1, 3), (2, 1), (0, 1)), ((3, 1), 1, (1, 0))])
def test_the_mode_reads_strides_and_paddings_as_torch_does(monkeypatch, kernel, stride, padding):
    calls = _spy(monkeypatch)
    x = torch.randn(3, 6, 2, 2, dtype=torch.float64)
    weight = torch.randn(6, 1, *kernel, dtype=torch.float64, requires_grad=True)
    expected = F.conv2d(x, weight, None, stride, padding, 1, 6)
    with SmallMapDepthwise():
        actual = F.conv2d(x, weight, None, stride, padding, 1, 6)
    assert len(calls) == 1
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_every_other_call_keeps_its_keyword_arguments():
    x = torch.randn(3, 4, 5)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4)
    conv.weight.requires_grad_(False)
    image = torch.randn(2, 4, 2, 2)
    with SmallMapDepthwise():
        summed = torch.sum(x, dim=1)
        frozen = F.conv2d(image, conv.weight, bias=conv.bias, padding=1, groups=4)
    assert torch.equal(summed, torch.sum(x, dim=1))
    assert torch.equal(frozen, F.conv2d(image, conv.weight, bias=conv.bias, padding=1, groups=4))
