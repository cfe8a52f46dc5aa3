"""robustft.models.build: every source builds a normalising classifier with a fresh, named, seeded head."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from robustft.models import MODELS, RobustModel, build, options_of

# A tiny random transformers ViT: no download, a few thousand parameters.
TINY_HF_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                  "image_size": 32, "patch_size": 8}

# (name, options, image side, family) covering every source; all random-weight so they are fast and offline.
CASES = [
    ("tiny-cnn", {}, 32, "cnn"),
    ("tiny-vit", {}, 32, "vit"),
    ("mobilenet_v2", {}, 32, "cnn"),
    ("timm:test_resnet", {}, 32, "cnn"),
    ("timm:test_vit", {}, 64, "vit"),
    ("tv:mobilenet_v3_small", {}, 32, "cnn"),
    ("hf:tiny-random-vit", {"config": TINY_HF_CONFIG}, 32, "vit"),
]
IDS = [case[0] for case in CASES]


def _build(name: str, options: dict, size: int, num_classes: int = 7, **extra) -> RobustModel:
    return build(name, num_classes, pretrained=False, image_size=size, **{**options, **extra})


@pytest.fixture(scope="module")
def built() -> dict[str, RobustModel]:
    return {name: _build(name, options, size) for name, options, size, _ in CASES}


@pytest.mark.parametrize(("name", "options", "size", "family"), CASES, ids=IDS)
def test_forward_gives_logits_per_image(built, name, options, size, family):
    model = built[name].eval()
    images = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (3, 7)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert model.info.family == family
    assert model.info.input_size == size
    assert model.info.num_classes == 7
    assert model.info.name == name


@pytest.mark.parametrize(("name", "options", "size", "family"), CASES, ids=IDS)
def test_normalisation_happens_inside_forward(built, name, options, size, family):
    model = built[name].eval()
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor(model.info.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.info.std).view(1, 3, 1, 1)
    seen = []
    hook = model.backbone.register_forward_pre_hook(lambda module, args, *rest: seen.append(args[0].clone()))
    try:
        with torch.no_grad():
            logits = model(images)
    finally:
        hook.remove()
    # the backbone receives normalised pixels, and its logits are the model's
    assert torch.allclose(seen[0], (images - mean) / std, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(logits, model.backbone((images - mean) / std), atol=1e-5)
    assert all(0 < s for s in model.info.std) and len(model.info.mean) == 3


@pytest.mark.parametrize(("name", "options", "size", "family"), CASES, ids=IDS)
def test_head_is_named_fresh_linear(built, name, options, size, family):
    model = built[name]
    head = model.get_submodule(model.info.head)
    assert head is model.head_module()
    assert isinstance(head, nn.Linear)
    assert head.out_features == 7
    # the head is the last layer: zeroing it zeroes the logits
    with torch.no_grad():
        saved = head.weight.clone(), head.bias.clone()
        head.weight.zero_()
        head.bias.fill_(0.25)
        out = model.eval()(torch.rand(2, 3, size, size))
        head.weight.copy_(saved[0])
        head.bias.copy_(saved[1])
    assert torch.allclose(out, torch.full_like(out, 0.25))


@pytest.mark.parametrize(("name", "options", "size", "family"), CASES, ids=IDS)
def test_head_is_seeded(name, options, size, family):
    first = _build(name, options, size, seed=3).head_module().weight
    torch.rand(100)  # consuming the global RNG in between must not change the head
    again = _build(name, options, size, seed=3).head_module().weight
    other = _build(name, options, size, seed=4).head_module().weight
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_head_is_identical_across_processes():
    code = ("import torch; from robustft.models import build; "
            "m = build('mobilenet_v2', 5, pretrained=False, seed=11); "
            "print(repr(m.head_module().weight.double().sum().item()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    here = build("mobilenet_v2", 5, pretrained=False, seed=11).head_module().weight.double().sum().item()
    assert float(result.stdout.strip().splitlines()[-1]) == here


def test_build_does_not_change_the_callers_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build("tiny-cnn", 4, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_registry_lists_every_source_with_descriptions():
    names = MODELS.names()
    for expected in ("mobilenet_v2", "tiny-cnn", "tiny-vit", "timm:<name>", "tv:<name>", "hf:<repo id>"):
        assert expected in names
    assert all(entry.description for entry in MODELS.entries())


def test_cli_list_models_shows_the_registry():
    from robustft.cli.list_cmd import format_table, table_for

    text = format_table(*table_for("models"))
    for expected in ("mobilenet_v2", "timm:<name>", "tv:<name>", "hf:<repo id>", "tiny-vit"):
        assert expected in text


def test_options_are_introspected_from_builders():
    assert "weights_file" in options_of(MODELS.get("mobilenet_v2"))
    assert "pretrained_file" in options_of(MODELS.get("timm:<name>"))
    assert "config" in options_of(MODELS.get("hf:<repo id>"))


def test_timm_vit_is_built_for_the_requested_size():
    model = build("timm:test_vit", 3, pretrained=False, image_size=96)
    assert model.info.input_size == 96
    assert model.info.min_input_size == 96
    assert model.info.extra["patch_size"] == 16
    assert model(torch.rand(1, 3, 96, 96)).shape == (1, 3)


def test_cnn_min_input_size_is_what_the_network_accepts():
    model = build("timm:test_resnet", 3, pretrained=False, image_size=32).eval()
    smallest = model.info.min_input_size
    with torch.no_grad():
        assert model(torch.rand(1, 3, smallest, smallest)).shape == (1, 3)
        if smallest > 1:
            with pytest.raises(Exception):  # noqa: B017 - any failure: the network rejects smaller inputs
                model(torch.rand(1, 3, smallest - 1, smallest - 1))


def test_hf_input_at_other_size_interpolates_positions():
    model = build("hf:tiny-random-vit", 4, pretrained=False, image_size=48, config=TINY_HF_CONFIG)
    assert model.backbone.interpolate_pos_encoding
    assert model(torch.rand(2, 3, 48, 48)).shape == (2, 4)


def test_extra_records_the_source():
    assert build("mobilenet_v2", 3, pretrained=False).info.extra["source"] == "embedded"
    assert build("timm:test_resnet", 3, pretrained=False).info.extra["source"] == "timm"
    assert build("tiny-cnn", 3).info.extra["pretrained"] is False
