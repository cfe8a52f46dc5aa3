"""Exact resume after a real ``kill -9``: no lost or duplicated record, the same metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

# The child process: a tiny CNN on tiny seeded data, adversarial training with a linear eps warm-up,
# evaluated every step so there are many checkpoints to be killed between.
SCRIPT = textwrap.dedent('''
    import sys
    import torch
    torch.set_num_threads(1)
    from robustft.models.tiny import tiny_cnn
    from robustft.train import train

    class TinyData:
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.images = torch.rand(n, 3, 16, 16, generator=g)
            self.labels = torch.randint(0, 4, (n,), generator=g)
            for c in range(4):
                self.images[self.labels == c, c % 3] *= 0.3
        def __len__(self):
            return len(self.labels)
        def __getitem__(self, i):
            return self.images[i], int(self.labels[i])

    splits = {"train": TinyData(96, 0), "val": TinyData(16, 1), "test": TinyData(16, 2),
              "ood": {"shifted": TinyData(16, 3)}}
    config, resume = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    train(config, resume=resume, model=tiny_cnn(4), datasets=splits, quiet=True)
''')

CONFIG = {
    "name": "run", "device": "cpu", "seed": 3,
    "objective": {"name": "adversarial", "steps": 3},
    "eps": {"schedule": "linear", "value": "8/255", "per": "step"},
    "optim": {"batch_size": 16, "lr": 5.0e-3, "warmup": 2},
    "train": {"epochs": 3},
    "eval": {"schedule": "every:1", "subset": 16, "batch_size": 16,
             "attack": {"name": "pgd", "steps": 3, "step_size": "2/255"}, "eps": ["2/255"],
             "final": {"attack": "fgsm"}},
    "logging": {"progress": False},
}


def _launch(tmp_path: Path, output: Path, resume: Path | None = None) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    config = tmp_path / f"{output.name}.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(output)}))
    args = [sys.executable, str(script), str(config)] + ([str(resume)] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference = _launch(tmp_path, tmp_path / "reference")
    victim = _launch(tmp_path, tmp_path / "victim")
    run = tmp_path / "victim" / "run"
    deadline = time.monotonic() + 180
    # Kill after the first checkpoints, in the middle of training (steps 0..18 are evaluated).
    while time.monotonic() < deadline:
        steps = {r["step"] for r in _records(run)} if (run / "metrics.jsonl").is_file() else set()
        if (run / "checkpoints" / "last.pt").is_file() and max(steps, default=0) >= 3:
            break
        assert victim.poll() is None, victim.communicate()[1].decode()[-2000:]
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in _records(run))
    assert killed_at < 18, "the run finished before it could be killed; make it longer"

    resumed = _launch(tmp_path, tmp_path / "victim", resume=run)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err.decode()[-2000:]
    out, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err.decode()[-2000:]

    got = _comparable(_records(run))
    want = _comparable(_records(tmp_path / "reference" / "run"))
    keys = [(r["step"], r["split"], r["metric"], r["attack"], r["eps"]) for r in got]
    assert len(keys) == len(set(keys)), "a record was duplicated"
    assert got == want  # same records, same order, same values: nothing lost, nothing doubled
    assert json.loads((run / "summary.json").read_text())["final"] == \
        json.loads((tmp_path / "reference" / "run" / "summary.json").read_text())["final"]
