"""summary.json's evaluation share is computed from the times measured around the evaluations and the run.

With a clock that advances only inside evaluations (10 s each) and training steps (1 s each), the summary must
hold exactly those sums: a share computed from anything else (CPU time, a span that misses the evaluation, an
estimate) gives other numbers.
"""

from __future__ import annotations

import time
import types

import pytest

from robustft.models.tiny import tiny_cnn
from robustft.training import evaluation_step, loggers, state, trainer
from robustft.training.evaluator import Evaluator
from robustft.training.trainer import Trainer, train
from test_train import tiny_config, tiny_splits

EVALUATION, STEP = 10.0, 1.0


def test_the_share_is_the_measured_evaluation_time_over_the_measured_wall_time(tmp_path, monkeypatch):
    now = [1000.0]
    clock = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    clock.perf_counter = lambda: now[0]
    for module in (trainer, evaluation_step, state, loggers):
        monkeypatch.setattr(module, "time", clock)

    def advancing(method, seconds):
        def wrapper(*args, **kwargs):
            result = method(*args, **kwargs)
            now[0] += seconds
            return result
        return wrapper

    monkeypatch.setattr(Evaluator, "evaluate", advancing(Evaluator.evaluate, EVALUATION))
    monkeypatch.setattr(Trainer, "update", advancing(Trainer.update, STEP))
    config = tiny_config(tmp_path, objective={"name": "standard"}, eps={"schedule": "zero"}, train={"epochs": 1})
    summary = train(config, model=tiny_cnn(4), datasets=tiny_splits()).summary
    points, steps = summary["evaluation_points"], summary["steps"]
    assert (points, steps) == (3, 4)  # every:2 over 4 steps: 0, 2, 4
    assert summary["eval_seconds"] == pytest.approx(points * EVALUATION)
    assert summary["wall_seconds"] == pytest.approx(points * EVALUATION + steps * STEP)
    assert summary["eval_share"] == pytest.approx(30.0 / 34.0)
