"""outcomes.bin: per-image verdicts, bit-packed, append-only, torn-tail safe, truncated on resume, read as tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustft.runs import OutcomeBlock, Run, read_outcomes
from robustft.runs.outcomes import (
    LONG_COLUMNS,
    TABLE_COLUMNS,
    OutcomeRecordError,
    OutcomesWriter,
    _scan,
    outcome_rows,
    read_outcome_blocks,
    repair_outcomes,
    truncate_outcomes_after,
)


def _block(step: int, split: str = "test", n: int = 13, seed: int = 0, ids: np.ndarray | None = None,
           attacks: tuple[str, ...] = ("clean", "pgd"), eps: tuple[float, ...] = (0.0, 1 / 255)) -> OutcomeBlock:
    rng = np.random.default_rng(seed + 1000 * step)
    image_ids = np.arange(3, 3 + 5 * n, 5) if ids is None else ids
    return OutcomeBlock(step, split, "accuracy", attacks, eps, image_ids, rng.random((len(attacks), n)) < 0.6)


def _same(a: OutcomeBlock, b: OutcomeBlock) -> bool:
    return (a.step, a.split, a.metric, a.attacks, a.eps) == (b.step, b.split, b.metric, b.attacks, b.eps) and \
        np.array_equal(a.image_ids, b.image_ids) and np.array_equal(a.correct, b.correct)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run.create(tmp_path / "r", {"name": "r", "seed": 0})


def test_blocks_round_trip_and_each_subsets_ids_are_stored_once(run: Run) -> None:
    written = [_block(0), _block(0, "val", n=8, ids=np.arange(8)), _block(0, "ood:x", n=1, attacks=("clean",),
                                                                           eps=(0.0,))]
    later = [_block(5), _block(5, "val", n=8, ids=np.arange(8))]
    assert run.outcomes_writer().write(written) == 3
    assert run.outcomes_writer().write(later) == 2  # a new writer knows the ids already stored
    got = run.read_outcomes()
    assert len(got) == 5 and all(_same(a, b) for a, b in zip(got, written + later, strict=True))
    kinds = [e.header["kind"] for e in _scan(run.outcomes_path.read_bytes())[0]]
    assert kinds.count("ids") == 3 and kinds.count("outcomes") == 5


def test_a_changed_subset_gets_its_own_ids(run: Run) -> None:
    run.outcomes_writer().write([_block(0, n=8, ids=np.arange(8))])
    run.outcomes_writer().write([_block(1, n=6, ids=np.arange(100, 106))])
    first, second = run.read_outcomes()
    assert first.image_ids.tolist() == list(range(8)) and second.image_ids.tolist() == list(range(100, 106))


def test_large_ids_are_kept_exactly(run: Run) -> None:
    ids = np.array([0, 2**33 + 7, 2**40])
    run.outcomes_writer().write([_block(0, n=3, ids=ids)])
    assert run.read_outcomes()[0].image_ids.tolist() == ids.tolist()


@pytest.mark.parametrize("cut", [1, 5, 11, 40, -4, -1])
def test_a_torn_last_batch_is_ignored_by_readers_and_cut_by_the_next_writer(run: Run, cut: int) -> None:
    run.outcomes_writer().write([_block(0)])
    whole = run.outcomes_path.stat().st_size
    run.outcomes_writer().write([_block(1), _block(1, "val")])
    data = run.outcomes_path.read_bytes()
    torn = data[:whole + cut] if cut > 0 else data[:cut]
    run.outcomes_path.write_bytes(torn)
    expected = 1 if cut > 0 else 2  # cutting the tail off the second batch leaves its first block whole
    assert len(read_outcome_blocks(run.outcomes_path)) == expected
    writer = run.outcomes_writer()
    assert writer.repaired_bytes == len(torn) - run.outcomes_path.stat().st_size > 0
    writer.write([_block(2)])
    assert [b.step for b in run.read_outcomes()] == [0, 1][:expected] + [2]


def test_a_complete_last_record_with_a_bad_checksum_is_cut(run: Run) -> None:
    run.outcomes_writer().write([_block(0), _block(1)])
    data = bytearray(run.outcomes_path.read_bytes())
    data[-6] ^= 0xFF  # a payload byte of the last record
    run.outcomes_path.write_bytes(bytes(data))
    assert [b.step for b in run.read_outcomes()] == [0]
    assert repair_outcomes(run.outcomes_path) > 0
    assert [b.step for b in run.read_outcomes()] == [0]
    assert repair_outcomes(run.outcomes_path) == 0


def test_truncate_after_a_checkpoint_step_keeps_earlier_blocks_and_their_ids(run: Run) -> None:
    for step in (0, 2, 4, 6):
        run.outcomes_writer().write([_block(step), _block(step, "val", n=8, ids=np.arange(8))])
    assert run.truncate_outcomes_after(4) == 2
    assert sorted({b.step for b in run.read_outcomes()}) == [0, 2, 4]
    run.outcomes_writer().write([_block(5)])
    assert [b.step for b in run.read_outcomes()][-1] == 5
    assert truncate_outcomes_after(run.outcomes_path, -1) == 7  # killed before the first checkpoint: start clean
    assert run.read_outcomes() == [] and run.outcomes_path.stat().st_size == 0
    run.outcomes_writer().write([_block(0)])  # the ids are written again: the writer re-reads what is stored
    assert _same(run.read_outcomes()[0], _block(0))


def test_tables_one_row_per_evaluation_and_per_image(run: Run) -> None:
    blocks = [_block(0, n=5), _block(3, "ood:x", n=4, attacks=("clean",), eps=(0.0,))]
    run.outcomes_writer().write(blocks)
    table = read_outcomes(run.path)
    assert list(table.columns) == list(TABLE_COLUMNS) and len(table) == 3
    row = table.iloc[1]
    assert (row["step"], row["split"], row["attack"], row["eps"], row["n"]) == (0, "test", "pgd", 1 / 255, 5)
    assert row["correct"].tolist() == blocks[0].correct[1].tolist()
    long = outcome_rows(run.read_outcomes())
    assert list(long.columns) == list(LONG_COLUMNS) and len(long) == 2 * 5 + 4
    pgd = long[(long["attack"] == "pgd")]
    assert pgd["image_id"].tolist() == blocks[0].image_ids.tolist()
    assert pgd["correct"].tolist() == blocks[0].correct[1].tolist()


def test_a_run_without_outcomes_reads_as_empty_tables(run: Run) -> None:
    assert list(read_outcomes(run.path).columns) == list(TABLE_COLUMNS) and read_outcomes(run.path).empty
    assert list(outcome_rows([]).columns) == list(LONG_COLUMNS)


def test_inconsistent_blocks_are_refused() -> None:
    with pytest.raises(OutcomeRecordError, match="expected"):
        OutcomeBlock(0, "test", "accuracy", ("clean",), (0.0,), np.arange(4), np.ones((1, 5), bool))
    with pytest.raises(OutcomeRecordError, match="eps"):
        OutcomeBlock(0, "test", "accuracy", ("clean", "pgd"), (0.0,), np.arange(4), np.ones((2, 4), bool))


def test_a_failed_append_leaves_the_earlier_blocks(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from robustft.runs import RunWriteError

    run.outcomes_writer().write([_block(0)])
    before = run.outcomes_path.read_bytes()
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data)[:7]) and (_ for _ in ()).throw(
        OSError(28, "No space left on device")))
    with pytest.raises(RunWriteError, match="outcomes.bin"):
        OutcomesWriter(run.outcomes_path).write([_block(1)])
    monkeypatch.undo()
    assert run.outcomes_path.read_bytes() == before


def test_the_outcomes_view_of_query_has_one_row_per_image_of_every_run(tmp_path: Path, capsys) -> None:
    from robustft.cli import main
    from robustft.runs import query_runs

    blocks = {}
    for i, name in enumerate(("a", "b")):
        run = Run.create(tmp_path / "runs" / name, {"name": name, "seed": 0})
        blocks[name] = [_block(0, n=5, seed=i), _block(2, n=5, seed=i)]
        run.outcomes_writer().write(blocks[name])
    Run.create(tmp_path / "runs" / "old", {"name": "old", "seed": 0})  # written before outcomes existed
    frame = query_runs(tmp_path / "runs", "SELECT run, step, attack, image_id, correct FROM outcomes "
                                          "ORDER BY run, step, attack, image_id")
    assert len(frame) == 2 * 2 * 2 * 5
    want = blocks["b"][1].correct[1][np.argsort(blocks["b"][1].image_ids)]
    got = frame[(frame["run"] == "b") & (frame["step"] == 2) & (frame["attack"] == "pgd")]
    assert got["correct"].tolist() == want.tolist() and got["image_id"].tolist() == sorted(blocks["b"][1].image_ids)
    # the paired view a McNemar test needs: both runs' verdicts on the same image, side by side
    paired = query_runs(tmp_path / "runs", "SELECT count(*) AS n FROM outcomes x JOIN outcomes y USING "
                                           "(step, split, metric, attack, eps, image_id) WHERE x.run='a' AND y.run='b'")
    assert paired["n"].tolist() == [20]
    assert main(["query", "SELECT count(*) AS images FROM outcomes WHERE correct", str(tmp_path / "runs")]) == 0
    assert str(sum(int(b.correct.sum()) for bs in blocks.values() for b in bs)) in capsys.readouterr().out
