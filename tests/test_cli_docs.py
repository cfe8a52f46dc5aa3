"""The README's usage section and the config docs say what the code does."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import robustft
from robustft.config import load_config
from robustft.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _snippet() -> str:
    return re.search(r"```python\n(.*?)```", README, re.S).group(1)


def test_readme_python_snippet_names_only_what_exists():
    for path in sorted(set(re.findall(r"robustft((?:\.\w+)+)\(", _snippet()))):
        target = robustft
        for part in path.strip(".").split("."):
            target = getattr(target, part)
        assert callable(target), path


@pytest.mark.slow
@pytest.mark.needs_assets
def test_readme_python_snippet_runs_as_written(tmp_path):
    done = subprocess.run([sys.executable, "-c", _snippet()], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StrategyInfo(name='lora'")


def test_configs_readme_describes_the_demo_config():
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    row = next(line for line in (ROOT / "configs" / "README.md").read_text().splitlines() if "`demo.yaml`" in line)
    epochs, images = re.search(r"(\d+) epochs? on (\d+) images", row).groups()
    assert int(epochs) == demo["train"]["epochs"] and int(images) == demo["data"]["limit_train"]


def test_demo_time_is_stated_the_same_in_config_and_readme():
    comment = " ".join((ROOT / "configs" / "demo.yaml").read_text().splitlines()[:2])
    config_minutes = re.search(r"about ([\d.]+) minutes", comment).group(1)
    row = next(line for line in (ROOT / "configs" / "README.md").read_text().splitlines()
               if line.startswith("| `demo.yaml` |"))
    assert re.search(r"about ([\d.]+) minutes", row).group(1) == config_minutes


def test_readme_does_not_promise_an_autoattack_fallback():
    from robustft.attacks import build_attack
    from robustft.errors import MissingAssetError

    try:
        import autoattack  # noqa: F401
    except ImportError:
        import torch

        with pytest.raises(MissingAssetError, match="cascade"):
            build_attack("autoattack")(torch.nn.Linear(3, 2), torch.rand(1, 3, 1, 1), torch.tensor([0]), 1 / 255)
    assert "robustft's\ncascade in any case" not in README and "cascade in any case" not in README.replace("\n", " ")


def test_yaml_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {name: a\noptim:\n  lr: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert f'in "{bad}", line 2' in str(error.value) and "<unicode string>" not in str(error.value)


def test_run_directory_files_share_one_mode(tmp_path):
    from robustft.runs import MetricsWriter
    from robustft.runs.checkpoints import save_checkpoint
    from robustft.runs.metrics_file import atomic_write_text, file_mode

    atomic_write_text(tmp_path / "summary.json", "{}")
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", {"model": {}, "strategy": {}, "model_state": {}})
    MetricsWriter(tmp_path / "metrics.jsonl").write([{"step": 0, "epoch": 0.0, "split": "val", "metric": "accuracy",
                                                      "value": 0.5}])
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert set(modes.values()) == {file_mode()}, modes
