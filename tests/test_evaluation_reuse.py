"""Step-0 evaluations shared by a study's runs exactly where they are the same computation; evaluation share."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from robustft.attacks import prepare_for_attack
from robustft.config.units import parse_eps
from robustft.models.tiny import tiny_cnn
from robustft.runs.outcomes import read_outcome_blocks
from robustft.strategies import apply
from robustft.training.evaluation_reuse import SHARED_DIR, evaluation_key, shared_directory
from robustft.training.evaluation_step import study_evaluation_share
from robustft.training.evaluator import Evaluator
from robustft.training.trainer import train
from test_train import tiny_config, tiny_splits


def _config(root: Path, name: str, strategy: str) -> dict:
    return tiny_config(root, name=name, strategy={"name": strategy}, objective={"name": "standard"},
                       eps={"schedule": "zero"}, train={"epochs": 1})


def _step0(path: Path) -> list[dict]:
    return [r for r in map(json.loads, (path / "metrics.jsonl").read_text().splitlines())
            if r["step"] == 0 and r["split"] != "optim"]


def _step0_outcomes(path: Path) -> list[tuple]:
    return [(b.split, b.metric, b.attacks, b.eps, b.image_ids.tolist(), b.correct.tolist())
            for b in read_outcome_blocks(path / "outcomes.bin") if b.step == 0]


def test_a_study_computes_a_shared_step0_once_and_the_reused_one_equals_a_computed_one(tmp_path):
    study, alone = tmp_path / "study", tmp_path / "alone"
    study.mkdir()
    (study / "sweep.json").write_text("{}")
    first = train(_config(study, "full", "full"), model=tiny_cnn(4), datasets=tiny_splits())
    assert not first.summary["evaluation_reused"]
    assert len(list((study / SHARED_DIR).glob("*.npz"))) == 1
    reused = train(_config(study, "linear", "linear"), model=tiny_cnn(4), datasets=tiny_splits())
    computed = train(_config(alone, "linear", "linear"), model=tiny_cnn(4), datasets=tiny_splits())
    assert reused.summary["evaluation_reused"] and not computed.summary["evaluation_reused"]
    assert not (alone / SHARED_DIR).exists()  # a lone run shares nothing
    assert _step0(reused.path) == _step0(computed.path) == _step0(first.path)
    assert _step0_outcomes(reused.path) == _step0_outcomes(computed.path)
    # the rest of the run is its own: linear probing and full fine-tuning part after step 0
    assert reused.summary["final"] == computed.summary["final"] != first.summary["final"]


def _evaluator(eps: str = "2/255", images_seed: int = 2) -> Evaluator:
    splits = tiny_splits()
    splits["test"].images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(images_seed))
    cfg = dataclasses.replace(tiny_config(Path(".")).eval, eps=[parse_eps(eps)])
    return Evaluator({k: v for k, v in splits.items() if k != "ood"}, splits["ood"], cfg, 0, torch.device("cpu"))


def _key(model: torch.nn.Module, evaluator: Evaluator | None = None) -> str | None:
    return evaluation_key(prepare_for_attack(model.eval()), evaluator or _evaluator(), 0, False)


def test_the_key_names_exactly_what_is_computed():
    full = tiny_cnn(4)
    key = _key(full)
    lora = tiny_cnn(4)
    apply(lora, "lora", r=2, alpha=2)  # B = 0: the merged copy holds W + 0 = W, the same computation
    assert key == _key(tiny_cnn(4)) == _key(lora)
    nudged = tiny_cnn(4)
    with torch.no_grad():
        weight = nudged.backbone.classifier.weight
        weight[0, 0] = torch.nextafter(weight[0, 0], torch.tensor(1.0))  # one ulp
    assert _key(nudged) != key
    assert _key(tiny_cnn(4), _evaluator(eps="1/255")) != key
    assert _key(tiny_cnn(4), _evaluator(images_seed=5)) != key
    assert evaluation_key(prepare_for_attack(full.eval()), _evaluator(), 1, False) != key


def test_a_copy_with_hooks_has_no_key():
    adapted = tiny_cnn(4)
    apply(adapted, "adapter")
    assert _key(adapted) == _key(tiny_cnn(4))  # identities at init: dropped from the copy, the plain computation
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if name.endswith("adapter.up.bias"):
                param.fill_(1e-3)  # as after a step: the copy keeps the hooked adapters
    assert _key(adapted) is None


def test_only_a_study_or_sweep_directory_shares(tmp_path):
    assert shared_directory(tmp_path) is None
    (tmp_path / "sweep.json").write_text("{}")
    assert shared_directory(tmp_path) == tmp_path / SHARED_DIR


def test_a_damaged_entry_is_computed_again(tmp_path):
    (tmp_path / "sweep.json").write_text("{}")
    first = train(_config(tmp_path, "a", "full"), model=tiny_cnn(4), datasets=tiny_splits())
    for entry in (tmp_path / SHARED_DIR).glob("*.npz"):
        entry.write_bytes(entry.read_bytes()[:50])
    again = train(_config(tmp_path, "b", "full"), model=tiny_cnn(4), datasets=tiny_splits())
    assert not again.summary["evaluation_reused"]
    assert _step0(again.path) == _step0(first.path)


def test_the_summary_states_the_evaluation_share_consistently(tmp_path):
    summary = train(_config(tmp_path, "a", "full"), model=tiny_cnn(4), datasets=tiny_splits()).summary
    assert 0.0 <= summary["eval_share"] <= 1.0
    assert summary["eval_share"] == pytest.approx(summary["eval_seconds"] / summary["wall_seconds"])
    assert 0.0 < summary["eval_seconds"] <= summary["wall_seconds"]
    assert summary["evaluation_points"] == 3  # every:2 over 4 steps: 0, 2, 4


def test_the_study_share_sums_the_runs_and_skips_runs_without_timings():
    runs = [{"eval_seconds": 1.0, "wall_seconds": 4.0}, {"eval_seconds": 3.0, "wall_seconds": 4.0}, None,
            {"wall_seconds": 9.0}]
    assert study_evaluation_share(runs) == (4.0, 8.0, 0.5)
    assert study_evaluation_share([]) == (0.0, 0.0, None)


def test_the_console_summary_prints_the_share_and_nothing_without_timings():
    from robustft.cli.train_cmd import evaluation_line

    line = evaluation_line({"eval_seconds": 11.5, "wall_seconds": 42.7, "eval_share": 11.5 / 42.7,
                            "evaluation_points": 5, "evaluation_reused": True})
    assert line == ("evaluation: 11.5 s of 42.7 s wall (27%), 5 points, step 0 shared with an earlier run of the "
                    "study")
    assert evaluation_line({"eval_seconds": None, "wall_seconds": 3.0}) is None
    assert evaluation_line(None) is None
