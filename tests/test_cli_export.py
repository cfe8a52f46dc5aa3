"""``robustft export``: merged weights load into the plain torchvision model, without robustft, same logits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from robustft import models, strategies
from robustft.cli import main
from robustft.runs.checkpoints import load, save_checkpoint

STRATEGIES = ("lora", "ia3")


def _run(tmp_path, strategy: str):
    model = models.build("mobilenet_v2", 4, pretrained=False, image_size=32)
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
