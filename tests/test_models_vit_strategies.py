"""Paper A's seven strategies plus VPT, and every attack, on the real embedded ViT-S/14 (``vit_small_dinov2``).

Placement is checked exactly: the set of trainable parameter names (block index folded) and their count from
ViT-S/14's dimensions (width D = 384, 12 blocks, MLP 1536, 10 classes). Shares are compared with ViT-B/16's
(the README table) under the expected scaling: strategies whose added parameters grow like D x depth (linear
head, BitFit, LoRA at fixed rank, (IA)3, Compacter, VPT) have twice the share on ViT-S (D = 384) as on ViT-B
(D = 768), whose total grows like D^2 x depth; bottleneck adapters at a fixed reduction grow like D^2, so their
share is the same; full is 100% on both.
"""

from __future__ import annotations

import copy
import importlib.util
import re

import pytest
import torch

from robustft.attacks import ATTACKS, build_attack, robust_accuracy
from robustft.models import build, embedded_vit
from robustft.models.wrapper import ModelInfo, RobustModel
from robustft.strategies import apply, resolve_name

HAS_GRAPH = importlib.util.find_spec(embedded_vit.PACKAGE) is not None and importlib.util.find_spec("onnx") is not None
pytestmark = [pytest.mark.needs_assets,
              pytest.mark.skipif(not HAS_GRAPH, reason=f"embedded ViT not installed: {embedded_vit.INSTALL_HINT}")]

D, DEPTH, HIDDEN, CLASSES, SIZE = 384, 12, 1536, 10, 28
HEAD = D * CLASSES + CLASSES
HEAD_NAMES = {"backbone.head.weight", "backbone.head.bias"}


def _block(*names: str) -> set[str]:
    return {f"backbone.blocks.*.{n}" for n in names}


def _lora() -> set[str]:
    return _block(*(f"attn.qkv.lora.{m}.{p}" for m in "AB" for p in "qkv"),
                  *(f"mlp.{fc}.lora.{m}.w" for fc in ("fc1", "fc2") for m in "AB"))


def _bottlenecks(kind: str, parts: tuple[str, ...]) -> set[str]:
    return _block(*(f"{site}.{kind}.{side}.{p}" for site in ("attn.proj", "mlp.fc2") for side in ("down", "up")
                    for p in parts))


# strategy -> (trainable names with "blocks.<i>" folded to "blocks.*", trainable count, exponent k of the
# expected share ratio ViT-S / ViT-B = (768 / 384) ** k)
COMPACTER_WIDTH = 12  # 384 // 32, a multiple of phm_dim 4
EXPECTED = {
    "linear": (set(), HEAD, 1),
    "bitfit": (_block("norm1.bias", "attn.qkv.bias", "attn.proj.bias", "norm2.bias", "mlp.fc1.bias", "mlp.fc2.bias")
               | {"backbone.patch_embed.proj.bias", "backbone.norm.bias"},
               DEPTH * (4 * D + 3 * D + HIDDEN) + 2 * D + HEAD, 1),
    "lora": (_lora(), DEPTH * (3 * 8 * (D + D) + 2 * 8 * (D + HIDDEN)) + HEAD, 1),
    "ia3": (_block("attn.qkv.ia3_out.scale.k", "attn.qkv.ia3_out.scale.v", "mlp.fc1.ia3_out.scale.all",
                   "mlp.fc2.ia3_out.scale.all"), DEPTH * (D + D + HIDDEN + D) + HEAD, 1),
    "adapter": (_bottlenecks("adapter", ("weight", "bias")),
                DEPTH * 2 * (D * (D // 8) + D // 8 + (D // 8) * D + D) + HEAD, 0),
    # PHM factors: down s (4, 96, 1) t (4, 1, 3), up s (4, 3, 1) t (4, 1, 96); one 4x4x4 rule set shared by every PHM
    # layer (AdapterHub's CompacterConfig, paper A)
    "compacter": (_bottlenecks("compacter", ("s", "t", "bias")) | {"compacter_rules.shared"},
                  DEPTH * 2 * (D + COMPACTER_WIDTH + COMPACTER_WIDTH + COMPACTER_WIDTH + D + D) + 64 + HEAD, 1),
    "vpt": (_block("vpt.prompts"), DEPTH * 10 * D + HEAD, 1),
}
PAPER_A_PLUS_VPT = ["full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter", "vpt"]


@pytest.fixture(scope="module")
def vit():
    return build("vit_small_dinov2", CLASSES, image_size=SIZE).eval()


@pytest.fixture(scope="module")
def vit_b16_shares():
    """Trainable share of each strategy on ViT-B/16 (meta device: structure only, no memory)."""
    import timm

    info = ModelInfo("vit_base_patch16_224", "vit", 224, (0.5,) * 3, (0.5,) * 3, CLASSES, head="backbone.head",
                     min_input_size=224)
    with torch.device("meta"):
        model = RobustModel(timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=CLASSES), info)
        return {name: apply(copy.deepcopy(model), name).share for name in PAPER_A_PLUS_VPT}


def _folded(names: list[str]) -> set[str]:
    return {re.sub(r"blocks\.\d+\.", "blocks.*.", n) for n in names}


@pytest.mark.parametrize("name", PAPER_A_PLUS_VPT)
def test_strategy_places_its_parameters_on_the_right_layers(vit, vit_b16_shares, name):
    model = copy.deepcopy(vit)
    info = apply(model, name, **resolve_name(name, {})[0].example_options)
    total = sum(p.numel() for p in model.parameters())
    if name == "full":
        assert info.trainable_count == total and info.share == 1.0
        assert len(info.trainable_names) == len(list(model.parameters()))
        return
    names, count, exponent = EXPECTED[name]
    assert _folded(info.trainable_names) == names | HEAD_NAMES
    per_block = [n for n in info.trainable_names if n.startswith("backbone.blocks.")]
    assert {int(n.split(".")[2]) for n in per_block} == (set(range(DEPTH)) if per_block else set())
    assert info.trainable_count == count
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(info.trainable_names)
    ratio = info.share / vit_b16_shares[name]
    assert ratio == pytest.approx(2.0 ** exponent, rel=0.05), (name, info.share, vit_b16_shares[name])


@pytest.mark.parametrize("name", PAPER_A_PLUS_VPT)
def test_strategy_keeps_the_pretrained_function_and_trains_only_its_parameters(vit, name):
    model = copy.deepcopy(vit)
    images = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(4)
    with torch.no_grad():
        before = model(images)
    info = apply(model, name, **resolve_name(name, {})[0].example_options)
    with torch.no_grad():
        at_init = model(images)
    if name != "vpt":  # prompts change the token set from the start (by design)
        assert torch.allclose(at_init, before, atol=1e-4)
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, snapshot[n])}
    assert changed <= set(info.trainable_names)
    assert HEAD_NAMES <= changed
    # every block's own parameters moved (one step: zero-initialised halves such as LoRA's B move, while their
    # partners' gradient is still zero, so "every trainable tensor changed" would be wrong)
    moved_blocks = {int(n.split(".")[2]) for n in changed if n.startswith("backbone.blocks.")}
    assert moved_blocks == (set() if name == "linear" else set(range(DEPTH)))


