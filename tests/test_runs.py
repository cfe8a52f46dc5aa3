"""Run directories: creation, append-only metrics with torn-line repair, resume truncation, queries across runs."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from robustft.config import from_dict, load_config, to_dict
from robustft.errors import RobustftError
from robustft.runs import (
    METRIC_FIELDS,
    MetricRecordError,
    Run,
    RunExistsError,
    RunNotFoundError,
    RunWriteError,
    find_run_dirs,
    load_runs,
    metrics_frame,
    query_runs,
    read_metrics,
)


def make_config(**changes: str) -> dict:
    return to_dict(load_config(None, [f"{k}={v}" for k, v in changes.items()]))


def rec(step: int, metric: str = "accuracy", split: str = "val", value: float = 0.5, **more) -> dict:
    return {"step": step, "epoch": step // 10, "split": split, "metric": metric, "value": value, **more}


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run.create(tmp_path / "runs" / "demo", make_config(), device="cpu")


def test_create_writes_resolved_config_and_environment(run: Run) -> None:
    assert run.path.is_dir() and run.checkpoints_dir.is_dir()
    assert from_dict(run.config) == load_config(None)
    assert yaml.safe_load(run.config_path.read_text())["eps"]["value"] == "4/255"
    env = json.loads(run.env_path.read_text())
    assert env["device"] == "cpu" and env["seed"] == 0
    assert {"python", "torch", "robustft"} <= set(env["versions"])
    assert env["hostname"] and env["start_time"].endswith("+00:00")
    assert not list(run.path.glob(".*.tmp"))


def test_existing_run_directory_is_refused_with_the_resume_hint(run: Run) -> None:
    with pytest.raises(RunExistsError, match="--resume"):
        Run.create(run.path, make_config())
    run.metrics_writer().write([rec(0)])
    again = Run.create(run.path, make_config(seed="3"), exist_ok=True)
    assert again.config["seed"] == 3
    assert len(again.read_records()) == 1  # exist_ok keeps what was written


def test_open_missing_or_foreign_directory(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError, match="does not exist"):
        Run.open(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunNotFoundError, match="not a robustft run"):
        Run.open(tmp_path / "plain")


def test_writer_appends_complete_normalised_lines(run: Run) -> None:
    writer = run.metrics_writer()
    assert writer.write([rec(0), rec(0, "accuracy", "test", 0.25, attack="pgd", eps=1 / 255, n=8)]) == 2
    assert writer.write([]) == 0
    writer.write([rec(10, extra={"note": "x"})])
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert list(first) == list(METRIC_FIELDS)
    assert first["attack"] is None and first["n"] is None
    assert json.loads(lines[2])["extra"] == {"note": "x"}


def test_ood_splits_are_accepted(run: Run) -> None:
    run.metrics_writer().write([rec(0, split="ood:fashion-mnist@contrast:3")])
    assert run.read_records()[0]["split"] == "ood:fashion-mnist@contrast:3"


def test_config_that_is_not_plain_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RobustftError, match="to_dict"):
        Run.create(tmp_path / "r", {"model": object()})


def test_numpy_and_torch_scalars_are_accepted(run: Run) -> None:
    import numpy as np
    import torch

    run.metrics_writer().write([rec(int(np.int64(3)), value=np.float32(0.5)), rec(4, value=torch.tensor(0.25))])
    assert [r["value"] for r in run.read_records()] == [0.5, 0.25]


def test_non_finite_values_become_null_with_the_reason(run: Run) -> None:
    run.metrics_writer().write([rec(5, "loss", "optim", float("nan")), rec(6, "loss", "optim", float("inf"))])
    records = run.read_records()
    assert [r["value"] for r in records] == [None, None]
    assert [r["extra"]["value"] for r in records] == ["nan", "inf"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"epoch": 0, "split": "val", "metric": "accuracy", "value": 1.0}, "step"),
        ({**rec(0), "colour": "red"}, "colour"),
        ({**rec(0), "step": "3"}, "step"),
        ({**rec(0), "step": -1}, "negative"),
        ({**rec(0), "value": "high"}, "value"),
        ({**rec(0), "n": True}, "n"),
        ({**rec(0), "split": "validation"}, "ood:<name>"),
        ({**rec(0), "split": "ood:"}, "ood:<name>"),
        ({**rec(0), "metric": ""}, "empty"),
    ],
)
def test_malformed_records_are_rejected_and_nothing_of_the_batch_is_written(run: Run, bad: dict, match: str):
    writer = run.metrics_writer()
    writer.write([rec(0)])
    with pytest.raises(MetricRecordError, match=match):
        writer.write([rec(1), bad])
    assert [r["step"] for r in run.read_records()] == [0]


def test_torn_last_line_is_detected_and_cut_on_open(run: Run) -> None:
    run.metrics_writer().write([rec(0), rec(10)])
    intact = run.metrics_path.read_bytes()
    with open(run.metrics_path, "ab") as handle:
        handle.write(b'{"step": 20, "epoch": 2, "spl')
    assert [r["step"] for r in run.read_records()] == [0, 10]
    assert [int(s) for s in read_metrics(run.path)["step"]] == [0, 10]
    writer = run.metrics_writer()
    assert writer.repaired_bytes > 0
    assert run.metrics_path.read_bytes() == intact
    writer.write([rec(20)])
    assert [r["step"] for r in run.read_records()] == [0, 10, 20]


def test_garbage_complete_last_line_is_cut_too(run: Run) -> None:
    run.metrics_writer().write([rec(0)])
    with open(run.metrics_path, "ab") as handle:
        handle.write(b'{"step": 2\x00\x00\n')
    run.metrics_writer()
    assert len(run.metrics_path.read_text().splitlines()) == 1


def test_truncate_metrics_after_a_checkpoint_step(run: Run) -> None:
    writer = run.metrics_writer()
    for step in (0, 10, 20, 30):
        writer.write([rec(step), rec(step, "lr", "optim", 1e-3)])
    assert run.truncate_metrics_after(10) == 4
    assert [r["step"] for r in run.read_records()] == [0, 0, 10, 10]
    run.metrics_writer().write([rec(20)])  # resumed run re-evaluates step 20 once: no duplicate
    assert [r["step"] for r in run.read_records()] == [0, 0, 10, 10, 20]
    assert run.truncate_metrics_after(100) == 0


def test_write_error_names_the_path_and_keeps_earlier_records(run: Run, monkeypatch: pytest.MonkeyPatch):
    writer = run.metrics_writer()
    writer.write([rec(0)])
    before = run.metrics_path.read_bytes()
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[:7]))  # a partial line, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(RunWriteError) as caught:
        writer.write([rec(10), rec(20)])
    monkeypatch.undo()
    assert str(run.metrics_path) in str(caught.value) and "free disk space" in str(caught.value)
    assert isinstance(caught.value, RobustftError)
    assert run.metrics_path.read_bytes() == before


def test_unwritable_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RobustftError, match=str(blocker)):
        Run.create(blocker / "run", make_config())


def test_summary_is_written_atomically_and_read_back(run: Run) -> None:
    assert run.summary == {}  # not written yet
    run.write_summary({"onset": {"step": 3}, "value": 0.5})
    run.write_summary({"onset": None, "value": 0.75})
    assert run.summary == {"onset": None, "value": 0.75}
    assert Run(run.path).summary == {"onset": None, "value": 0.75}  # read back from the file
    assert not list(run.path.glob(".*.tmp"))
    with pytest.raises(ValueError):
        run.write_summary({"value": float("nan")})  # JSON has no NaN: detection must not produce one
    assert Run(run.path).summary == {"onset": None, "value": 0.75}


def test_read_metrics_of_an_empty_run_has_the_schema_columns(run: Run) -> None:
    frame = read_metrics(run.path)
    assert list(frame.columns) == list(METRIC_FIELDS) and len(frame) == 0


def many_runs(root: Path) -> list[Run]:
    runs = []
    for index, (strategy, schedule) in enumerate([("full", "constant"), ("bitfit", "scheduled"), ("lora", "zero")]):
        config = make_config(name=f"r{index}", **{"strategy.name": strategy, "eps.schedule": schedule,
                                                  "objective.name": "adversarial"})
        # standard runs with eps schedules, as run directories written before that pair was refused hold them
        config["objective"]["name"] = "standard"
        run = Run.create(root / f"r{index}", config)
        run.metrics_writer().write(
            [rec(s, "accuracy", "test", 0.1 * index + s / 100, attack="pgd", eps=1 / 255, extra={"k": index})
             for s in (0, 10)] + [rec(s, "accuracy", "test", 0.5, attack="clean", eps=0.0) for s in (0, 10)]
        )
        runs.append(run)
    return runs


def test_find_run_dirs_by_parent_glob_and_list(tmp_path: Path) -> None:
    runs = many_runs(tmp_path / "runs")
    assert find_run_dirs(tmp_path / "runs") == [r.path for r in runs]
    assert find_run_dirs(str(tmp_path / "runs" / "r*")) == [r.path for r in runs]
    assert find_run_dirs([runs[2].path, runs[0].path, runs[2].path]) == [runs[2].path, runs[0].path]
    with pytest.raises(RunNotFoundError, match="runs/\\*"):
        find_run_dirs(str(tmp_path / "empty" / "*"))


def test_runs_already_loaded_name_their_directories(tmp_path: Path) -> None:
    runs = many_runs(tmp_path / "runs")
    loaded = load_runs(tmp_path / "runs")
    assert find_run_dirs(loaded[1]) == [runs[1].path]
    assert find_run_dirs([loaded[2], runs[0].path]) == [runs[2].path, runs[0].path]
    picked = query_runs([run for run in loaded if run.name != "r1"], "SELECT DISTINCT run FROM metrics ORDER BY run")
    assert list(picked["run"]) == ["r0", "r2"]
    with pytest.raises(RunNotFoundError, match="held in memory"):
        find_run_dirs([Run(name="mem")])


def test_metrics_frame_joins_config_columns(tmp_path: Path) -> None:
    many_runs(tmp_path / "runs")
    frame = metrics_frame(tmp_path / "runs")
    assert len(frame) == 12
    assert set(frame["strategy"]) == {"full", "bitfit", "lora"}
    assert set(frame.groupby("run")["eps_schedule"].first()) == {"constant", "scheduled", "zero"}
    assert set(frame["objective"]) == {"standard"} and set(frame["eps_train"]) == {0.0}  # eps.value is not used


@pytest.mark.parametrize("objective, schedule, expected", [
    ("standard", "constant", 0.0), ("adversarial", "zero", 0.0), ("adversarial", "scheduled", 8 / 255),
    ("trades", "constant", 8 / 255)])
def test_runs_view_shows_the_training_eps_a_run_trained_at(tmp_path: Path, objective: str, schedule: str,
                                                            expected: float) -> None:
    config = make_config(**{"objective.name": "adversarial", "eps.schedule": schedule, "eps.value": "8/255"})
    # set after validation: standard with a schedule other than zero is refused now, but older run directories
    # hold it (the former default schedule was constant whatever the objective)
    config["objective"]["name"] = objective
    Run.create(tmp_path / "runs" / "r", config)
    view = query_runs(tmp_path / "runs", "SELECT objective, eps_train FROM runs")
    assert view["eps_train"].iloc[0] == pytest.approx(expected)


def test_query_runs_with_duckdb(tmp_path: Path) -> None:
    runs = many_runs(tmp_path / "runs")
    with open(runs[1].metrics_path, "ab") as handle:  # a crashed writer's torn line is ignored, not read
        handle.write(b'{"step": 20, "ep')
    result = query_runs(
        str(tmp_path / "runs" / "*"),
        "SELECT m.run, r.strategy, max(m.value) AS best, count(*) AS n FROM metrics m JOIN runs r USING (run) "
        "WHERE m.attack = 'pgd' GROUP BY ALL ORDER BY m.run",
    )
    assert list(result["run"]) == ["r0", "r1", "r2"]
    assert list(result["strategy"]) == ["full", "bitfit", "lora"]
    assert list(result["best"]) == pytest.approx([0.1, 0.2, 0.3])
    assert list(result["n"]) == [2, 2, 2]
    extra = query_runs(tmp_path / "runs", "SELECT DISTINCT extra->>'k' AS k FROM metrics WHERE extra IS NOT NULL")
    assert sorted(extra["k"]) == ["0", "1", "2"]
    assert isinstance(result, pd.DataFrame)


def test_query_runs_bad_sql_is_a_clear_error(tmp_path: Path) -> None:
    many_runs(tmp_path / "runs")
    with pytest.raises(RobustftError, match="Tables: metrics"):
        query_runs(tmp_path / "runs", "SELECT nope FROM metrics")


def test_query_runs_without_metrics_yet(tmp_path: Path) -> None:
    Run.create(tmp_path / "runs" / "fresh", make_config())
    assert len(query_runs(tmp_path / "runs", "SELECT * FROM metrics")) == 0
    assert list(query_runs(tmp_path / "runs", "SELECT run FROM runs")["run"]) == ["fresh"]


def test_a_corrupt_line_mid_file_does_not_hide_later_records(run: Run) -> None:
    run.metrics_writer().write([rec(0)])
    with open(run.metrics_path, "ab") as handle:
        handle.write(b"not json\n")
    run.metrics_writer().write([rec(10)])
    assert [r["step"] for r in run.read_records()] == [0, 10]
    assert run.truncate_metrics_after(10) == 0 and [r["step"] for r in run.read_records()] == [0, 10]


@pytest.mark.parametrize(
    "content, kept",
    [
        (b"", b""),
        (b'{"a": 1}', b""),  # a single torn line
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b"', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b"\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n' + b'{"long": "' + b"x" * 200_000 + b'"}\n', b'{"a": 1}\n' + b'{"long": "' + b"x" * 200_000
         + b'"}\n'),
        (b'{"a": 1}\n' + b'{"long": "' + b"x" * 200_000, b'{"a": 1}\n'),
    ],
)
def test_repair_jsonl_cases(tmp_path: Path, content: bytes, kept: bytes) -> None:
    from robustft.runs import repair_jsonl

    path = tmp_path / "m.jsonl"
    path.write_bytes(content)
    assert repair_jsonl(path) == len(content) - len(kept)
    assert path.read_bytes() == kept


def test_the_run_summary_reads_metrics_with_the_one_reader_that_skips_a_torn_last_line(run: Run) -> None:
    # A killed writer can leave a last line without its newline; it may even parse as JSON. The one reader
    # (read_metrics / read_records) leaves it out, and so does the trainer's summary, which had its own reader.
    from robustft.training.components import summarize_run

    record = {"step": 0, "epoch": 0.0, "split": "test", "metric": "accuracy", "attack": "clean", "eps": 0.0,
              "value": 0.5, "n": 10}
    torn = dict(record, step=7, value=0.9)
    run.metrics_path.write_text(json.dumps(record) + "\n" + json.dumps(torn))  # no newline after the last one
    assert list(read_metrics(run.path)["step"]) == [0]
    summary = summarize_run(run, load_config(None), None, 10, wall_seconds=1.0, eval_seconds=0.5, total_steps=7)
    assert summary["final"] == {"test/clean/accuracy": 0.5}


def two_studies(root: Path) -> list[Run]:
    """Two studies' folders each holding an ``a-full`` (different numbers), one of them also an ``a-lora``."""
    runs = []
    for study, name, value in (("demo1", "a-full", 0.25), ("demo2", "a-full", 0.75), ("demo2", "a-lora", 0.5)):
        run = Run.create(root / study / name, make_config(name=name, **{"strategy.name": name[2:]}))
        run.metrics_writer().write([rec(s, "accuracy", "test", value, attack="clean", eps=0.0) for s in (0, 10)])
        runs.append(run)
    return runs


