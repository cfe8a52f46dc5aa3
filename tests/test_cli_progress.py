"""Progress that works in a log file: plain lines per phase and evaluation point off a terminal; a bar on one."""

from __future__ import annotations

import io
from pathlib import Path

import yaml
from tests.test_train import tiny_splits

from robustft.cli import main
from robustft.training import components
from robustft.training.loggers import RunLoggers


def _records(step: int, clean: float, robust: float) -> list[dict]:
    return [{"step": step, "split": "val", "metric": "accuracy", "attack": "clean", "eps": 0.0, "value": clean},
            {"step": step, "split": "val", "metric": "accuracy", "attack": "pgd", "eps": 1 / 255, "value": robust},
            {"step": step, "split": "optim", "metric": "lr", "attack": None, "eps": None, "value": 0.1}]


def _simulate(loggers: RunLoggers) -> None:
    loggers.evaluating(0, final=False)
    loggers.records(_records(0, 0.1, 0.05))
    for step in range(1, 5):
        loggers.step(0, 1.0 / step, 0.0)
    loggers.evaluating(4, final=True)
    loggers.records(_records(4, 0.8, 0.3))
    loggers.close()


def test_off_a_terminal_one_plain_line_per_phase_and_point(tmp_path):
    stream = io.StringIO()
    _simulate(RunLoggers(tmp_path, 4, 0, True, False, False, "run", stream=stream, tty=False))
    text = stream.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "robustft: run: training: 4 steps, from step 0",
        text.splitlines()[1],
        "robustft: run: final evaluation at step 4",
        text.splitlines()[3],
    ]
    first = text.splitlines()[1]
    assert first.startswith("robustft: run: step 0/4 epoch 0 eps 0 | val/clean 0.100 val/pgd@1/255 0.050")
    last = text.splitlines()[3]
    assert last.startswith("robustft: run: step 4/4 epoch 0 loss 0.521 eps 0 | val/clean 0.800 val/pgd@1/255 0.300")
    assert "(final evaluation " in last


def test_on_a_terminal_the_bar_names_the_final_evaluation(tmp_path):
    stream = io.StringIO()
    loggers = RunLoggers(tmp_path, 2, 0, True, False, False, "run", stream=stream, tty=True)
    loggers.step(0, 0.5, 0.0)
    loggers.step(0, 0.5, 0.0)
    loggers.evaluating(2, final=True)
    assert loggers.bar.desc.startswith("run [final evaluation]")
    loggers.records(_records(2, 0.8, 0.3))
    assert loggers.bar.desc.rstrip(": ") == "run" and loggers.bar.postfix.endswith("val/pgd@1/255=0.300")
    loggers.close()


def test_train_to_a_log_file_writes_readable_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(components, "load_datasets", lambda cfg: tiny_splits())
    config = {"name": "log", "output_dir": str(tmp_path / "runs"), "device": "cpu",
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
              "optim": {"batch_size": 16}, "train": {"steps": 4, "epochs": None},
              "eval": {"schedule": "every:2", "subset": 8, "attack": {"name": "pgd", "steps": 1, "step_size": "1eps"},
                       "eps": ["1/255"],
                       "final": {"name": "fgsm"}},
              "logging": {"progress": True}}
    path = Path(tmp_path / "c.yaml")
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("robustft: log: ")]
    assert [line.split()[2] for line in lines] == ["training:", "step", "step", "final", "step"]
    assert "test/final:fgsm@4/255" in lines[-1] or "final:fgsm" in lines[-1]