@pytest.mark.parametrize("name", sorted(set(ATTACKS.names()) - {"autoattack"}))
def test_every_attack_runs_on_the_embedded_vit_within_its_budget(vit, name):
    fast = {"pgd": {"steps": 2}, "apgd-ce": {"steps": 2}, "apgd-dlr": {"steps": 2},
            "apgd-t": {"steps": 2, "n_target_classes": 2}, "square": {"n_queries": 5},
            "cascade": {"steps": 2, "n_target_classes": 2, "n_queries": 3}}.get(name, {})
    images = torch.rand(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = vit(images).argmax(1)  # all correct at eps = 0
    eps = 8 / 255
    attack = build_attack(name, **fast, generator=torch.Generator().manual_seed(0))
    x_adv = attack(vit, images, labels, eps)
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - images).abs().max() <= eps + 1e-6
    result = robust_accuracy(vit, (images, labels), attack, eps)
    assert 0.0 <= result.accuracy <= 1.0 and not vit.training


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lora", "vpt"])
def test_the_preset_trains_with_an_attention_strategy(tmp_path, strategy):
    """``configs/vit_embedded/paper_a.yaml`` runs end to end (shortened), with its tracking and summary."""
    import json
    from pathlib import Path

    from robustft.training.trainer import train

    preset = Path(__file__).resolve().parents[1] / "configs" / "vit_embedded" / "paper_a.yaml"
    result = train(str(preset), [f"output_dir={tmp_path}", f"strategy.name={strategy}", "train.steps=2",
                                 "eval.schedule=every:2", "data.limit_train=64", "data.limit_test=32",
                                 "eval.subset=16", "device=cpu"])
    records = [json.loads(line) for line in (result.path / "metrics.jsonl").read_text().splitlines()]
    robust = [r for r in records if r["split"] == "test" and r["attack"] == "pgd"]
    clean = [r for r in records if r["split"] == "test" and r["attack"] == "clean" and r["metric"] == "accuracy"]
    assert [r["step"] for r in robust] == [0, 2] and len(clean) == 2
    assert all(r["value"] <= c["value"] for r, c in zip(robust, clean, strict=True))
    assert {r["split"] for r in records} >= {"ood:fashion-mnist@gaussian_noise:3", "ood:fashion-mnist@contrast:3"}
    assert result.summary["strategy"]["name"] == strategy and result.summary["strategy"]["trainable_share"] < 0.05
