"""The prepared copy kept per model across attack calls: reused only when nothing but values changed, and then
bit for bit a fresh ``prepare_for_attack``; prepared afresh after any change of structure."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from robustft.attacks import pgd, prepare_for_attack, robust_accuracy
from robustft.attacks import prepared_cache as cache
from robustft.attacks.prepared_cache import forget, prepared_copy
from robustft.models.tiny import tiny_cnn, tiny_mobilenet
from robustft.strategies import apply

IMAGES = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _fresh_cache():
    forget()
    yield
    forget()


def _model(seed: int = 0) -> nn.Module:
    return tiny_cnn(num_classes=10, seed=seed).eval()


def _same_tensors(a: nn.Module, b: nn.Module) -> bool:
    left, right = dict(a.named_parameters()) | dict(a.named_buffers()), dict(b.named_parameters()) | dict(
        b.named_buffers())
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


@torch.no_grad()
def _nudge(model: nn.Module) -> None:
    """Every parameter and BatchNorm statistic moves (a training step's kind of change)."""
    for param in model.parameters():
        param.add_(0.05 * torch.randn(param.shape, generator=torch.Generator().manual_seed(3)))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.add_(0.1)
            module.running_var.mul_(1.2)


def test_the_same_copy_is_returned_and_holds_a_fresh_prepares_tensors_after_training():
    model = _model()
    first = prepared_copy(model)
    assert prepared_copy(model) is first
    _nudge(model)
    again = prepared_copy(model)
    assert again is first
    assert _same_tensors(again, prepare_for_attack(model))
    with torch.no_grad():
        assert torch.equal(again(IMAGES), prepare_for_attack(model)(IMAGES))
        torch.testing.assert_close(again(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)


def test_a_write_through_data_which_no_version_counter_sees_is_picked_up():
    model = _model()
    prepared_copy(model)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    version = conv.weight._version
    conv.weight.data.mul_(-1.0)
    assert conv.weight._version == version  # what makes "unchanged since last time" unknowable
    assert _same_tensors(prepared_copy(model), prepare_for_attack(model))


def test_a_replaced_parameter_gives_a_fresh_copy():
    model = _model()
    first = prepared_copy(model)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))
    second = prepared_copy(model)
    assert second is not first
    assert _same_tensors(second, prepare_for_attack(model))


