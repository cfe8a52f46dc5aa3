"""BatchNorm folding never changes the function: hooked modules stay unfolded, merged adaptations fold again."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from robustft import strategies
from robustft.attacks import fold_conv_bn, prepare_for_attack
from robustft.attacks.pointwise_linear import PointwiseConv2d
from robustft.attacks.stem_input_grad import StemConv2d
from robustft.models.tiny import tiny_cnn, tiny_mobilenet
from robustft.strategies.hooks import attach


class Scale(nn.Module):
    """Multiplies channel c by 1 + c / 10: a stand-in for a strategy's per-channel module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + torch.arange(x.shape[1], dtype=x.dtype) / 10).view(1, -1, 1, 1)


def _net() -> nn.Module:
    """The tiny CNN (4 conv -> BN pairs) with BatchNorm statistics far from the identity, in eval mode."""
    net = tiny_cnn(num_classes=3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 1.0, generator=generator)
                module.running_var.copy_(0.2 + 3 * torch.rand(module.num_features, generator=generator))
                module.weight.copy_(0.5 + torch.rand(module.num_features, generator=generator))
    return net.eval()


def _replace_forward(module: nn.Module) -> None:
    plain = module.forward
    module.forward = lambda x: 2 * plain(x)


# conv = features[6] (a pointwise conv), bn = features[7] (its BatchNorm): each change below acts on one of the
# pair, before or after it, the way a strategy or a user would attach it.
CHANGES: dict[str, Callable[[nn.Module, nn.Module], None]] = {
    "delta on the conv (LoRA)": lambda conv, bn: attach(conv, "extra", nn.Conv2d(16, 32, 1, bias=False), "delta"),
    "post on the conv ((IA)3 before activation)": lambda conv, bn: attach(conv, "extra", Scale(), "post"),
    "pre on the conv ((IA)3 after activation)": lambda conv, bn: attach(conv, "extra", Scale(), "pre"),
    "post on the BatchNorm": lambda conv, bn: attach(bn, "extra", Scale(), "post"),
    "pre on the BatchNorm": lambda conv, bn: attach(bn, "extra", Scale(), "pre"),
    "a user's forward hook on the conv": lambda conv, bn: conv.register_forward_hook(lambda m, i, o: o + 1),
    "a user's pre-hook on the BatchNorm": lambda conv, bn: bn.register_forward_pre_hook(lambda m, i: (i[0] * 3,)),
    "forward replaced on the conv": lambda conv, bn: _replace_forward(conv),
    "forward replaced on the BatchNorm": lambda conv, bn: _replace_forward(bn),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_conv_or_batchnorm_is_never_folded(change: str) -> None:
    net = _net()
    conv, bn = net.backbone.features[6], net.backbone.features[7]
    CHANGES[change](conv, bn)
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = net(images)
        assert fold_conv_bn(net) == 3  # the other three pairs
        assert net.backbone.features[6] is conv and net.backbone.features[7] is bn
        torch.testing.assert_close(net(images), reference, rtol=1e-5, atol=1e-5)


def test_no_pair_folds_while_a_global_module_hook_is_registered() -> None:
    """A global hook runs around every module call: removing a BatchNorm would change what it computes."""
    net = _net()
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))

    def shift_batchnorm(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        return output + 0.5 if isinstance(module, nn.BatchNorm2d) else None

    handle = torch.nn.modules.module.register_module_forward_hook(shift_batchnorm)
    try:
        with torch.no_grad():
            reference = net(images)
            assert fold_conv_bn(net) == 0
            torch.testing.assert_close(net(images), reference)
    finally:
        handle.remove()
    assert fold_conv_bn(net) == 4


@pytest.mark.parametrize("name, options", [("lora", {}), ("ia3", {}), ("ia3", {"mlp_scale": "after_activation"}),
                                           ("peft:lora", {}), ("peft:ia3", {})])
def test_merged_adaptations_fold_again(name: str, options: dict) -> None:
    """prepare_for_attack merges before folding, so an adapted MobileNetV2 is attacked as fast as a plain one:
    every BatchNorm folded, no hook or adapter module left in the copy, the same logits."""
    if name.startswith("peft:"):
        pytest.importorskip("peft")
    model = tiny_mobilenet(num_classes=3)
    info = strategies.apply(model, name, **options)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name in info.trainable_names:
                param.add_(0.05 * torch.randn(param.shape, generator=torch.Generator().manual_seed(2)))
    plain_convs = sum(isinstance(m, nn.Conv2d) for m in tiny_mobilenet(num_classes=3).modules())
    prepared = prepare_for_attack(model.eval())
    modules = list(prepared.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in modules)
    # peft layers replaced by their base conv (which the prepared copy may run another way: prepare.swap_*)
    assert sum(type(m) in (nn.Conv2d, PointwiseConv2d, StemConv2d)
                   for m in modules) == plain_convs
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(prepared(images), model(images), rtol=1e-4, atol=1e-5)
    assert set(info.trainable_names) <= {n for n, _ in model.named_parameters()}  # the user's model keeps them
