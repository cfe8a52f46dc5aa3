"""The study's shared step-0 evaluation is a fast path: it equals the evaluation computed fresh, for every registered
strategy x every built-in backbone (``training.evaluation_reuse``).

For each case the run is built as ``training.trainer.train`` builds it (the run seed set, the backbone, the strategy
applied with its example options) and evaluated at step 0 twice: through a study directory that already holds the
reference run's entry (full fine-tuning of the same backbone) and fresh, with no sharing. (a) The records and the
outcome blocks must be equal exactly, whether the entry was reused or not. (b) The key must differ from the
reference's wherever the prepared model's logits on the evaluated images differ from the reference's by a single
bit: a strategy whose initialisation changes the function, a merge that rounds differently (peft's HRA), another
pretrained backbone of the same architecture. The strategies and backbones come from ``test_fast_paths`` (the
registry, the three tiny backbones, the exact table of cases that do not apply). Also: the write race of two runs
starting at once, and damaged entries.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from robustft import strategies
from robustft.attacks import prepare_for_attack
from robustft.config import section_from_dict
from robustft.errors import MissingAssetError
from robustft.models.wrapper import RobustModel
from robustft.runs.outcomes import OutcomeBlock
from robustft.strategies import StrategyNotApplicableError
from robustft.training import evaluation_reuse
from robustft.training.evaluation_reuse import EvaluationReuse, evaluation_key
from robustft.training.evaluator import Evaluator
from test_fast_paths import BACKBONES, EMBEDDED, NOT_APPLICABLE, OPTIONS, pretrained_like, strategy_names

# What the module docstring of training.evaluation_reuse claims, asserted exactly: the attacked copy of VPT keeps
# hooked modules (its prompts), so it has no key and never shares; these others are one computation with full
# fine-tuning at step 0 on every backbone (adapters and Compacter: their zero up-projections are exact identities,
# dropped from the copy by strategies.merge).
NEVER_SHARED = {"vpt"}
CLAIMED_SHARED = {"full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter"}
SEED = 0


class Images:
    """16 seeded images 3 x side x side in [0, 1], 10 classes."""

    def __init__(self, seed: int, side: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(16, 3, side, side, generator=generator)
        self.labels = torch.randint(0, 10, (16,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


def make_evaluator(side: int = 32) -> Evaluator:
    """Two splits and one OOD split of 16 images; PGD-2 at 2/255, the robust curve on test (0, 1/255, 2/255)."""
    cfg = section_from_dict("eval", {"subset": 16, "batch_size": 16, "splits": ["val", "test"],
                                     "attack": {"name": "pgd", "steps": 2, "step_size": "1/255"}, "eps": ["2/255"],
                                     "curve": "2/255", "final": {"name": "fgsm", "steps": 1}})
    return Evaluator({"val": Images(1, side), "test": Images(2, side)}, {"shifted": Images(3, side)}, cfg, SEED,
                     torch.device("cpu"))


def evaluated_images(evaluator: Evaluator) -> torch.Tensor:
    return torch.cat([s.images for s in [*evaluator.subsets, *evaluator.ood]])


def step0_model(backbone: str, name: str, build: Callable[[], RobustModel], pretrained_seed: int = 0
                ) -> RobustModel:
    """The model of a run at step 0, built as ``train`` builds it (seed set, model built, strategy applied);
    tiny backbones get pretrained-like BatchNorms. ``pretrained_seed`` > 0: another pretrained backbone of the same
    architecture (every weight moved by seeded noise, 1% of its RMS)."""
    if name.startswith("peft:"):
        pytest.importorskip("peft")
    torch.manual_seed(SEED)
    model = build()
    if backbone.startswith("tiny-"):
        pretrained_like(model, torch.Generator().manual_seed(0))
    if pretrained_seed:
        generator = torch.Generator().manual_seed(pretrained_seed)
        with torch.no_grad():
            for param in model.parameters():
                rms = float(param.float().pow(2).mean().sqrt())
                param.add_(0.01 * (rms or 1.0) * torch.randn(param.shape, generator=generator))
    strategy, _ = strategies.resolve_name(name, {})
    options = {k: v for k, v in strategy.example_options.items() if k != "type"} | OPTIONS.get(name, {})
    try:
        strategies.apply(model, name, **options)
    except StrategyNotApplicableError as error:
        assert (backbone, name) in NOT_APPLICABLE, f"{name} unexpectedly refused {backbone}: {error}"
        pytest.skip(f"{name} does not apply to {backbone} (expected)")
    return model.eval()


def key_of(model: RobustModel, evaluator: Evaluator) -> str | None:
    return evaluation_key(prepare_for_attack(model.eval()), evaluator, 0, False)


@torch.no_grad()
def prepared_logits(model: RobustModel, evaluator: Evaluator) -> torch.Tensor:
    return prepare_for_attack(model.eval())(evaluated_images(evaluator))


def rows(blocks: list[OutcomeBlock]) -> list[tuple]:
    """Outcome blocks as comparable tuples, every field (ids and verdicts element by element)."""
    return [(b.step, b.split, b.metric, tuple(b.attacks), tuple(b.eps), np.asarray(b.image_ids).tolist(),
             np.asarray(b.correct).tolist()) for b in blocks]


@dataclasses.dataclass
class Reference:
    """The reference run of a backbone (full fine-tuning at step 0) and the study directory holding its entry."""

    evaluator: Evaluator
    directory: Path
    key: str
    logits: torch.Tensor


def make_reference(backbone: str, build: Callable[[], RobustModel], directory: Path, side: int) -> Reference:
    evaluator = make_evaluator(side)
    model = step0_model(backbone, "full", build)
    EvaluationReuse(directory).evaluate(evaluator, copy.deepcopy(model), 0, 0.0, False)
    assert len(list(directory.glob("*.npz"))) == 1
    key = key_of(model, evaluator)
    assert key is not None
    return Reference(evaluator, directory, key, prepared_logits(model, evaluator))


_REFERENCES: dict[str, Reference] = {}


@pytest.fixture
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Reference]:
    def get(backbone: str) -> Reference:
        if backbone not in _REFERENCES:  # once per backbone: the entry every case of it may reuse
            _REFERENCES[backbone] = make_reference(backbone, BACKBONES[backbone],
                                                   tmp_path_factory.mktemp(f"study-{backbone}"), 32)
        return _REFERENCES[backbone]
    return get


def check_shared_equals_fresh(backbone: str, name: str, build: Callable[[], RobustModel], ref: Reference,
                              study: Path) -> None:
    """(a) through a study holding the reference's entry, the step-0 records and outcomes equal fresh ones."""
    shutil.copytree(ref.directory, study)  # this case's own study: what it writes cannot reach another case
    model = step0_model(backbone, name, build)
    key = key_of(model, ref.evaluator)
    assert (key is None) == (name in NEVER_SHARED), f"{name}: key {key}"
    if name in CLAIMED_SHARED:
        assert key == ref.key, f"{name} no longer shares step 0 with full fine-tuning on {backbone}"
    fresh_records, fresh_blocks = ref.evaluator.evaluate(copy.deepcopy(model), 0, 0.0, final=False)
    sharing = EvaluationReuse(study)
    records, blocks = sharing.evaluate(ref.evaluator, model, 0, 0.0, False)
    assert sharing.reused == (key == ref.key)
    assert records == fresh_records
    assert rows(blocks) == rows(fresh_blocks)
    assert {b.split for b in blocks} == {"val", "test", "ood:shifted"}  # several splits: a swap would show


