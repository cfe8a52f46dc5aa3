"""Ctrl-C (SIGINT) or SIGTERM in ``robustft train``: a checkpoint at the current step, the resume command, exit
130 / 143, and a resumed run equal to one never interrupted (no metric record lost or doubled).

Real ``robustft train`` processes (the command line's ``main``) on a tiny CNN and tiny in-memory data, signalled
by this test at a chosen point: the child stops there and waits for the signal (files as the handshake), so what
is tested does not depend on timing.
"""

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
import torch
import yaml

from robustft.runs.interrupt import RunInterrupted, StopNow, StopRequest

CHILD = textwrap.dedent('''
    import os
    import sys
    import time
    import torch
    torch.set_num_threads(1)
    from robustft.cli import main
    from robustft.training import components
    from robustft.training.evaluator import Evaluator
    from robustft.training.trainer import Trainer

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

    splits = {"train": TinyData(96, 0), "val": TinyData(16, 1), "test": TinyData(16, 2)}
    components.load_datasets = lambda cfg: splits

    def wait_for_the_signal(marker):
        open(marker + ".ready", "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(marker + ".go") and time.monotonic() < deadline:
            time.sleep(0.02)

    hold = os.environ.get("HOLD")  # "update:S": inside the update that makes step S; "evaluate:S": in its evaluation
    if hold:
        where, at = hold.split(":")
        marker = os.environ["MARKER"]
        if where == "update":
            update = Trainer.update
            def held_update(self, batches, eps):
                loss = update(self, batches, eps)
                if self.step + 1 == int(at):
                    wait_for_the_signal(marker)
                return loss
            Trainer.update = held_update
        else:
            evaluate = Evaluator.evaluate
            def held_evaluate(self, model, step, epoch, final=False):
                if step == int(at):
                    wait_for_the_signal(marker)
                return evaluate(self, model, step, epoch, final=final)
            Evaluator.evaluate = held_evaluate
    sys.exit(main(sys.argv[1:]))
''')

# 96 samples in batches of 16: 6 steps an epoch, 12 in all, evaluated at 0, 4, 8 and 12. Adversarial training
# with a per-step eps ramp and random starts, so the resumed run must restore the RNG, the sums and the eps.
CONFIG = {
    "name": "run", "device": "cpu", "seed": 5,
    "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
    "objective": {"name": "adversarial", "steps": 2},
    "eps": {"schedule": "linear", "value": "4/255", "per": "step"},
    "optim": {"batch_size": 16, "lr": 5.0e-3, "warmup": 2},
    "train": {"epochs": 2},
    "eval": {"schedule": "every:4", "subset": 16, "batch_size": 16, "splits": ["val", "test"],
             "attack": {"name": "pgd", "steps": 2, "step_size": "0.5eps"}, "eps": ["2/255"], "final": None},
    "logging": {"progress": False},
}
EVALUATED = [0, 4, 8, 12]


def _default_stop_signals() -> None:
    """The child as a terminal starts it: a shell's background job (`cmd &`, how CI may run) inherits SIGINT
    ignored, and robustft rightly leaves an ignored signal ignored (tested below)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def _launch(tmp_path: Path, *argv: str, **env: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), *argv, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": "0", **env},
                            preexec_fn=_default_stop_signals)


@pytest.fixture
def interruptible():
    """SIGINT handled as in an interactive process for the test, whatever this process inherited."""
    inherited = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def _start(tmp_path: Path, output: str, **env: str) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / f"{output}.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp_path / output)}))
    return _launch(tmp_path, "train", str(config), **env), tmp_path / output / "run"


def _records(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def _signal_when_held(child: subprocess.Popen, marker: Path, signum: int) -> tuple[str, str]:
    deadline = time.monotonic() + 180
    while not Path(f"{marker}.ready").exists():
        assert child.poll() is None, child.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the child never reached the point to be signalled"
        time.sleep(0.05)
    child.send_signal(signum)
    Path(f"{marker}.go").touch()  # let it go on (a held update): it acts on the signal after this step
    return child.communicate(timeout=180)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("reference")
    child, run = _start(tmp_path, "reference")
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-2000:]
    assert sorted({r["step"] for r in _records(run)}) == EVALUATED
    return run


@pytest.mark.parametrize("signum, hold, stopped_at", [
    (signal.SIGINT, "update:6", 6),  # between two evaluation points: 2 steps past the last one
    (signal.SIGTERM, "evaluate:8", 8),  # in an evaluation: cut short, done first when resumed
])
def test_a_signalled_run_checkpoints_names_its_resume_and_resumes_exactly(tmp_path, reference, signum, hold,
                                                                         stopped_at):
    child, run = _start(tmp_path, "victim", HOLD=hold, MARKER=str(tmp_path / "held"))
    _, err = _signal_when_held(child, tmp_path / "held", signum)
    assert child.returncode == 128 + signum, err[-2000:]  # 130 for SIGINT, 143 for SIGTERM
    name = signal.Signals(signum).name
    assert f"training stopped by {name} at step {stopped_at}; checkpoint saved at step {stopped_at}" in err
    assert f"robustft: to resume, run: robustft train --resume {run}" in err
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["step"] == stopped_at
    assert (checkpoint.get("pending_evaluation") is not None) == hold.startswith("evaluate")
    assert sorted({r["step"] for r in _records(run)}) == [0, 4]  # up to the last evaluation point, nothing more
    assert not (run / "summary.json").exists()

    resumed = _launch(tmp_path, "train", "--resume", str(run))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    got, want = _records(run), _records(reference)
    keys = [(r["step"], r["split"], r["metric"], r["attack"], r["eps"]) for r in got]
    assert len(keys) == len(set(keys)), "a record was written twice"
    assert sorted({r["step"] for r in got}) == EVALUATED  # no evaluation point lost
    assert got == want  # the same records, in the same order, with the same values as the uninterrupted run
    assert json.loads((run / "summary.json").read_text())["final"] == \
        json.loads((reference / "summary.json").read_text())["final"]


def test_stop_request_defers_the_first_signal_and_stops_at_once_on_the_second(interruptible):
    previous = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # recorded only: the step in progress goes on
        assert stop.requested and stop.signum == signal.SIGINT
        with pytest.raises(StopNow):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous  # restored on exit
    with StopRequest() as stop, pytest.raises(StopNow), stop.abortable():
        os.kill(os.getpid(), signal.SIGTERM)  # an evaluation stops at the first one
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(StopNow), stop.abortable():  # a signal pending on entry: it does not start
            raise AssertionError("entered an abortable stretch with a stop pending")


def test_run_interrupted_says_where_the_run_resumes_from(tmp_path):
    stopped = RunInterrupted(signal.SIGTERM, tmp_path, 7, saved=True)
    assert stopped.exit_status == 143 and isinstance(stopped, KeyboardInterrupt)
    assert str(stopped) == f"training stopped by SIGTERM at step 7; checkpoint saved at step 7 " \
                           f"({tmp_path / 'checkpoints' / 'last.pt'})"
    assert stopped.resume_command == f"robustft train --resume {tmp_path}"
    assert "starts the run over" in str(RunInterrupted(signal.SIGINT, tmp_path, 3, saved=False))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    assert "resumes from its last checkpoint" in str(RunInterrupted(signal.SIGINT, tmp_path, 3, saved=False))


def test_stop_request_leaves_an_ignored_signal_ignored(interruptible):
    # nohup / a background job ignores SIGINT on purpose: StopRequest must not start catching it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with StopRequest() as stop:
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        assert not stop.requested
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
