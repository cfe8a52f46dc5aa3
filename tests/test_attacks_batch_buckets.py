"""A prepared CNN runs on the CPU at rounded batch sizes (attacks/prepare.py ``bucket_size``), padding with zero
images, and returns exactly the given images' logits and gradients: the rounding keeps oneDNN's compiled kernels
reusable while an early-stopping attack shrinks its batch, and must not change any number."""

from __future__ import annotations

import pytest
import torch

from batch_recorder import BatchSizes
from robustft.attacks import prepare, prepare_for_attack
from robustft.attacks.prepare import bucket_size
from robustft.models.tiny import tiny_mobilenet, tiny_vit


@pytest.mark.parametrize("count, expected", [(0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (8, 8), (9, 16), (16, 16),
                                             (17, 24), (255, 256), (256, 256), (257, 264)])
def test_sizes_round_up_to_a_multiple_of_eight_or_a_power_of_two(count: int, expected: int) -> None:
    assert bucket_size(count) == expected


def test_few_sizes_ever_and_little_padding() -> None:
    sizes = [bucket_size(n) for n in range(1, 257)]
    assert all(n <= size < n + 8 for n, size in zip(range(9, 257), sizes[8:], strict=True))
    assert len(set(sizes)) == 35
    assert [bucket_size(n, step=1) for n in (3, 17, 255)] == [3, 17, 255]  # step 1: no rounding


@pytest.mark.parametrize("count", [3, 13, 21])
def test_a_cnn_runs_padded_and_returns_the_given_images_logits_and_gradients(count: int) -> None:
    model = tiny_mobilenet(num_classes=5).eval()
    prepared = prepare_for_attack(model)
    recorder = BatchSizes(prepared.model)
    prepared.model = recorder
    x = torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(count))
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    logits = prepared(xs[0])
    assert recorder.sizes == [bucket_size(count)] and bucket_size(count) > count
    reference = model(xs[1])
    assert logits.shape == reference.shape == (count, 5)
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-5)
    weights = torch.randn(count, 5, generator=torch.Generator().manual_seed(0))
    (gradient,) = torch.autograd.grad((logits * weights).sum(), xs[0])
    (expected,) = torch.autograd.grad((reference * weights).sum(), xs[1])
    torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_rounding_off_and_vits_run_at_the_given_size(monkeypatch: pytest.MonkeyPatch) -> None:
    vit = prepare_for_attack(tiny_vit(num_classes=5).eval())
    vit.model = recorder = BatchSizes(vit.model)
    vit(torch.rand(3, 3, 32, 32))
    assert recorder.sizes == [3]  # not a CNN: no oneDNN convolution kernels to keep
    monkeypatch.setattr(prepare, "BATCH_STEP", 1)
    cnn = prepare_for_attack(tiny_mobilenet(num_classes=5).eval())
    cnn.model = recorder = BatchSizes(cnn.model)
    cnn(torch.rand(3, 3, 32, 32))
    assert recorder.sizes == [3]


def test_any_step_above_one_rounds_and_one_does_not() -> None:
    assert [bucket_size(count, step=2) for count in (1, 2, 3, 5)] == [1, 2, 4, 6]
    assert [bucket_size(count, step=1) for count in (1, 3, 7)] == [1, 3, 7]


def test_a_prepared_cnn_keeps_the_models_info_and_channels_last_weights() -> None:
    model = tiny_mobilenet(num_classes=10).eval()
    prepared = prepare_for_attack(model)
    assert prepared.info == model.info and prepared.info is not None
    convs = [m for m in prepared.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