def check_key_follows_logits(backbone: str, name: str, build: Callable[[], RobustModel], ref: Reference) -> None:
    """(b) the key differs from the reference's wherever the prepared logits differ by one bit; equal keys mean
    bitwise-equal logits. Also on another pretrained backbone of the same architecture."""
    keys = []
    for pretrained_seed in (0, 1):
        model = step0_model(backbone, name, build, pretrained_seed)
        key, logits = key_of(model, ref.evaluator), prepared_logits(model, ref.evaluator)
        if not torch.equal(logits, ref.logits):
            assert key != ref.key, f"{name} (pretrained {pretrained_seed}) computes other logits under the same key"
        if key is not None and key == ref.key:
            assert torch.equal(logits, ref.logits)
        if pretrained_seed == 1:  # the same strategy on another backbone: other logits, never the same entry
            assert not torch.equal(logits, ref.logits)
            assert key is None or key not in keys, f"{name}: two pretrained backbones, one key"
        keys.append(key)


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_a_shared_step0_evaluation_equals_the_fresh_one(backbone, name, reference, tmp_path):
    check_shared_equals_fresh(backbone, name, BACKBONES[backbone], reference(backbone), tmp_path / "study")


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_the_key_differs_wherever_the_step0_logits_differ(backbone, name, reference):
    check_key_follows_logits(backbone, name, BACKBONES[backbone], reference(backbone))


