"""The attacked ViT's rewrites (attacks/prepare_vit.py) against the unrewritten prepared copy: the same logits,
input gradients and robust verdicts, and no rewrite where it would not be exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustft.attacks.prepare as prepare_module
from robustft.attacks import build_attack, prepare_for_attack, robust_accuracy
from robustft.attacks.prepare_vit import ClassTokenBlock, PatchConv2d, class_token_block, patch_conv, speed_up_vits
from robustft.models.tiny import tiny_vit
from robustft.training.crafting import refresh_plan


def slow_copy(model: nn.Module, monkeypatch: pytest.MonkeyPatch) -> nn.Module:
    """``prepare_for_attack``'s copy without the ViT rewrites (the path they must agree with)."""
    with monkeypatch.context() as patch:
        patch.setattr(prepare_module, "speed_up_vits", lambda model: 0)
        return prepare_for_attack(model)


def input_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = images.clone().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)[0]


def test_patch_conv_gives_the_convolution_and_its_input_gradient() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, kernel_size=(4, 5), stride=(4, 5)).requires_grad_(False)
    fast = patch_conv(conv)
    assert isinstance(fast, PatchConv2d) and fast.weight is conv.weight and fast.bias is conv.bias
    x = torch.rand(2, 3, 18, 23)  # 4 x 4 patches, with 2 rows and 3 columns the convolution never reads
    out_grad = torch.randn(2, 16, 4, 4)
    grads = []
    for module in (conv, fast):
        xg = x.clone().requires_grad_(True)
        out = module(xg)
        grads.append(torch.autograd.grad(out, xg, out_grad)[0])
        if module is fast:
            assert torch.equal(out, conv(x))  # the forward is the convolution itself, bit for bit
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
    assert torch.all(grads[1][:, :, 16:] == 0) and torch.all(grads[1][:, :, :, 20:] == 0)


def test_patch_conv_is_the_plain_convolution_when_its_weights_train() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 4, stride=4)
    fast = patch_conv(conv)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    expected = torch.autograd.grad(conv(x).square().sum(), (x, conv.weight, conv.bias))
    actual = torch.autograd.grad(fast(x).square().sum(), (x, fast.weight, fast.bias))
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e)


def test_prepared_tiny_vit_is_rewritten_with_the_same_logits_and_input_gradient(monkeypatch) -> None:
    model = tiny_vit(num_classes=10).eval()
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    fast, slow = prepare_for_attack(model), slow_copy(model, monkeypatch)
    vit = fast.model.backbone
    assert isinstance(vit.patch_embed.proj, PatchConv2d) and isinstance(vit.blocks[-1], ClassTokenBlock)
    assert not isinstance(vit.blocks[0], ClassTokenBlock)  # only the last block may drop tokens
    with torch.no_grad():
        reference = model(images)
        torch.testing.assert_close(fast(images), reference, rtol=1e-5, atol=1e-5)
    labels = reference.argmax(1)
    torch.testing.assert_close(input_gradient(fast, images, labels), input_gradient(slow, images, labels),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_robust_verdicts_equal_the_unrewritten_copy_sample_by_sample(seed: int, monkeypatch) -> None:
    model = tiny_vit(num_classes=10).eval()
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(24, 3, 32, 32, generator=generator)
    with torch.no_grad():
        labels = model(images).argmax(1)
    labels[16:] = (labels[16:] + 1) % 10  # clean-misclassified: never attacked, non-robust
    results = []
    for target in (prepare_for_attack(model), slow_copy(model, monkeypatch)):
        # A large step (as tests/test_attacks_passes.py): this random tiny ViT is fooled on some samples at 8/255.
        attack = build_attack("pgd", steps=4, step_size=8 / 255, random_start=True,
                              generator=torch.Generator().manual_seed(seed))
        results.append(robust_accuracy(target, (images, labels), attack, 8 / 255, early_stop=False))
    fast, slow = results
    assert fast.clean_correct == slow.clean_correct == 16
    assert 0 < slow.correct < slow.clean_correct  # the attack fools some: the verdicts are not trivially equal
    assert (fast.per_sample == slow.per_sample).all()


def test_no_rewrite_where_it_would_not_be_exact() -> None:
    hooked = tiny_vit(num_classes=10).eval()
    hooked.backbone.blocks[-1].mlp.register_forward_hook(lambda module, args, out: out * 2)
    hooked.backbone.patch_embed.proj.register_forward_pre_hook(lambda module, args: None)
    assert speed_up_vits(hooked) == 0
    averaged = tiny_vit(num_classes=10).eval()
    averaged.backbone.global_pool = "avg"  # every token reaches the head
    assert class_token_block(averaged.backbone) is None
    assert patch_conv(nn.Conv2d(3, 8, 4, stride=4, padding=1)) is None
    assert patch_conv(nn.Conv2d(8, 8, 1)) is None  # a pointwise conv is no patch embedding


def test_a_rebuilt_block_that_differs_on_the_probe_is_not_used(monkeypatch) -> None:
    import robustft.attacks.prepare_vit as prepare_vit

    vit = tiny_vit(num_classes=10).eval().backbone
    assert class_token_block(vit) is not None
    monkeypatch.setattr(prepare_vit, "_attend_class_token", lambda attn, y: attn.proj(y[:, 1:2]))
    assert class_token_block(vit) is None


def test_the_training_copy_still_refreshes_by_name() -> None:
    model = tiny_vit(num_classes=10).eval()
    prepared = prepare_for_attack(model)
    assert refresh_plan(model, prepared) is not None
    assert isinstance(prepared.model.backbone.blocks[-1], ClassTokenBlock)


def test_preparing_a_cnn_never_imports_timm() -> None:
    """A timm ViT cannot exist before timm's ViT module is imported, so preparing a CNN must not import timm to look
    for one (it cost every CNN run 0.7 s in its first evaluation). A fresh interpreter: this one has timm loaded."""
    import subprocess
    import sys

    script = ("import sys, torch; from robustft.models.tiny import tiny_cnn; "
              "from robustft.attacks import prepare_for_attack; "
              "assert 'timm.models.vision_transformer' not in sys.modules; "
              "prepare_for_attack(tiny_cnn(num_classes=3).eval()); "
              "print('timm.models.vision_transformer' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