def test_two_studies_runs_of_one_name_stay_apart_in_queries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `GROUP BY run` over two demos: each a-full its own row, named by its study; a name no other
    run shares stays as it is; ``path`` (the resolved directory) is the stable id, in both views."""
    runs = two_studies(tmp_path / "studies")
    monkeypatch.chdir(tmp_path)  # relative arguments, as a user types them
    result = query_runs(["studies/demo1", "studies/demo2"],
                        "SELECT m.run, r.strategy, avg(m.value) AS mean, count(*) AS n, any_value(m.path) AS path "
                        "FROM metrics m JOIN runs r USING (run) GROUP BY ALL ORDER BY m.run")
    assert list(result["run"]) == ["a-lora", "demo1/a-full", "demo2/a-full"]
    assert list(result["mean"]) == pytest.approx([0.5, 0.25, 0.75]) and list(result["n"]) == [2, 2, 2]
    assert list(result["path"]) == [str(runs[i].path.resolve()) for i in (2, 0, 1)]
    frame = metrics_frame("studies")
    assert sorted(frame.groupby("run")["value"].mean().items()) == [
        ("a-lora", 0.5), ("demo1/a-full", 0.25), ("demo2/a-full", 0.75)]
    # one study alone: the folder names, as before
    assert list(query_runs("studies/demo2", "SELECT run FROM runs ORDER BY run")["run"]) == ["a-full", "a-lora"]


def test_unique_names_go_up_only_as_far_as_needed_and_one_directory_is_listed_once(tmp_path: Path) -> None:
    from robustft.runs.collection import unique_names

    paths = [tmp_path / "x" / "s" / "a", tmp_path / "y" / "s" / "a", tmp_path / "y" / "t" / "a", tmp_path / "b"]
    assert unique_names(paths) == ["x/s/a", "y/s/a", "t/a", "b"]
    run = Run.create(tmp_path / "runs" / "r", make_config())
    assert find_run_dirs([run.path, tmp_path / "runs" / ".." / "runs" / "r"]) == [run.path]


def test_last_record_reads_the_tail_past_a_torn_line_and_records_without_the_key(tmp_path: Path) -> None:
    from robustft.runs.metrics_file import last_record

    path = tmp_path / "metrics.jsonl"
    assert last_record(path) is None  # no file yet
    lines = [json.dumps({"step": s, "name": "val/clean/accuracy", "value": 0.5}) for s in range(200)]
    # a 10 KiB record without a step after the last stepped one: the 4 KiB tail window must grow to find step 199
    lines.append(json.dumps({"event": "note", "text": "x" * 10_000}))
    path.write_text("\n".join(lines) + "\n" + '{"step": 200, "na', encoding="utf-8")
    assert last_record(path)["step"] == 199
    assert last_record(path, key="event")["event"] == "note"
    path.write_text('{"step": 3}', encoding="utf-8")  # one torn line only
    assert last_record(path) is None
