"""``robustft train`` from the command line: results, resume, clear errors (exit 2)."""

from __future__ import annotations

import json
import math
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
              "eval": {"schedule": "every:3", "subset": 8, "final": None,
                       "attack": {"name": "pgd", "steps": 1, "step_size": "1/255"}}}  # one step must reach 1/255
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


def test_resume_with_overrides_trains_with_them_and_records_the_change(tmp_path, tiny_data, capsys):
    config = _config(tmp_path)
    run = tmp_path / "runs" / "cli"
    assert main(["train", str(config), "--quiet"]) == 0  # 6 steps, evaluated at 0, 3, 6
    assert main(["train", "--resume", str(run), "train.steps=9", "optim.lr=0.02", "--quiet"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in records}) == [0, 3, 6, 9]  # it trained on to the new length
    changes = {r["extra"]["key"]: (r["step"], r["extra"]["old"], r["extra"]["new"])
               for r in records if r["metric"] == "config_change"}
    assert changes == {"train.steps": (6, 6, 9), "optim.lr": (6, 0.001, 0.02)}  # taking effect at step 6
    resolved = load_config(run / "config.yaml")  # config.yaml now describes the run from step 6 on
    assert (resolved.train.steps, resolved.optim.lr) == (9, 0.02)
    lrs = {r["step"]: r["value"] for r in records if r["metric"] == "lr"}
    # The override is what trained: the lr of the last update (step 8 of 9, cosine, no warm-up) from 0.02.
    assert lrs[9] == pytest.approx(0.02 * 0.5 * (1 + math.cos(math.pi * 8 / 9)))
    # Resuming again without overrides changes nothing and records nothing new.
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert sum(json.loads(line)["metric"] == "config_change"
               for line in (run / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_config_given_with_resume_must_be_the_runs_own(tmp_path, tiny_data, capsys):
    config = _config(tmp_path)
    run = tmp_path / "runs" / "cli"
    assert main(["train", str(config), "--quiet"]) == 0
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", str(config), "--resume", str(run), "--quiet"]) == 0  # the same command, re-run: fine
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "seed": 7}))
    assert main(["train", str(other), "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "seed: 0 -> 7" in err and "key=value" in err
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