def test_a_replaced_module_gives_a_fresh_copy():
    model = _model()
    first = prepared_copy(model)
    head = model.head_module()
    parent_name, _, child = model.info.head.rpartition(".")
    setattr(model.get_submodule(parent_name), child, nn.Linear(head.in_features, head.out_features))
    second = prepared_copy(model)
    assert second is not first
    with torch.no_grad():
        torch.testing.assert_close(second(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)


def test_a_changed_module_attribute_gives_a_fresh_copy():
    model = _model()
    first = prepared_copy(model)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    with torch.no_grad():
        before = model(IMAGES)
        conv.padding = (0, 0)  # the function changes; no tensor does
        changed = prepared_copy(model)
        assert changed is not first and not torch.allclose(model(IMAGES), before)
        torch.testing.assert_close(changed(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)
    conv.padding = (1, 1)
    restored = prepared_copy(model)  # the copy kept is now the one made for padding 0
    assert restored is not changed
    conv.stride = (2, 2)
    assert prepared_copy(model) is not restored


def test_train_mode_alone_keeps_the_copy_and_still_warns(monkeypatch):
    model = _model()
    first = prepared_copy(model)
    warned = []
    monkeypatch.setattr(cache, "warn_train_mode_batchnorm", warned.append)
    model.train()
    assert prepared_copy(model) is first  # attacks run in eval mode whatever the model's mode
    assert warned == [model]


def test_a_hooked_model_gets_a_fresh_copy_every_call():
    model = tiny_mobilenet(num_classes=10).eval()
    apply(model, "lora", r=2)  # LoRA on convolutions: forward hooks, merged into the copy
    first = prepared_copy(model)
    assert prepared_copy(model) is not first
    with torch.no_grad():
        torch.testing.assert_close(prepared_copy(model)(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)


def test_a_hook_added_after_the_copy_was_kept_gives_a_fresh_copy():
    model = _model()
    first = prepared_copy(model)
    head = model.head_module()
    handle = head.register_forward_hook(lambda module, args, out: out * 2)
    try:
        second = prepared_copy(model)
        assert second is not first
        with torch.no_grad():
            torch.testing.assert_close(second(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)
    finally:
        handle.remove()


def test_a_global_module_hook_turns_the_reuse_off():
    model = _model()
    first = prepared_copy(model)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        assert prepared_copy(model) is not first
    finally:
        handle.remove()


def test_a_changed_dtype_gives_a_fresh_copy():
    model = _model()
    first = prepared_copy(model)
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.data = tensor.data.double()  # the same tensor objects, another dtype (as Module.double() may do)
    second = prepared_copy(model)
    assert second is not first
    assert next(second.parameters()).dtype == torch.float64


def test_each_model_object_has_its_own_copy_and_it_goes_with_the_model():
    one, two = _model(0), _model(1)
    a, b = prepared_copy(one), prepared_copy(two)
    assert a is not b
    assert _same_tensors(b, prepare_for_attack(two))
    assert len(cache._kept) == 2
    del one, a
    gc.collect()
    assert len(cache._kept) == 1


def test_the_switch_turns_the_reuse_off(monkeypatch):
    model = _model()
    first = prepared_copy(model)
    monkeypatch.setenv(cache.ENV, "off")
    assert prepared_copy(model) is not first
    monkeypatch.setenv(cache.ENV, "on")
    assert prepared_copy(model) is first


def test_a_prepared_model_is_used_as_it_is():
    prepared = prepare_for_attack(_model())
    assert prepared_copy(prepared) is prepared


def test_attacks_and_robust_accuracy_give_the_same_results_with_and_without_the_kept_copy(monkeypatch):
    """The reuse changes nothing an attack returns: same points, same verdicts, after the model changed too."""
    model = _model()
    labels = torch.arange(IMAGES.shape[0]) % 10
    results = {}
    for mode in ("off", "on"):
        monkeypatch.setenv(cache.ENV, mode)
        forget()
        runs = []
        for step in range(2):
            if step:
                _nudge(model)
            x = pgd(model, IMAGES, labels, 8 / 255, steps=3, generator=torch.Generator().manual_seed(0))
            acc = robust_accuracy(model, (IMAGES, labels), "pgd", 8 / 255)
            runs.append((x, acc.correct, acc.clean_correct))
        results[mode] = runs
        model = _model()  # the same sequence of models for the other mode
    for (x_off, c_off, k_off), (x_on, c_on, k_on) in zip(results["off"], results["on"], strict=True):
        assert torch.equal(x_off, x_on) and (c_off, k_off) == (c_on, k_on)


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_every_spelling_of_off_turns_the_reuse_off(value: str, monkeypatch) -> None:
    model = _model()
    first = prepared_copy(model)
    monkeypatch.setenv(cache.ENV, value)
    assert prepared_copy(model) is not first


def test_forget_drops_one_models_copy_only() -> None:
    one, two = _model(0), _model(1)
    forget(one)  # never kept: nothing to drop, no error
    a, b = prepared_copy(one), prepared_copy(two)
    forget(one)
    assert prepared_copy(one) is not a and prepared_copy(two) is b


def test_an_attribute_set_to_an_equal_value_keeps_the_copy() -> None:
    model = _model()
    first = prepared_copy(model)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    conv.padding = (int(conv.padding[0]), int(conv.padding[1]))  # a new tuple object, the same values
    assert prepared_copy(model) is first


def test_a_forward_replaced_on_the_instance_gives_a_copy_computing_it() -> None:
    model = _model()
    first = prepared_copy(model)
    head = model.head_module()
    head.forward = lambda x: nn.functional.linear(x, head.weight, head.bias) * 3.0
    second = prepared_copy(model)
    assert second is not first
    with torch.no_grad():
        torch.testing.assert_close(second(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)
    head.forward = lambda x: nn.functional.linear(x, head.weight, head.bias) * -1.0  # replaced again
    third = prepared_copy(model)
    assert third is not second
    with torch.no_grad():
        torch.testing.assert_close(third(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)


def test_a_module_whose_class_changed_gives_a_copy_computing_it() -> None:
    class Doubled(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2.0

    model = _model()
    first = prepared_copy(model)
    model.head_module().__class__ = Doubled  # same object, same tensors and attributes, another function
    second = prepared_copy(model)
    assert second is not first
    with torch.no_grad():
        torch.testing.assert_close(second(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)


def test_the_mobilenets_copy_is_reused_with_its_trailing_batchnorms_refolded() -> None:
    """MobileNetV2's blocks end in a conv + BatchNorm pair that is the last of its Sequential."""
    model = tiny_mobilenet(num_classes=10).eval()
    first = prepared_copy(model)
    _nudge(model)
    assert prepared_copy(model) is first
    assert _same_tensors(first, prepare_for_attack(model))


def test_a_conv_followed_by_an_identity_is_copied_not_folded() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Identity(), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 32 * 32, 3)).eval()
    first = prepared_copy(model)
    _nudge(model)
    again = prepared_copy(model)
    assert again is first
    with torch.no_grad():
        torch.testing.assert_close(again(IMAGES), model(IMAGES), rtol=1e-4, atol=1e-4)


def test_every_attack_runs_on_the_kept_copy_unless_told_not_to_prepare() -> None:
    model = _model()
    labels = torch.arange(IMAGES.shape[0]) % 10
    pgd(model, IMAGES, labels, 2 / 255, steps=1, prepare=False)
    assert model not in cache._kept
    pgd(model, IMAGES, labels, 2 / 255, steps=1)
    assert model in cache._kept
