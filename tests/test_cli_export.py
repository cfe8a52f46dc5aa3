"""``robustft export``: merged weights load into the plain torchvision model, without robustft, same logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustft import models, strategies
from robustft.cli import main
from robustft.runs.checkpoints import save_checkpoint
from robustft.strategies.restore import load

STRATEGIES = ("lora", "ia3")


def _calibrated_mobilenet() -> torch.nn.Module:
    """A random MobileNetV2 whose BatchNorm statistics are those of its own activations (one train-mode pass, as
    pretraining leaves them). With the default statistics (mean 0, var 1) the activations fade through the blocks
    and a LoRA delta moved the logits by 1e-9: a merge that did nothing passed."""
    # Seeded: drawn from the global generator, the weights depended on which tests ran before, and one draw in a CI
    # run put a merged logit 1.6e-4 from the unmerged one (float rounding of the merge), just past the tolerance.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = models.build("mobilenet_v2", 4, pretrained=False, image_size=32)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # the running statistics become the batch's
    with torch.no_grad():
        model.train()(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    return model.eval()


def _run(tmp_path, strategy: str):
    model = _calibrated_mobilenet()
    info = strategies.apply(model, strategy)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # as if trained: adapters away from their identity initialisation
        for name, param in model.named_parameters():
            if name in info.trainable_names:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    run = tmp_path / strategy
    save_checkpoint(run / "checkpoints" / "last.pt", {
        "model": {"name": "mobilenet_v2", "num_classes": 4, "image_size": 32, "options": {}},
        "strategy": {"name": strategy, "options": info.options}, "model_state": model.state_dict(), "step": 3})
    return run


def _export_all(tmp_path) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = {}
    for strategy in STRATEGIES:
        run = _run(tmp_path, strategy)
        with torch.no_grad():
            expected[strategy] = load(run)(images)
        suffix = ".safetensors" if strategy == "lora" else ".pt"
        assert main(["export", str(run), "--merged", str(tmp_path / f"{strategy}{suffix}")]) == 0
    return images, expected


def _load_plain(tmp_path, strategy: str) -> tuple[torch.nn.Module, dict]:
    import torchvision
    from safetensors.torch import load_file

    path = tmp_path / (f"{strategy}.safetensors" if strategy == "lora" else f"{strategy}.pt")
    state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    model = torchvision.models.mobilenet_v2(num_classes=4)
    model.load_state_dict(state, strict=True)
    return model.eval(), json.loads(path.with_suffix(".json").read_text())


def test_merged_export_loads_into_plain_torchvision_with_the_same_logits(tmp_path, capsys):
    images, expected = _export_all(tmp_path)
    assert "load it without robustft" in capsys.readouterr().out
    for strategy in STRATEGIES:
        model, sidecar = _load_plain(tmp_path, strategy)
        assert sidecar["create_plain_model"] == "torchvision.models.mobilenet_v2(num_classes=4)"
        assert sidecar["merged"] is True and sidecar["input_size"] == 32
        # a newcomer loading it without robustft needs the size and the preprocessing (kills: the size left out)
        assert "N x 3 x 32 x 32" in sidecar["input"] and "grey images repeated to 3 channels" in sidecar["input"]
        mean, std = torch.tensor(sidecar["mean"]).view(1, 3, 1, 1), torch.tensor(sidecar["std"]).view(1, 3, 1, 1)
        with torch.no_grad():
            logits = model((images - mean) / std)
        torch.testing.assert_close(logits, expected[strategy], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_merged_export_needs_no_robustft(tmp_path):
    images, expected = _export_all(tmp_path)
    torch.save(images, tmp_path / "images.pt")
    code = f"""
