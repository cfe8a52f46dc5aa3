"""A corrupt or foreign checkpoint is one clear ``CheckpointError`` (exit 2), on ``robustft eval`` and on resume."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import yaml
from tests.test_train import tiny_splits

from robustft.cli import main
from robustft.models.tiny import tiny_cnn
from robustft.runs.checkpoints import FORMAT, RESUME_KEYS, CheckpointError, load_checkpoint, save_checkpoint
from robustft.strategies.restore import load_model
from robustft.training import components


def _header(num_classes: int = 4) -> dict:
    model = tiny_cnn(num_classes)
    return {"model": {"name": "tiny-cnn", "num_classes": num_classes, "image_size": 16, "options": {}},
            "strategy": {"name": "full", "options": {}}, "model_state": model.state_dict(), "step": 0, "epoch": 0}


def _write_bad(kind: str, path: Path, good: bytes | None = None) -> str:
    """Writes a bad checkpoint of ``kind`` at ``path``; returns a fragment of the error message it must give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if good is None:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **_header()}, buffer)
        good = buffer.getvalue()
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
        return "is corrupt or truncated"
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
        return "is corrupt or truncated"
    if kind == "plain state dict":
        torch.save(tiny_cnn(4).state_dict(), path)
        return "is not a robustft checkpoint"
    if kind == "marked but headerless":
        torch.save({"format": FORMAT, "weights": tiny_cnn(4).state_dict()}, path)
        return "lacks model, strategy, model_state"
    if kind == "another model":
        payload = torch.load(io.BytesIO(good), weights_only=True)
        payload.pop("format")
        save_checkpoint(path, {**payload, "model_state": tiny_cnn(3).state_dict()})  # the 3-class model's weights
        return "does not fit the model it is loaded into"
    raise AssertionError(kind)


BAD = ["truncated", "garbage", "plain state dict", "marked but headerless", "another model"]


@pytest.mark.parametrize("kind", BAD)
def test_eval_of_a_bad_checkpoint_is_one_checkpoint_error(tmp_path, kind, capsys):
    file = tmp_path / "run" / "checkpoints" / "last.pt"
    fragment = _write_bad(kind, file)
    # Also through the run directory, as users pass it. The data is never loaded: the model fails first.
    for target in (file, file.parent.parent):
        assert main(["eval", "--checkpoint", str(target), "--data", "digits", "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("robustft: error: ") and fragment in err and str(file) in err
        assert "Traceback" not in err
    with pytest.raises(CheckpointError, match=fragment):
        load_model(file)


def test_a_weights_only_checkpoint_cannot_be_resumed_from_but_loads_for_eval(tmp_path):
    file = save_checkpoint(tmp_path / "weights.pt", _header())
    with pytest.raises(CheckpointError, match="not the training state a run resumes from"):
        load_checkpoint(file, require=RESUME_KEYS)
    model, payload = load_model(file)
    assert payload["model"]["num_classes"] == 4 and not model.training


@pytest.fixture
def finished_run(tmp_path, monkeypatch) -> Path:
    """A real tiny training run (tiny CNN, tiny in-memory data, 6 steps) with its checkpoint."""
    monkeypatch.setattr(components, "load_datasets", lambda cfg: tiny_splits())
    config = {"name": "run", "output_dir": str(tmp_path / "runs"), "device": "cpu",
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
              "objective": {"name": "standard"}, "eps": {"schedule": "zero"},
              "optim": {"batch_size": 16}, "train": {"steps": 6, "epochs": None},
              "eval": {"schedule": "every:3", "subset": 8, "eps": [], "final": None}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--quiet"]) == 0
    return tmp_path / "runs" / "run"


@pytest.mark.parametrize("kind", [*BAD, "weights only"])
def test_resume_from_a_bad_checkpoint_is_one_checkpoint_error_and_loses_nothing(finished_run, kind, capsys):
    last = finished_run / "checkpoints" / "last.pt"
    good = last.read_bytes()
    (finished_run / "summary.json").unlink()  # as if killed after its last checkpoint
    if kind == "weights only":
        payload = torch.load(last, weights_only=True)
        save_checkpoint(last, {key: payload[key] for key in ("model", "strategy", "model_state", "step")})
        fragment = "not the training state a run resumes from"
    else:
        fragment = _write_bad(kind, last, good)
    metrics = (finished_run / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(finished_run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustft: error: ") and fragment in err and str(last) in err
    assert (finished_run / "metrics.jsonl").read_bytes() == metrics  # nothing already written is lost

    last.write_bytes(good)  # with its own checkpoint back, the same run resumes
    assert main(["train", "--resume", str(finished_run), "--quiet"]) == 0
    assert (finished_run / "summary.json").is_file()
