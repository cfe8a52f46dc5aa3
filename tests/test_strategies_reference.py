"""Strategies against their references: (IA)3 placed as paper A placed it (AdapterHub), Compacter's one shared
PHM rule set (AdapterHub's CompacterConfig), and the built-in LoRA and (IA)3 against peft's on the same layers
(same logits after the same AdamW step from the same parameters)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustft.errors import ConfigError
from robustft.strategies import apply, merge
from robustft.strategies.compacter import PHMProjection
from test_strategies_archs import fresh

# tiny_vit: width D=32, MLP hidden H=64
D, H = 32, 64


def _perturbed_mlp_scales(model: nn.Module, block: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Sets the block's two MLP scale vectors (hidden-wide s_ff, width-wide s_out) to random values; returns them.

    Found by size, not by name, so the test checks where a vector acts, whatever it is called.
    """
    generator = torch.Generator().manual_seed(3)
    found = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(block + ".mlp.") and ".ia3_" in name:
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
                found[param.numel()] = param.detach().clone()
    assert sorted(found) == [D, H]
    return found[H], found[D]


def _mlp_by_hand(mlp: nn.Module, x: torch.Tensor, s_ff: torch.Tensor, s_out: torch.Tensor,
                 before_activation: bool) -> torch.Tensor:
    """s_out * fc2(act(s_ff * fc1(x))) or s_out * fc2(s_ff * act(fc1(x))), from the plain weights."""
    hidden = F.linear(x, mlp.fc1.weight, mlp.fc1.bias)
    hidden = mlp.act(s_ff * hidden) if before_activation else s_ff * mlp.act(hidden)
    return s_out * F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias)


@pytest.mark.parametrize("option", [None, "before_activation", "after_activation"])
def test_ia3_mlp_vector_acts_where_the_option_places_it_on_a_timm_vit_block(option: str | None) -> None:
    """Paper A (AdapterHub IA3Config, intermediate_lora): GELU(s * fc1(x)); the option gives s * GELU(fc1(x))."""
    model = fresh("tiny_vit").eval()
    apply(model, "ia3", **({} if option is None else {"mlp_scale": option}))
    s_ff, s_out = _perturbed_mlp_scales(model, "backbone.blocks.0")
    mlp = model.get_submodule("backbone.blocks.0.mlp")
    assert isinstance(mlp.act, nn.GELU)
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(4))
    before = option != "after_activation"
    with torch.no_grad():
        got = mlp(x)
        expected = _mlp_by_hand(mlp, x, s_ff, s_out, before)
        other = _mlp_by_hand(mlp, x, s_ff, s_out, not before)
    torch.testing.assert_close(got, expected)
    assert (got - other).abs().max() > 1e-3  # the two placements are distinguishable here


def test_ia3_placement_on_cnns_is_conv_output_by_default_and_conv_input_with_the_option() -> None:
    """CNN analogue of the rule: before the norm/activation = each conv's output; after = each conv's input."""
    model = fresh("mobilenet_v2")
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    info = apply(model, "ia3")
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(model.info.head + "."))
    assert info.trainable_count - head == sum(c.out_channels for c in convs.values())
    assert all(f"{n}.ia3_out.scale.all" in info.trainable_names for n in convs)

    model = fresh("mobilenet_v2").eval()
    info = apply(model, "ia3", mlp_scale="after_activation")
    assert info.trainable_count - head == sum(c.in_channels for c in convs.values())
    depthwise = next(n for n, c in convs.items() if c.groups > 1)
    conv = model.get_submodule(depthwise)
    scale = torch.rand(conv.in_channels, generator=torch.Generator().manual_seed(5)) + 0.5
    with torch.no_grad():
        model.get_parameter(f"{depthwise}.ia3_in.scale.all").copy_(scale)
        x = torch.randn(2, conv.in_channels, 6, 6)
        torch.testing.assert_close(conv(x), conv._conv_forward(x * scale[None, :, None, None], conv.weight,
                                                                  conv.bias))


