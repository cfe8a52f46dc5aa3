"""``robustft eval`` end to end on a tiny checkpoint (dataset loading replaced by in-memory data)."""

from __future__ import annotations

import json

import pytest
import torch

import robustft.data
from robustft.attacks import expected_robustness
from robustft.checkpoint import save_checkpoint
from robustft.cli import main
from robustft.cli.eval_cmd import parse_curve
from test_attacks_support import quadrant_task


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from robustft import models, strategies

    model = models.build("tiny-cnn", 4, pretrained=False, image_size=16)
    strategies.apply(model, "full")
    # A quick fit so the curve has something to fall from.
    images, labels = quadrant_task(256, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    path = run_dir / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"name": "tiny-cnn", "num_classes": 4, "image_size": 16, "options": {}},
                           "strategy": {"name": "full", "options": {}}, "model_state": model.state_dict(),
                           "step": 15, "epoch": 1})
    return run_dir


@pytest.fixture
def fake_data(monkeypatch):
    calls = {}

    def load(name, split, image_size=None, limit=None):
        calls.update(name=name, split=split, image_size=image_size, limit=limit)
        images, labels = quadrant_task(limit or 64, seed=1)
        return torch.utils.data.TensorDataset(images, labels)

    def make_loader(dataset, batch_size):
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size)

    monkeypatch.setattr(robustft.data, "load", load, raising=False)
    monkeypatch.setattr(robustft.data, "make_loader", make_loader, raising=False)
    return calls


def test_curve_prints_table_and_writes_json(checkpoint, fake_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", "--checkpoint", str(checkpoint), "--data", "quadrants", "--limit", "40", "--attack", "pgd",
                 "--steps", "3", "--curve", "0:8/255:4/255", "--device", "cpu", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "expected robustness" in printed and "8/255" in printed
    assert fake_data == {"name": "quadrants", "split": "test", "image_size": 16, "limit": 40}
    payload = json.loads(out.read_text())
    results = payload["results"]
    assert [round(r["eps"] * 255) for r in results] == [0, 4, 8]
    assert all(r["n"] == 40 for r in results)
    accs = [r["accuracy"] for r in results]
    assert accs == sorted(accs, reverse=True)
    assert payload["expected_robustness"] == pytest.approx(expected_robustness([r["eps"] for r in results], accs))
    assert payload["step"] == 15 and payload["attack"].startswith("pgd")


def test_single_eps(checkpoint, fake_data, tmp_path, capsys):
    code = main(["eval", "--checkpoint", str(checkpoint / "checkpoints" / "last.pt"), "--data", "q", "--limit", "16",
                 "--attack", "fgsm", "--eps", "2/255", "--device", "cpu"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "2/255" in lines[1] and lines[1].split()[-1] == "16"


@pytest.mark.parametrize("argv, message", [
    (["--eps", "8"], "8/255"),
    (["--attack", "pgdd"], "apgd-ce"),
    (["--attack", "square", "--steps", "3"], "steps"),
    (["--curve", "8/255:0"], "LOW < HIGH"),
])
def test_bad_input_is_one_clear_error(checkpoint, fake_data, capsys, argv, message):
    code = main(["eval", "--checkpoint", str(checkpoint), "--data", "q", "--limit", "8", "--device", "cpu", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, fake_data, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nope"), "--data", "q", "--device", "cpu"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_parse_curve():
    assert parse_curve("0:4/255") == pytest.approx([i / 255 for i in range(5)])
    assert parse_curve("0:8/255:2/255") == pytest.approx([0, 2 / 255, 4 / 255, 6 / 255, 8 / 255])
