"""detect_layout finds family, blocks and layer roles on every supported architecture, and refuses others."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustft.models.layout import UnsupportedArchitectureError, detect_layout
from robustft.models.wrapper import ModelInfo, RobustModel
from test_strategies_archs import fresh

# arch -> (family, number of blocks, block kind, fused qkv)
EXPECTED = {
    "tiny_cnn": ("cnn", 4, "conv_unit", None),
    "tiny_vit": ("vit", 2, "transformer", True),
    "timm_resnet": ("cnn", 4, "resnet", None),
    "timm_convnext": ("cnn", 4, "convnext", None),
    "mobilenet_v2": ("cnn", 17, "inverted_residual", None),
    "hf_vit": ("vit", 2, "transformer", False),
}


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_layout_roles_on_each_architecture(arch: str) -> None:
    family, blocks, kind, fused = EXPECTED[arch]
    model = fresh(arch)
    layout = detect_layout(model)
    assert layout.family == family
    assert len(layout.blocks) == blocks
    assert {b.kind for b in layout.blocks} == {kind}
    assert layout.head == model.info.head
    everything = [layout.head, *layout.convs, *layout.linears, *layout.norms, *(b.name for b in layout.blocks)]
    for name in everything:
        model.get_submodule(name)  # every name resolves
    assert not any(n.startswith(layout.head + ".") or n == layout.head for n in layout.linears)
    for name in layout.pointwise_convs:
        conv = model.get_submodule(name)
        assert conv.kernel_size == (1, 1) and conv.groups == 1
    if family == "vit":
        assert layout.embed_dim == 32 and layout.num_prefix_tokens == 1 and layout.patch_size == 8
        for block in layout.blocks:
            attn = block.attention
            assert attn.fused == fused and attn.num_heads == 2 and attn.head_dim == 16 and attn.dim == 32
            projections = [attn.qkv] if fused else [attn.q, attn.k, attn.v]
            for name in [*projections, attn.out, block.mlp_in, block.mlp_out]:
                assert isinstance(model.get_submodule(name), nn.Linear)
            assert model.get_submodule(block.mlp_in).out_features == 64
            assert len(block.norms) == 2
    else:
        for block in layout.blocks:  # the recorded width is the block's output channels
            x = torch.rand(1, 3, 32, 32)
            captured = {}
            handle = model.get_submodule(block.name).register_forward_hook(
                lambda m, a, out, captured=captured: captured.setdefault("out", out))
            model.eval()(x)
            handle.remove()
            assert captured["out"].shape[1] == block.channels


def test_timm_vit_tiny_layout() -> None:
    import timm

    backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10)
    info = ModelInfo("timm:vit_tiny_patch16_224", "vit", 224, (0.5,) * 3, (0.5,) * 3, 10, head="backbone.head")
    layout = detect_layout(RobustModel(backbone, info))
    assert layout.family == "vit" and len(layout.blocks) == 12 and layout.patch_size == 16
    assert layout.blocks[0].attention.qkv == "backbone.blocks.0.attn.qkv"
    assert layout.blocks[0].attention.num_heads == 3


def test_unsupported_architecture_names_what_was_not_found() -> None:
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 10))
    info = ModelInfo("mlp", "cnn", 8, (0.5,) * 3, (0.5,) * 3, 10, head="backbone.3")
    with pytest.raises(UnsupportedArchitectureError, match="no transformer blocks .* and no nn.Conv2d"):
        detect_layout(RobustModel(backbone, info))


def test_torchvision_vit_attention_is_refused_by_placing_strategies_not_misadapted():
    import pytest
    import torch

    from robustft import strategies
    from robustft.models import build
    from robustft.models.layout import detect_layout
    from robustft.strategies import StrategyNotApplicableError

    torch.set_num_threads(1)
    # A small torchvision ViT (nn.MultiheadAttention inside): LoRA would otherwise silently skip q/k/v.
    model = build("tv:vit_b_32", 10, pretrained=False, image_size=32)
    assert detect_layout(model).opaque_attention  # the fused attention is seen, not ignored
    with pytest.raises(StrategyNotApplicableError, match="timm"):
        strategies.apply(model, "lora")
    fresh = build("tv:vit_b_32", 10, pretrained=False, image_size=32)
    info = strategies.apply(fresh, "bitfit")  # selecting existing parameters still works
    assert info.trainable_count > 0 and all("bias" in n or n.startswith("backbone.heads") for n in info.trainable_names)