@pytest.mark.parametrize("arch", ["mobilenet_v2", "timm_resnet", "tiny_vit", "hf_vit"])
def test_ia3_after_activation_merges_into_the_weights(arch: str) -> None:
    """Input scales fold into weight columns, grouped and depthwise convolutions included."""
    model = fresh(arch).eval()
    info = apply(model, "ia3", mlp_scale="after_activation")
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in info.trainable_names and ".ia3_" in name:
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
        images = torch.rand(2, 3, 32, 32, generator=generator)
        adapted = model(images)
        merge(model)
        assert not any(".ia3_" in n for n, _ in model.named_parameters())
        torch.testing.assert_close(model(images), adapted, atol=1e-4, rtol=1e-4)


def test_ia3_rejects_an_unknown_placement() -> None:
    with pytest.raises(ConfigError, match="mlp_scale='inside'.*before_activation.*after_activation"):
        apply(fresh("tiny_vit"), "ia3", mlp_scale="inside")


@pytest.mark.parametrize("arch", ["tiny_vit", "mobilenet_v2"])
def test_compacter_shares_one_rule_set_across_every_phm_layer_by_default(arch: str) -> None:
    """AdapterHub's shared_phm_rule: one n x n x n tensor used by the down- and up-projections of every site."""
    model = fresh(arch)
    info = apply(model, "compacter")
    rules = [n for n in info.trainable_names if n.startswith("compacter_rules.")]
    assert rules == ["compacter_rules.shared"]
    projections = [m for m in model.modules() if isinstance(m, PHMProjection)]
    assert len(projections) >= 4
    with torch.no_grad():
        for p in projections:
            p.t.normal_()  # the up-projections start at W = 0; make every W depend on the rule
        assert all(p.weight().abs().sum() > 0 for p in projections)
        model.get_parameter("compacter_rules.shared").zero_()
        assert all(torch.equal(p.weight(), torch.zeros_like(p.weight())) for p in projections)


def test_compacter_down_up_option_keeps_one_rule_set_per_direction() -> None:
    model = fresh("tiny_vit")
    shared = apply(fresh("tiny_vit"), "compacter").trainable_count
    info = apply(model, "compacter", phm_rules="down_up")
    assert [n for n in info.trainable_names if n.startswith("compacter_rules.")] == ["compacter_rules.down",
                                                                                     "compacter_rules.up"]
    assert info.trainable_count == shared + 4 ** 3
    with torch.no_grad():
        for p in model.modules():
            if isinstance(p, PHMProjection):
                p.t.normal_()
        model.get_parameter("compacter_rules.down").zero_()
        downs = [m.down for m in model.modules() if hasattr(m, "down") and isinstance(m.down, PHMProjection)]
        ups = [m.up for m in model.modules() if hasattr(m, "up") and isinstance(m.up, PHMProjection)]
        assert all(torch.equal(p.weight(), torch.zeros_like(p.weight())) for p in downs)
        assert all(p.weight().abs().sum() > 0 for p in ups)
    with pytest.raises(ConfigError, match="phm_rules='per_layer'.*shared.*down_up"):
        apply(fresh("tiny_vit"), "compacter", phm_rules="per_layer")


# --- against peft, on a Hugging Face ViT (separate q/k/v projections: peft can target exactly the same layers) ---


