"""Sweeps that really train: tiny CNN on the offline `digits` data, local subprocesses and Ray."""

import json
from pathlib import Path

import pytest

from robustft.sweep import STATUS_FINISHED, STATUS_SKIPPED, run_sweep

TINY = """
name: tiny
output_dir: {out}
seed: 0
device: cpu
model: {{name: tiny-cnn, pretrained: false, image_size: 16}}
data: {{name: digits, image_size: 16, limit_train: 128, limit_val: 32, limit_test: 64}}
strategy: {{name: full}}
objective: {{name: standard}}
eps: {{schedule: zero}}
optim: {{batch_size: 64, lr: 3.0e-3}}
train: {{epochs: 1}}
eval: {{schedule: epoch, subset: 32, batch_size: 64, splits: [test], eps: [1/255], final: null, ood: false}}
logging: {{progress: false}}
"""


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(out=tmp_path / "runs"))
    return path


def test_local_sweep_runs_skips_and_resumes_a_killed_point(tmp_path):
    config = write_config(tmp_path)
    grid = {"strategy.name": ["full", "linear"]}
    results = run_sweep(config, grid, output_dir=tmp_path / "sweep")
    assert [r.status for r in results] == [STATUS_FINISHED, STATUS_FINISHED]
    for result in results:
        assert (Path(result.path) / "summary.json").is_file()
    manifest = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["finished", "finished"]

    # A point killed after its checkpoint (no summary) is resumed; a finished one is skipped.
    (Path(results[1].path) / "summary.json").unlink()
    again = run_sweep(config, grid, output_dir=tmp_path / "sweep")
    assert [r.status for r in again] == [STATUS_SKIPPED, STATUS_FINISHED]
    assert again[1].action == "resume" and (Path(again[1].path) / "summary.json").is_file()


def test_a_failing_point_does_not_stop_the_others(tmp_path):
    config = write_config(tmp_path)
    # A batch larger than the 128 training images fails when the run builds its loader (a point that checks
    # out before the sweep but fails at run time); the other point still finishes.
    results = run_sweep(config, {"optim.batch_size": ["256", "64"]}, output_dir=tmp_path / "sweep")
    assert [r.status for r in results] == ["failed", STATUS_FINISHED]
    assert "lower optim.batch_size" in results[0].error


def test_a_point_refused_because_another_process_took_it_is_running_not_failed(tmp_path, monkeypatch):
    from robustft import sweep
    from robustft.runs import Run
    from test_run_lock import hold_in_other_process

    config = write_config(tmp_path)
    out = tmp_path / "sweep"
    (points,), (cfg,), _ = sweep.resolve_points(config, {}, output_dir=out)
    Run.create(out / points.name, cfg)
    child = hold_in_other_process(out / points.name)
    # The other process takes the directory after this sweep's check: the `train --resume` child is refused.
    monkeypatch.setattr(sweep.local_executor, "prepare_run_dir", lambda run_dir: "resume")
    try:
        result = sweep.run_point_subprocess(cfg, out / points.name)
    finally:
        child.kill()
        child.wait()
    assert result.status == sweep.STATUS_RUNNING, result
    assert "is being written by pid" in (out / "logs" / f"{points.name}.log").read_text()
    assert not (out / points.name / "metrics.jsonl").exists()


@pytest.mark.slow
def test_ray_sweep_runs_every_point(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is in the dev extra; install it with pip install 'robustft[ray]'")
    config = write_config(tmp_path)
    try:
        results = run_sweep(config, {"strategy.name": ["full", "bitfit"]}, output_dir=tmp_path / "sweep",
                            executor="ray", cpus_per_run=1)
    finally:
        ray.shutdown()
    assert [r.status for r in results] == [STATUS_FINISHED, STATUS_FINISHED]
    assert all((Path(r.path) / "summary.json").is_file() for r in results)


def test_query_command_runs_sql_over_run_directories(tmp_path, capsys):
    from robustft.cli import main

    config = write_config(tmp_path)
    run_sweep(config, {"strategy.name": ["linear"]}, output_dir=tmp_path / "sweep")
    sql = "SELECT run, count(*) AS n FROM metrics WHERE split = 'test' GROUP BY run"
    assert main(["query", sql, str(tmp_path / "sweep"), "--csv", str(tmp_path / "out.csv")]) == 0
    assert "tiny-strategy-linear" in capsys.readouterr().out
    assert (tmp_path / "out.csv").read_text().startswith("run,n")
    assert main(["query", "SELEC nonsense", str(tmp_path / "sweep")]) == 2
    assert "Tables: metrics" in capsys.readouterr().err