import json, sys, torch, torchvision
from safetensors.torch import load_file
images = torch.load({str(tmp_path / 'images.pt')!r}, weights_only=True)
out = {{}}
for strategy, suffix in (("lora", ".safetensors"), ("ia3", ".pt")):
    path = {str(tmp_path)!r} + "/" + strategy + suffix
    state = load_file(path) if suffix == ".safetensors" else torch.load(path, weights_only=True)
    meta = json.load(open({str(tmp_path)!r} + "/" + strategy + ".json"))
    model = torchvision.models.mobilenet_v2(num_classes=4)
    model.load_state_dict(state, strict=True)
    mean, std = torch.tensor(meta["mean"]).view(1, 3, 1, 1), torch.tensor(meta["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        out[strategy] = model.eval()((images - mean) / std).tolist()
assert not any(name.startswith("robustft") for name in sys.modules)
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    plain = json.loads(done.stdout)
    for strategy in STRATEGIES:
        torch.testing.assert_close(torch.tensor(plain[strategy]), expected[strategy], atol=1e-4, rtol=1e-4)


def test_unmergeable_strategy_is_refused_only_when_merging(tmp_path, capsys):
    run = _run(tmp_path, "adapter")
    assert main(["export", str(run), "--merged", str(tmp_path / "a.pt")]) == 2
    assert "cannot be merged" in capsys.readouterr().err and not (tmp_path / "a.pt").exists()
    assert main(["export", str(run), str(tmp_path / "a.pt")]) == 0
    keys = torch.load(tmp_path / "a.pt", weights_only=True)
    assert any("adapter" in key for key in keys)
    assert json.loads((tmp_path / "a.json").read_text())["create_plain_model"] is None


def test_merged_peft_lora_export_unloads_the_tuner_layers(tmp_path, capsys):
    """peft's LoRA wraps each adapted conv (``base_layer``, ``lora_A`` ...): merged, the wrappers are replaced by
    their base layers, so the file is torchvision's own state dict and gives the run's logits."""
    pytest.importorskip("peft")
    run = _run(tmp_path, "peft:lora")
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = load(run)(images)
    assert main(["export", str(run), "--merged", str(tmp_path / "peft.pt")]) == 0
    state = torch.load(tmp_path / "peft.pt", weights_only=True)
    assert not [key for key in state if "lora" in key or "base_layer" in key]
    model, sidecar = _load_plain(tmp_path, "peft")
    assert sidecar["strategy"] == "peft:lora"
    mean, std = torch.tensor(sidecar["mean"]).view(1, 3, 1, 1), torch.tensor(sidecar["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        plain = model((images - mean) / std)
    torch.testing.assert_close(plain, expected, atol=1e-4, rtol=1e-4)


def test_the_embedded_vit_sidecar_says_how_to_create_the_plain_model():
    """vit_small_dinov2 is timm's vit_small_patch14_dinov2 with position embeddings for the run's input side: the
    sidecar's line creates exactly the network whose state dict the merged export writes (on the meta device:
    structure only, no 22M-parameter init)."""
    import timm

    from robustft.strategies.export import describe, plain_network

    with torch.device("meta"):
        model = models.build("vit_small_dinov2", 7, pretrained=False, image_size=28)
        payload = {"model": {"name": "vit_small_dinov2", "num_classes": 7}, "strategy": {"name": "lora"}}
        sidecar = describe(model, payload, merged=True, weights=Path("vit.safetensors"))
        line = sidecar["create_plain_model"]
        assert line == "timm.create_model('vit_small_patch14_dinov2', num_classes=7, img_size=28)"
        created = eval(line, {"timm": timm})  # the sidecar's own words, as a user would run them
    shapes = {key: value.shape for key, value in plain_network(model).state_dict().items()}
    assert {key: value.shape for key, value in created.state_dict().items()} == shapes


@pytest.mark.slow
def test_merged_export_of_the_embedded_vit_loads_into_timm_with_the_same_logits(tmp_path):
    import timm

    model = models.build("vit_small_dinov2", 5, pretrained=False, image_size=28)
    info = strategies.apply(model, "lora")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in info.trainable_names:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
    run = tmp_path / "vit"
    save_checkpoint(run / "checkpoints" / "last.pt", {
        "model": {"name": "vit_small_dinov2", "num_classes": 5, "image_size": 28, "options": {}},
        "strategy": {"name": "lora", "options": info.options}, "model_state": model.state_dict(), "step": 1})
    images = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.eval()(images)
    assert main(["export", str(run), "--merged", str(tmp_path / "vit.safetensors")]) == 0
    from safetensors.torch import load_file

    sidecar = json.loads((tmp_path / "vit.json").read_text())
    plain = eval(sidecar["create_plain_model"], {"timm": timm})
    plain.load_state_dict(load_file(tmp_path / "vit.safetensors"), strict=True)
    mean, std = torch.tensor(sidecar["mean"]).view(1, 3, 1, 1), torch.tensor(sidecar["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()((images - mean) / std), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, why", [("out.txt", "ends in .txt (not a weights format)"),
                                        ("out", "ends in nothing (no suffix to tell the format)"),
                                        ("out.json", "the name of the sidecar file")])
def test_a_target_that_is_not_a_weights_file_name_is_refused(tmp_path, capsys, name, why):
    """``export RUN out.txt`` wrote a torch pickle named .txt (and out.json beside it): refused before anything is
    read or written, naming the file names that work."""
    run = _run(tmp_path, "lora")
    assert main(["export", str(run), "--merged", str(tmp_path / name)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    stem = tmp_path / "out"
    assert why in err and f"Name it {stem}.safetensors (safetensors) or {stem}.pt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora"]  # nothing written
    assert main(["export", str(run), str(tmp_path)]) == 2  # a directory: name a file inside it
    assert f"name the weights file inside it, e.g. {tmp_path / 'model.safetensors'}" in capsys.readouterr().err


def test_the_exported_weights_are_as_readable_as_their_sidecar(tmp_path):
    """safetensors wrote the weights 0o600 beside a 0o644 sidecar (a newcomer found others could not read them)."""
    run = _run(tmp_path, "lora")
    assert main(["export", str(run), "--merged", str(tmp_path / "m.safetensors")]) == 0
    weights, sidecar = (tmp_path / "m.safetensors").stat().st_mode & 0o777, (tmp_path / "m.json").stat().st_mode & 0o777
    assert weights == sidecar


@pytest.mark.parametrize("merged", [False, True])
def test_a_bitfit_export_says_how_to_create_its_plain_model_with_or_without_merged(tmp_path, capsys, merged):
    """BitFit only chooses which existing parameters train: its weights are a plain network's, so the sidecar names
    the plain model (it said null without --merged) and that model takes them strictly, with the run's logits."""
    run = _run(tmp_path, "bitfit")
    flags = ["--merged"] if merged else []
    assert main(["export", str(run), *flags, str(tmp_path / "bitfit.pt")]) == 0
    assert "load it without robustft" in capsys.readouterr().out
    model, sidecar = _load_plain(tmp_path, "bitfit")
    assert sidecar["create_plain_model"] == "torchvision.models.mobilenet_v2(num_classes=4)"
    assert sidecar["plain"] is True and sidecar["merged"] is merged
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(sidecar["mean"]).view(1, 3, 1, 1), torch.tensor(sidecar["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model((images - mean) / std), load(run)(images), atol=1e-4, rtol=1e-4)
