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

import pytest
import yaml

# The child process: a tiny CNN on tiny seeded data, adversarial training with a linear eps warm-up,
# evaluated every step so there are many checkpoints to be killed between.
SCRIPT = textwrap.dedent('''
    import os
    import sys
    import time
    import torch
    torch.set_num_threads(1)
    from robustft.models.tiny import tiny_cnn
    from robustft.training.trainer import Trainer, train

    hold = os.environ.get("HOLD_UNTIL")
    if hold:  # the race test: announce that this process is about to resume, then wait for the go signal
        original = Trainer._maybe_resume

        def waiting(self):
            open(f"{hold}.waiting-{os.getpid()}", "w").close()
            deadline = time.monotonic() + 120
            while not os.path.exists(hold) and time.monotonic() < deadline:
                time.sleep(0.05)
            return original(self)

        Trainer._maybe_resume = waiting

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
             "final": {"name": "fgsm"}},
    "logging": {"progress": False},
}


def _launch(tmp_path: Path, output: Path, resume: Path | None = None, **env: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    config = tmp_path / f"{output.name}.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(output)}))
    args = [sys.executable, str(script), str(config)] + ([str(resume)] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONHASHSEED": "0", **env})


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def _kill_mid_run(victim: subprocess.Popen, run: Path) -> None:
    """Kills ``victim`` with SIGKILL after its first checkpoints, in the middle of training (steps 0..18)."""
    deadline = time.monotonic() + 180
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


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    from robustft.runs.lock import LOCK_FILE, lock_holder

    reference = _launch(tmp_path, tmp_path / "reference")
    victim = _launch(tmp_path, tmp_path / "victim")
    run = tmp_path / "victim" / "run"
    _kill_mid_run(victim, run)
    # The killed process still "owns" the lock file's contents; the kernel released its lock, so no clean-up.
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == victim.pid
    assert lock_holder(run) is None

    import torch

    cpu_before_kill = torch.load(run / "checkpoints" / "last.pt", weights_only=False)["cpu_seconds"]
    # As if killed after an evaluation's outcomes were written but before its checkpoint, mid-way through the next
    # block: the resume must drop the whole block and the torn tail.
    import numpy as np

    from robustft.runs import OutcomeBlock, Run

    Run(run).outcomes_writer().write([OutcomeBlock(10_000, "test", "accuracy", ("clean",), (0.0,), np.arange(3),
                                                      np.ones((1, 3), bool))])
    with open(run / "outcomes.bin", "ab") as handle:
        handle.write(b"RFO1\x10\x00")
    resumed = _launch(tmp_path, tmp_path / "victim", resume=run)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err.decode()[-2000:]
    assert lock_holder(run) is None and (run / LOCK_FILE).read_text() == ""  # released when training ended
    out, err = reference.communicate(timeout=180)
    assert reference.returncode == 0, err.decode()[-2000:]

    got = _comparable(_records(run))
    want = _comparable(_records(tmp_path / "reference" / "run"))
    keys = [(r["step"], r["split"], r["metric"], r["attack"], r["eps"]) for r in got]
    assert len(keys) == len(set(keys)), "a record was duplicated"
    assert got == want  # same records, same order, same values: nothing lost, nothing doubled
    # The per-image outcomes too, byte for byte: truncated to the checkpoint with the records, ids stored once
    assert (run / "outcomes.bin").read_bytes() == (tmp_path / "reference" / "run" / "outcomes.bin").read_bytes()
    blocks = Run(run).read_outcomes()
    assert sorted({b.step for b in blocks}) == list(range(19)) and {b.split for b in blocks} >= {"test", "ood:shifted"}
    summary = json.loads((run / "summary.json").read_text())
    reference_summary = json.loads((tmp_path / "reference" / "run" / "summary.json").read_text())
    assert summary["final"] == reference_summary["final"]
    # the count of perturbed steps carries over the resume (the checkpoint holds it)
    assert summary["perturbed_steps"] == reference_summary["perturbed_steps"] > 0
    assert summary["train_eps_max"] == reference_summary["train_eps_max"] > 0
    # CPU time accumulates across the resume: the summary counts the killed process's share too
    assert json.loads((run / "summary.json").read_text())["cpu_seconds"] > cpu_before_kill > 0


@pytest.mark.slow
def test_two_resumes_of_one_killed_run_one_trains_the_other_is_refused(tmp_path):
    """Two resumes started together: one trains to the end, the other exits non-zero at once naming it."""
    victim = _launch(tmp_path, tmp_path / "victim")
    run = tmp_path / "victim" / "run"
    _kill_mid_run(victim, run)
    go = tmp_path / "go"
    both = [_launch(tmp_path, tmp_path / "victim", resume=run, HOLD_UNTIL=str(go)) for _ in range(2)]
    # Hold back whichever reaches training until the other has either been refused or reached training too
    # (which the lock must prevent): the race is decided by the lock, not by scheduling.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in both) or len(list(tmp_path.glob("go.waiting-*"))) == 2:
            break
        time.sleep(0.05)
    go.touch()
    errors = [p.communicate(timeout=180)[1].decode() for p in both]
    codes = [p.returncode for p in both]
    assert sorted(code == 0 for code in codes) == [False, True], (codes, [e[-1500:] for e in errors])
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert f"is being written by pid {both[winner].pid}" in errors[loser], errors[loser][-1500:]
    assert f"robustft train --resume {run}" in errors[loser]

    records = _records(run)
    keys = [(r["step"], r["split"], r["metric"], r["attack"], r["eps"]) for r in records]
    assert len(keys) == len(set(keys)), "a record was duplicated"
    per_step = {}
    for step, *rest in keys:
        per_step.setdefault(step, set()).add(tuple(map(str, rest)))
    assert sorted(per_step) == list(range(19))  # every evaluation point, once
    assert (run / "summary.json").is_file()


def test_a_run_cut_between_config_and_env_records_env_when_resumed(tmp_path):
    """A SIGKILL can land after config.yaml and before env.json (it did in a killed tune search): resuming the run
    records where it ran then, instead of finishing a run with no env.json."""
    from robustft.config import from_dict, to_dict
    from robustft.runs.run_dir import Run
    from robustft.training.components import open_run

    config = to_dict(from_dict({"name": "cut", "output_dir": str(tmp_path), "model": {"name": "tiny-cnn"},
                                "data": {"name": "digits"}}))
    run = Run.create(tmp_path / "cut", config)
    run.env_path.unlink()
    opened, _, changes = open_run(tmp_path / "cut")
    # kills: the env.json rewrite in open_run removed
    env = json.loads(opened.env_path.read_text())
    assert changes == [] and env["versions"]["torch"] and "seed" in env