@pytest.mark.slow
@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("backbone", sorted(EMBEDDED))
def test_the_shared_step0_evaluation_on_the_embedded_backbones(backbone, name, tmp_path_factory, tmp_path):
    from robustft.models import build

    side = EMBEDDED[backbone]

    def embedded() -> RobustModel:
        return build(backbone, 10, pretrained=True, image_size=side)

    try:
        embedded()
    except MissingAssetError as error:
        pytest.skip(str(error))
    key = f"embedded-{backbone}"
    if key not in _REFERENCES:
        _REFERENCES[key] = make_reference(backbone, embedded, tmp_path_factory.mktemp(f"study-{backbone}"), side)
    check_shared_equals_fresh(backbone, name, embedded, _REFERENCES[key], tmp_path / "study")
    check_key_follows_logits(backbone, name, embedded, _REFERENCES[key])


def _tiny_run(name: str) -> RobustModel:
    return step0_model("tiny-mobilenet", name, BACKBONES["tiny-mobilenet"])


@pytest.mark.parametrize("order", ["first-run-writes-first", "second-run-writes-first"])
def test_two_runs_starting_at_once_leave_one_valid_entry_and_equal_results(tmp_path, monkeypatch, order):
    """Both runs find no entry, both compute, then both write the same key, in either order: one readable entry,
    no temporary file left, equal to both computations, and the next run reuses it."""
    evaluator, study = make_evaluator(), tmp_path / ".evaluations"
    writes: list[tuple] = []
    real_write = evaluation_reuse._write
    monkeypatch.setattr(evaluation_reuse, "_write", lambda *entry: writes.append(entry))  # held back: a race
    runs = EvaluationReuse(study), EvaluationReuse(study)
    first = runs[0].evaluate(evaluator, _tiny_run("full"), 0, 0.0, False)
    second = runs[1].evaluate(evaluator, _tiny_run("linear"), 0, 0.0, False)
    assert not runs[0].reused and not runs[1].reused  # both computed step 0
    assert len(writes) == 2 and writes[0][0] == writes[1][0]  # same key: the same entry written twice
    for entry in writes if order == "first-run-writes-first" else writes[::-1]:
        real_write(*entry)
    monkeypatch.setattr(evaluation_reuse, "_write", real_write)
    assert [p.name for p in study.iterdir()] == [writes[0][0].name]  # one entry, no temporary file left
    stored = evaluation_reuse._read(writes[0][0])
    assert stored is not None
    for computed in (first, second):
        assert stored[0] == computed[0] and rows(stored[1]) == rows(computed[1])
    third = EvaluationReuse(study)
    records, blocks = third.evaluate(evaluator, _tiny_run("bitfit"), 0, 0.0, False)
    assert third.reused and records == first[0] and rows(blocks) == rows(first[1])


def _without_last_array(path: Path) -> None:
    with np.load(path, allow_pickle=False) as entry:
        arrays = {name: entry[name] for name in entry.files}
    arrays.pop(max(name for name in arrays if name.startswith("correct")))
    with path.open("wb") as stream:
        np.savez(stream, **arrays)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "empty": lambda p: p.write_bytes(b""),
    "cut after 50 bytes": lambda p: p.write_bytes(p.read_bytes()[:50]),
    "cut in half": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
    "last 10 bytes lost": lambda p: p.write_bytes(p.read_bytes()[:-10]),
    "an array missing": _without_last_array,
    "header not JSON": lambda p: np.savez(p.with_suffix(""), header=np.array("{records")),  # savez adds .npz
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_entry_is_computed_again_and_replaced(tmp_path, damage):
    evaluator, study = make_evaluator(), tmp_path / ".evaluations"
    first = EvaluationReuse(study).evaluate(evaluator, _tiny_run("full"), 0, 0.0, False)
    [entry] = study.glob("*.npz")
    DAMAGES[damage](entry)
    again = EvaluationReuse(study)
    records, blocks = again.evaluate(evaluator, _tiny_run("linear"), 0, 0.0, False)
    assert not again.reused and records == first[0] and rows(blocks) == rows(first[1])
    after = EvaluationReuse(study)  # the recomputed entry replaced the damaged one
    records, blocks = after.evaluate(evaluator, _tiny_run("full"), 0, 0.0, False)
    assert after.reused and records == first[0] and rows(blocks) == rows(first[1])
