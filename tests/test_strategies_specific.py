"""Strategy-specific behaviour: hand-counted parameters on a tiny ViT, LoRA's separate q/k/v, LP-FT's switch,
BatchNorm handling, determinism, the list table, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from robustft.errors import ConfigError, UnknownNameError
from robustft.strategies import STRATEGIES, StrategyNotApplicableError, apply, list_table
from test_strategies_archs import build_hf_vit, build_tiny_cnn, build_tiny_vit

# tiny_vit: width D=32, 2 blocks, MLP hidden H=64, 10 classes, patch 8; head = D*10 + 10
D, H, BLOCKS, HEAD = 32, 64, 2, 32 * 10 + 10
HAND_COUNTS = {
    "linear": ({}, HEAD),
    # q, k, v: A (r x D) + B (D x r) each; MLP in: A (r x D) + B (H x r); MLP out: A (r x H) + B (D x r)
    "lora": ({}, BLOCKS * (3 * (8 * D + D * 8) + (8 * D + H * 8) + (8 * H + D * 8)) + HEAD),
    "ia3": ({}, BLOCKS * (D + D + H + D) + HEAD),  # k, v, MLP intermediate (fc1 output), MLP out
    "ia3-after": ({"mlp_scale": "after_activation"}, BLOCKS * (D + D + H + D) + HEAD),  # (fc2 input instead)
    # two Houlsby adapters per block, bottleneck D/8 = 4: down (D*4 + 4) + up (4*D + D)
    "adapter": ({}, BLOCKS * 2 * ((D * 4 + 4) + (4 * D + D)) + HEAD),
    # bottleneck D/32 = 1 rounded up to phm_dim 4; per PHM layer s (4 x in/4 x 1), t (4 x 1 x out/4), bias (out);
    # plus ONE rule set (4 x 4 x 4) shared by every PHM layer (AdapterHub's shared_phm_rule), or one per direction
    "compacter": ({}, BLOCKS * 2 * ((4 * 8 + 4 * 1 + 4) + (4 * 1 + 4 * 8 + D)) + 4 ** 3 + HEAD),
    "compacter-down_up": ({"phm_rules": "down_up"},
                          BLOCKS * 2 * ((4 * 8 + 4 * 1 + 4) + (4 * 1 + 4 * 8 + D)) + 2 * 4 ** 3 + HEAD),
    # patch-embed bias + per block (norm1, qkv, proj, norm2, fc1, fc2 biases) + final norm bias + head
    "bitfit": ({}, D + BLOCKS * (D + 3 * D + D + D + H + D) + D + HEAD),
    "vpt": ({}, BLOCKS * 10 * D + HEAD),
    "vpt-shallow": ({"deep": False, "num_tokens": 5}, 5 * D + HEAD),
}


@pytest.mark.parametrize("case", sorted(HAND_COUNTS))
def test_trainable_count_matches_a_hand_count_on_a_tiny_vit(case: str) -> None:
    options, expected = HAND_COUNTS[case]
    model = build_tiny_vit()
    info = apply(model, case.split("-")[0], **options)
    assert info.trainable_count == expected
    assert info.trainable_count == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert info.total_count == sum(p.numel() for p in model.parameters())
    assert info.share == pytest.approx(expected / info.total_count)


def test_lora_adapts_q_k_v_separately_inside_a_fused_qkv() -> None:
    model = build_tiny_vit()
    apply(model, "lora", targets=["q", "v"])
    delta = model.get_submodule("backbone.blocks.0.attn.qkv.lora")
    assert sorted(delta.A) == ["q", "v"]
    with torch.no_grad():
        for b in delta.B.values():
            b.normal_()
    weight = delta.delta_weight()
    assert weight[:D].abs().sum() > 0 and weight[2 * D:].abs().sum() > 0
    assert torch.equal(weight[D:2 * D], torch.zeros(D, D))  # k is not adapted
    x = torch.randn(3, 5, D)
    torch.testing.assert_close(delta(x), x @ weight.t())


def test_lora_on_hugging_face_vit_uses_the_separate_projections() -> None:
    model = build_hf_vit()
    info = apply(model, "lora")
    adapted = {n.split(".lora.")[0].rsplit(".", 1)[-1] for n in info.trainable_names if ".lora." in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "fc1", "fc2"}


def test_lp_ft_switches_from_head_to_everything_exactly_once() -> None:
    model = build_tiny_cnn()
    info = apply(model, "lp-ft", lp_fraction=0.3)
    head = {n for n, _ in model.named_parameters() if n.startswith("backbone.classifier.")}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    switches = [t / 100 for t in range(101) if info.on_progress(model, t / 100)]
    assert switches == [0.3]
    assert all(p.requires_grad for p in model.parameters())
    assert set(info.trainable_names) == {n for n, _ in model.named_parameters()}


def test_train_mode_freezes_batchnorm_statistics_unless_asked_to_update() -> None:
    frozen = build_tiny_cnn()
    apply(frozen, "linear").train_mode(frozen)
    assert not any(m.training for m in frozen.modules() if isinstance(m, _BatchNorm))
    assert frozen.head_module().training
    updating = build_tiny_cnn()
    apply(updating, "linear", bn_stats="update").train_mode(updating)
    assert all(m.training for m in updating.modules() if isinstance(m, _BatchNorm))
    full = build_tiny_cnn()
    apply(full, "full").train_mode(full)
    assert all(m.training for m in full.modules() if isinstance(m, _BatchNorm))
    never = build_tiny_cnn()
    apply(never, "full", bn_stats="freeze").train_mode(never)
    assert not any(m.training for m in never.modules() if isinstance(m, _BatchNorm))


def _batchnorm_statistics(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, _BatchNorm) for t in (m.running_mean, m.running_var)]


def test_bitfit_keeps_the_pretrained_batchnorm_statistics_while_its_biases_train() -> None:
    # BitFit trains BatchNorm biases only; re-estimating the running variance would rescale every channel
    # (on the demo's MobileNetV2 that took PGD accuracy at 1/255 from 50% to 0%).
    model = build_tiny_cnn()
    info = apply(model, "bitfit")
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(m.bias.requires_grad and not m.weight.requires_grad for m in norms)
    before = _batchnorm_statistics(model)
    info.train_mode(model)
    assert not any(m.training for m in norms)
    assert model.head_module().training
    model(torch.rand(8, 3, 32, 32) * 0.2)  # a batch far from the statistics the layers hold
    for old, new in zip(before, _batchnorm_statistics(model), strict=True):
        assert torch.equal(old, new)
    updating = build_tiny_cnn()
    apply(updating, "bitfit", bn_stats="update").train_mode(updating)
    updating(torch.rand(8, 3, 32, 32) * 0.2)
    assert any(not torch.equal(old, new) for old, new in zip(before, _batchnorm_statistics(updating), strict=True))


def test_batchnorm_statistics_follow_the_scale_when_norm_weights_train() -> None:
    model = build_tiny_cnn()
    info = apply(model, "partial", patterns=[r"\.weight$"])
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(m.weight.requires_grad for m in norms)
    info.train_mode(model)
    assert all(m.training for m in norms)


@pytest.mark.parametrize("name", ["lora", "adapter", "compacter", "vpt"])
def test_apply_is_deterministic_and_leaves_the_global_rng_alone(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = build_tiny_vit(), build_tiny_vit()
    apply(first, name)
    assert torch.equal(torch.get_rng_state(), state)
    apply(second, name)
    for (n1, p1), (n2, p2) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    other = build_tiny_vit()
    apply(other, name, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values(),
                                                     strict=True))


def test_info_is_json_serialisable_and_options_are_resolved() -> None:
    model = build_tiny_vit()
    info = apply(model, "lora", r=4)
    assert info.options == {"bn_stats": "auto", "r": 4, "alpha": 8.0, "dropout": 0.0,
                            "targets": ["q", "k", "v", "mlp_in", "mlp_out"], "seed": 0}
    summary = json.loads(json.dumps(info.to_dict()))
    assert summary["mechanism"] == "low-rank" and summary["trainable_count"] == info.trainable_count


def test_list_table_has_every_strategy_with_its_share() -> None:
    header, rows = list_table()
    assert header[0] == "name" and "share" in header
    by_name = {row[0]: row for row in rows}
    assert set(by_name) == {n if n != "peft" else "peft:<type>" for n in STRATEGIES.names()}
    assert by_name["full"][4] == "100.00%"
    assert by_name["vpt"][3].startswith("n/a")
    assert by_name["vpt"][5].endswith("%")
    for name in ("linear", "bitfit", "lora", "ia3", "adapter", "compacter"):
        assert 0 < float(by_name[name][4].rstrip("%")) < 10, name


def test_unknown_strategy_lists_close_and_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'lora'.*Valid strategy names: .*compacter"):
        apply(build_tiny_cnn(), "lorra")


def test_unknown_option_lists_the_valid_options() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown option\(s\) 'rank' for strategy 'lora'.*r \(default 8\)"):
        apply(build_tiny_vit(), "lora", rank=4)


def test_wrong_option_type_names_the_expected_type() -> None:
    with pytest.raises(ConfigError, match="expected int"):
        apply(build_tiny_vit(), "lora", r="8")


def test_vpt_on_a_cnn_says_why() -> None:
    with pytest.raises(StrategyNotApplicableError, match="needs a vit model, but 'tiny-cnn' is a cnn"):
        apply(build_tiny_cnn(), "vpt")


@pytest.mark.parametrize(("options", "message"), [
    ({}, "needs option patterns"),
    ({"patterns": ["no_such_layer"]}, "matches no parameter"),
    ({"patterns": ["("]}, "not a valid regex"),
])
def test_partial_rejects_missing_or_wrong_patterns(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply(build_tiny_cnn(), "partial", **options)


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="lp_fraction"):
        apply(build_tiny_cnn(), "lp-ft", lp_fraction=1.5)
    with pytest.raises(ConfigError, match="choose from q, k, v"):
        apply(build_tiny_vit(), "lora", targets=["pointwise"])
    with pytest.raises(ConfigError, match="phm_dim=3 must divide"):
        apply(build_tiny_vit(), "compacter", phm_dim=3)
    with pytest.raises(ConfigError, match="bn_stats"):
        apply(build_tiny_cnn(), "linear", bn_stats="sometimes")


def test_applying_twice_is_refused() -> None:
    model = build_tiny_cnn()
    apply(model, "bitfit")
    with pytest.raises(ConfigError, match="already has strategy 'bitfit'"):
        apply(model, "lora")


def test_peft_errors_name_the_valid_types_and_options() -> None:
    with pytest.raises(UnknownNameError, match="Valid types: .*lora"):
        apply(build_tiny_vit(), "peft:nosuchtuner")
    with pytest.raises(UnknownNameError, match="Valid options: .*lora_alpha"):
        apply(build_tiny_vit(), "peft:lora", rank=3)
    with pytest.raises(ConfigError, match="needs a tuner type"):
        apply(build_tiny_vit(), "peft")
    with pytest.raises(ConfigError, match="takes no variant"):
        apply(build_tiny_vit(), "lora:big")


@pytest.mark.slow
@pytest.mark.needs_assets
@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_merge_on_the_embedded_pretrained_mobilenet(name: str) -> None:
    """On the real weights (not a random init): perturbed adapters change the logits and merging keeps them."""
    from robustft.models import build
    from robustft.strategies import merge

    model = build("mobilenet_v2", 10, pretrained=True).eval()
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(images)
        info = apply(model, name)
        generator = torch.Generator().manual_seed(1)
        for param_name, param in model.named_parameters():
            if param_name in info.trainable_names and not param_name.startswith(model.info.head):
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
        adapted = model(images)
        merge(model)
        merged = model(images)
    assert (adapted - plain).abs().max() > 1e-3
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_hugging_face_builder_output_is_adapted_like_timm() -> None:
    """robustft.models.build('hf:...') with a tiny config: same roles and counts as the equivalent timm ViT."""
    from robustft.models import build

    config = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64, "image_size": 32, "patch_size": 8}
    for name in ("lora", "ia3", "adapter", "compacter", "vpt", "bitfit"):
        model = build("hf:google/vit-base-patch16-224-in21k", 10, pretrained=False, config=config)
        assert apply(model, name).trainable_count == apply(build_tiny_vit(), name).trainable_count, name


@pytest.mark.parametrize("name", ["full", "linear", "lora"])
def test_single_phase_strategies_never_switch(name: str) -> None:
    model = build_tiny_vit()
    info = apply(model, name)
    before = [p.requires_grad for p in model.parameters()]
    assert not any(info.on_progress(model, t / 10) for t in range(11))
    assert [p.requires_grad for p in model.parameters()] == before


def test_peft_without_peft_installed_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # makes `import peft` raise ImportError
    with pytest.raises(ConfigError, match="pip install peft"):
        apply(build_tiny_vit(), "peft:lora")
