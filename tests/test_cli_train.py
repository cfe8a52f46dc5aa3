"""``robustft train`` from the command line: results, resume, clear errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.test_train import tiny_splits

from robustft.cli import main
from robustft.config import load_config
from robustft.training import components


@pytest.fixture
def tiny_data(monkeypatch):
    """The CLI builds everything from the registries; only the data is swapped for tiny in-memory splits."""
    monkeypatch.setattr(components, "load_datasets", lambda cfg: tiny_splits())


def _config(tmp_path: Path) -> Path:
    config = {"name": "cli", "output_dir": str(tmp_path / "runs"), "device": "cpu",
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
              "objective": {"name": "trades", "steps": 1},
              "optim": {"batch_size": 16}, "train": {"steps": 6, "epochs": None},
              "eval": {"schedule": "every:3", "subset": 8, "attack": {"name": "pgd", "steps": 1}, "final": None}}
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_prints_a_result_table_and_writes_the_run(tmp_path, tiny_data, capsys):
    assert main(["train", str(_config(tmp_path)), "optim.lr=0.01", "--quiet"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "cli"
    assert "test/clean/accuracy" in out and str(run) in out
    assert load_config(run / "config.yaml").optim.lr == 0.01  # the resolved config, overrides applied
    assert {json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()} == {0, 3, 6}
    # --resume of a finished run: nothing to do, nothing duplicated
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert (run / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("argv, message", [
    (["train"], "needs a config file"),
    (["train", "optim.lr=1"], "put the config file first"),
    (["train", "--resume", "/nonexistent/run"], "no such run directory"),
    (["train", "/nonexistent.yaml"], "does not exist"),
])
def test_user_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_config_key_and_unknown_objective_are_clear(tmp_path, tiny_data, capsys):
    config = _config(tmp_path)
    assert main(["train", str(config), "optim.learning_rate=1", "--quiet"]) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert main(["train", str(config), "objective.name=madry", "--quiet"]) == 2
    assert "adversarial" in capsys.readouterr().err  # the message lists the valid objectives


