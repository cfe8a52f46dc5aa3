"""What a finished run prints and records: metric names with eps as k/255, n and the 95% interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.test_train import tiny_splits

from robustft.cli import main
from robustft.training import components


@pytest.fixture
def run_config(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(components, "load_datasets", lambda cfg: tiny_splits())
    config = {"name": "table", "output_dir": str(tmp_path / "runs"), "device": "cpu",
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
              "optim": {"batch_size": 16}, "train": {"steps": 2, "epochs": None},
              "eval": {"schedule": "every:2", "subset": 8, "attack": {"name": "pgd", "steps": 1, "step_size": "1eps"},
                       "eps": ["1/255"],
                       "final": None},
              # an old-style key (before metric names read @1/255) still selects the metric
              "checkpoint": {"best_metric": "val/pgd/accuracy@0.003922"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_table_and_summary_use_k_over_255_with_n_and_interval(run_config, tmp_path, capsys):
    assert main(["train", str(run_config), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["metric", "value", "95%", "CI", "n"]
    robust = next(line for line in lines if line.startswith("test/pgd/accuracy@1/255"))
    value, low, high, n = robust.split()[1], robust.split()[2], robust.split()[3], robust.split()[4]
    assert low.startswith("[") and high.endswith("]") and n == "8"
    assert float(low.strip("[,")) <= float(value) <= float(high.strip("]"))
    summary = json.loads((tmp_path / "runs" / "table" / "summary.json").read_text())
    assert "test/pgd/accuracy@1/255" in summary["final"]
    assert not any("@0.00" in key for key in summary["final"])
    assert (tmp_path / "runs" / "table" / "checkpoints" / "best.pt").is_file()