def _one_step_logits(model: nn.Module, trainable: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits before and after one AdamW step on a fixed batch (cross-entropy), training ``trainable`` only."""
    generator = torch.Generator().manual_seed(7)
    images, labels = torch.rand(4, 3, 32, 32, generator=generator), torch.randint(0, 10, (4,), generator=generator)
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW([params[n] for n in trainable], lr=1e-2, weight_decay=0.1)
    model.eval()  # no dropout; gradients flow all the same
    before = model(images)
    F.cross_entropy(before, labels).backward()
    optimizer.step()
    with torch.no_grad():
        return before.detach(), model(images)


def _copy_random(pairs: list[tuple[torch.Tensor, torch.Tensor]], low: float, high: float) -> None:
    """Gives each (ours, peft's) pair the same random values (shapes may differ by singleton dims)."""
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for ours, theirs in pairs:
            values = low + (high - low) * torch.rand(ours.numel(), generator=generator)
            ours.copy_(values.view_as(ours))
            theirs.copy_(values.view_as(theirs))


def _trainable_pairs(ours: nn.Module, theirs: nn.Module, rename: dict[str, str]) -> list[tuple[str, str]]:
    """(our name, peft's name) for every peft adapter parameter; ``rename`` maps peft's suffixes to ours."""
    pairs = []
    for name, _ in theirs.named_parameters():
        for suffix, our_suffix in rename.items():
            if name.endswith(suffix):
                pairs.append((name.removesuffix(suffix) + our_suffix, name))
    assert pairs
    return pairs


def test_lora_matches_peft_lora_on_the_same_layers_after_one_adamw_step() -> None:
    ours, theirs = fresh("hf_vit"), fresh("hf_vit")
    info = apply(ours, "lora", r=4, alpha=8.0)
    peft_info = apply(theirs, "peft:lora", r=4, lora_alpha=8, lora_dropout=0.0,
                      target_modules=["q_proj", "k_proj", "v_proj", "fc1", "fc2"])
    pairs = _trainable_pairs(ours, theirs, {".lora_A.default.weight": ".lora.A.w", ".lora_B.default.weight":
                                            ".lora.B.w"})
    adapters = [n for n in info.trainable_names if ".lora." in n]
    assert sorted(ours_name for ours_name, _ in pairs) == sorted(adapters)  # exactly the same layers and shapes
    ours_params, their_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert all(ours_params[a].shape == their_params[b].shape for a, b in pairs)
    # B = 0 at init in both; a non-zero B makes A's gradient non-zero too, so the step tests both factors
    _copy_random([(ours_params[a], their_params[b]) for a, b in pairs], -0.3, 0.3)
    ours_before, ours_after = _one_step_logits(ours, info.trainable_names)
    their_before, their_after = _one_step_logits(theirs, peft_info.trainable_names)
    assert (ours_after - ours_before).abs().max() > 1e-3
    torch.testing.assert_close(ours_before, their_before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_after, their_after, atol=1e-5, rtol=1e-5)


def test_ia3_matches_peft_ia3_on_k_v_and_the_mlp_after_one_adamw_step() -> None:
    """Default placement: k, v, fc1 and fc2 outputs scaled = peft's IA3 with all four as non-feedforward targets."""
    ours, theirs = fresh("hf_vit"), fresh("hf_vit")
    info = apply(ours, "ia3")
    peft_info = apply(theirs, "peft:ia3", target_modules=["k_proj", "v_proj", "fc1", "fc2"], feedforward_modules=[])
    pairs = _trainable_pairs(ours, theirs, {".ia3_l.default": ".ia3_out.scale.all"})
    assert sorted(a for a, _ in pairs) == sorted(n for n in info.trainable_names if ".ia3_" in n)
    ours_params, their_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    _copy_random([(ours_params[a], their_params[b]) for a, b in pairs], 0.5, 1.5)
    ours_before, ours_after = _one_step_logits(ours, info.trainable_names)
    their_before, their_after = _one_step_logits(theirs, peft_info.trainable_names)
    assert (ours_after - ours_before).abs().max() > 1e-3
    torch.testing.assert_close(ours_before, their_before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_after, their_after, atol=1e-5, rtol=1e-5)


def test_ia3_after_activation_matches_peft_ia3_feedforward_placement() -> None:
    """Option after_activation: the fc2-input scale is peft's feedforward scale (peft's own IA3 default).

    peft has one vector per layer, so it cannot also scale fc2's output: that vector of ours is held at 1 here.
    """
    ours, theirs = fresh("hf_vit"), fresh("hf_vit")
    info = apply(ours, "ia3", mlp_scale="after_activation")
    peft_info = apply(theirs, "peft:ia3", target_modules=["k_proj", "v_proj", "fc2"], feedforward_modules=["fc2"])
    pairs = [(a.replace("fc2.ia3_out", "fc2.ia3_in") if ".fc2." in a else a, b)
             for a, b in _trainable_pairs(ours, theirs, {".ia3_l.default": ".ia3_out.scale.all"})]
    trained = [n for n in info.trainable_names if ".fc2.ia3_out." not in n]
    assert sorted(a for a, _ in pairs) == sorted(n for n in trained if ".ia3_" in n)
    ours_params, their_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    _copy_random([(ours_params[a], their_params[b]) for a, b in pairs], 0.5, 1.5)
    ours_before, ours_after = _one_step_logits(ours, trained)
    their_before, their_after = _one_step_logits(theirs, peft_info.trainable_names)
    assert (ours_after - ours_before).abs().max() > 1e-3
    torch.testing.assert_close(ours_before, their_before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_after, their_after, atol=1e-5, rtol=1e-5)
