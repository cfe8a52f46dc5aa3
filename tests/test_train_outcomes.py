"""The trainer stores the per-image outcomes behind its accuracy records in outcomes.bin, resumable like metrics."""

from __future__ import annotations

from pathlib import Path

from robustft.models.tiny import tiny_cnn
from robustft.runs import Run, read_outcomes
from robustft.training.trainer import train
from test_train import read_records, tiny_config, tiny_splits


def _blocks(path: Path) -> list[tuple]:
    return [(b.step, b.split, b.metric, b.attacks, b.eps, b.image_ids.tolist(), b.correct.tolist())
            for b in Run(path).read_outcomes()]


def test_every_accuracy_record_of_a_run_has_its_per_image_outcomes(tmp_path):
    result = train(tiny_config(tmp_path), model=tiny_cnn(4), datasets=tiny_splits())
    table = read_outcomes(result.path)
    by_key = {(r.step, r.split, r.metric, r.attack, r.eps): r for r in table.itertuples()}
    accuracy = [r for r in read_records(result.path) if r["metric"] in ("accuracy", "curve_accuracy")
                and r["split"] != "optim"]
    assert len(by_key) == len(table) == len(accuracy) > 0
    for record in accuracy:
        row = by_key[(record["step"], record["split"], record["metric"], record["attack"], record["eps"])]
        assert row.n == record["n"] and row.correct.mean() == record["value"]
    assert sorted(set(table["step"])) == [0, 2, 4, 6, 8]


def test_a_resume_without_a_checkpoint_starts_the_outcomes_afresh(tmp_path):
    config = tiny_config(tmp_path, train={"epochs": 1}, objective={"name": "standard"}, eps={"schedule": "zero"})
    first = train(config, model=tiny_cnn(4), datasets=tiny_splits())
    written = _blocks(first.path)
    for checkpoint in (first.path / "checkpoints").glob("*.pt"):
        checkpoint.unlink()  # as if killed before the first checkpoint: the run starts again from step 0
    again = train(None, resume=first.path, model=tiny_cnn(4), datasets=tiny_splits())
    assert _blocks(again.path) == written  # each block once, as the first time
