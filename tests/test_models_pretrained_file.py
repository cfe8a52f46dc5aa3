"""``pretrained_file=``: local weights load everywhere except the head, which stays fresh and seeded."""

from __future__ import annotations

import pytest
import torch

from robustft.errors import ConfigError, MissingAssetError
from robustft.models import build


class Payload:
    """A plain Python object: unpickling it would need weights_only=False."""


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Shift every float tensor so 'loaded' and 'freshly initialised' cannot coincide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand(tensor.shape, generator=generator))
    return model


def _assert_loaded_except_head(source: torch.nn.Module, loaded, head_prefix: str) -> None:
    source_state, loaded_state = source.state_dict(), loaded.backbone.state_dict()
    assert set(source_state) == set(loaded_state)
    body = [k for k in source_state if not k.startswith(head_prefix)]
    assert body
    for key in body:
        assert torch.equal(source_state[key], loaded_state[key]), key


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_round_trip(tmp_path, suffix):
    source = _perturbed(build("timm:test_resnet", 5, pretrained=False, seed=1).backbone, seed=0)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save(source.state_dict(), path)
    loaded = build("timm:test_resnet", 5, pretrained_file=path, seed=0)
    _assert_loaded_except_head(source, loaded, "fc.")
    fresh = build("timm:test_resnet", 5, pretrained=False, seed=0).head_module()
    assert torch.equal(loaded.head_module().weight, fresh.weight)  # the file's head was skipped
    assert loaded.info.extra["pretrained_file"] == str(path)
    assert loaded.info.extra["pretrained"] is True


def test_timm_file_with_another_head_size_loads(tmp_path):
    source = _perturbed(build("timm:test_resnet", 1000, pretrained=False).backbone, seed=2)
    path = tmp_path / "imagenet_like.pth"
    torch.save({"state_dict": source.state_dict()}, path)  # wrapped like a training checkpoint
    loaded = build("timm:test_resnet", 3, pretrained_file=path)
    assert loaded.head_module().out_features == 3
    body = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(loaded.backbone.state_dict()[k], v) for k, v in body.items())


def test_timm_vit_file_is_resampled_to_a_new_size(tmp_path):
    source = _perturbed(build("timm:test_vit", 4, pretrained=False).backbone, seed=3)
    path = tmp_path / "vit.pth"
    torch.save(source.state_dict(), path)
    loaded = build("timm:test_vit", 4, pretrained_file=path, image_size=64)
    assert loaded.backbone.pos_embed.shape[1] < source.pos_embed.shape[1]  # fewer patches at 64 px
    assert torch.equal(loaded.backbone.patch_embed.proj.weight, source.patch_embed.proj.weight)
    assert loaded(torch.rand(1, 3, 64, 64)).shape == (1, 4)


def test_timm_file_of_another_architecture_is_a_config_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(build("timm:test_efficientnet", 3, pretrained=False).backbone.state_dict(), path)
    with pytest.raises(ConfigError, match="pretrained_file"):
        build("timm:test_resnet", 3, pretrained_file=path)


def test_timm_missing_file(tmp_path):
    with pytest.raises(MissingAssetError, match="does not exist"):
        build("timm:test_resnet", 3, pretrained_file=tmp_path / "nope.pth")


def test_torchvision_round_trip_and_keep_head(tmp_path):
    source = _perturbed(build("tv:mobilenet_v3_small", 1000, pretrained=False, keep_imagenet_head=False).backbone, 4)
    path = tmp_path / "mnv3.pth"
    torch.save(source.state_dict(), path)
    loaded = build("tv:mobilenet_v3_small", 6, pretrained_file=path, seed=2)
    _assert_loaded_except_head(source, loaded, "classifier.3.")
    assert loaded.info.head == "backbone.classifier.3"
    kept = build("tv:mobilenet_v3_small", 1000, pretrained_file=path, keep_imagenet_head=True)
    assert torch.equal(kept.head_module().weight, source.classifier[3].weight)


def test_torchvision_file_that_does_not_fit(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ConfigError, match="does not match"):
        build("tv:mobilenet_v3_small", 3, pretrained_file=path)


def test_pickled_objects_are_refused(tmp_path):
    """weights_only=True: a file holding arbitrary Python objects is not unpickled."""
    path = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ConfigError, match="cannot read"):
        build("tv:mobilenet_v3_small", 3, pretrained_file=path)


def test_pretrained_false_ignores_the_file(tmp_path):
    """Checkpoint rebuilds call build(pretrained=False, **saved options): the file is not read (may be gone)."""
    missing = tmp_path / "gone.pth"
    model = build("timm:test_resnet", 3, pretrained=False, pretrained_file=missing)
    assert model.info.extra["pretrained"] is False
    tv_model = build("tv:mobilenet_v3_small", 3, pretrained=False, pretrained_file=missing)
    assert tv_model.info.extra["pretrained"] is False
    assert build("mobilenet_v2", 3, pretrained=False, weights_file=missing).info.extra["pretrained"] is False


def test_huggingface_local_folder_round_trip(tmp_path):
    import json

    from transformers import AutoConfig, AutoModelForImageClassification

    config = AutoConfig.for_model("vit", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, image_size=32, patch_size=8, num_labels=10)
    source = AutoModelForImageClassification.from_config(config)
    _perturbed(source, seed=5)
    source.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.4, 0.4, 0.4],
                                                                    "image_std": [0.2, 0.2, 0.2]}))
    loaded = build(f"hf:{tmp_path}", 3, seed=0)
    assert loaded.info.mean == (0.4, 0.4, 0.4) and loaded.info.std == (0.2, 0.2, 0.2)
    assert loaded.info.head == "backbone.model.classifier"
    assert loaded.head_module().out_features == 3
    source_state, loaded_state = source.state_dict(), loaded.backbone.model.state_dict()
    body = [k for k in source_state if not k.startswith("classifier.")]
    assert body and all(torch.equal(source_state[k], loaded_state[k]) for k in body)
    assert loaded(torch.rand(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.slow
def test_torchvision_vit_file_is_resampled_to_a_new_size(tmp_path):
    """tv:vit_b_32 weights saved at 224 px load into a 160 px model (torchvision's interpolate_embeddings)."""
    source = build("tv:vit_b_32", 1000, pretrained=False, keep_imagenet_head=True).backbone
    path = tmp_path / "vit_b_32.pth"
    torch.save(source.state_dict(), path)
    loaded = build("tv:vit_b_32", 4, pretrained_file=path, image_size=160)
    assert loaded.backbone.encoder.pos_embedding.shape[1] == (160 // 32) ** 2 + 1
    assert torch.equal(loaded.backbone.conv_proj.weight, source.conv_proj.weight)
    assert torch.equal(loaded.backbone.encoder.pos_embedding[:, 0], source.encoder.pos_embedding[:, 0])
    assert loaded(torch.rand(1, 3, 160, 160)).shape == (1, 4)
