import json

import pytest

from robustft.errors import ConfigError
from robustft.sweep import expand_grid, parse_grid, prepare_run_dir, resolve_points, split_values


def test_split_values_keeps_yaml_lists_whole():
    assert split_values("full,lora") == ["full", "lora"]
    assert split_values("[a,b],[c]") == ["[a,b]", "[c]"]
    assert split_values("{r: 4, alpha: 8},x") == ["{r: 4, alpha: 8}", "x"]


def test_parse_grid_and_errors():
    grid = parse_grid(["strategy.name=full,lora", "eps.value=1/255,4/255"])
    assert grid == {"strategy.name": ["full", "lora"], "eps.value": ["1/255", "4/255"]}
    for bad in (["strategy.name"], ["=a,b"], ["strategy.name="], ["a=1", "a=2"]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_expand_grid_is_the_cartesian_product_in_order():
    points = expand_grid("demo", {"strategy.name": ["full", "lora"], "eps.schedule": ["constant", "scheduled"]})
    assert [p.name for p in points] == [
        "demo-strategy-full-eps.schedule-constant", "demo-strategy-full-eps.schedule-scheduled",
        "demo-strategy-lora-eps.schedule-constant", "demo-strategy-lora-eps.schedule-scheduled",
    ]
    assert points[1].overrides == ("strategy.name=full", "eps.schedule=scheduled")
    assert [p.name for p in expand_grid("demo", {})] == ["demo"]
    with pytest.raises(ConfigError):  # both map to the same slug
        expand_grid("demo", {"data.name": ["a/b", "a b"]})


def test_prepare_run_dir_never_deletes(tmp_path):
    assert prepare_run_dir(tmp_path / "new") == "start"
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "summary.json").write_text("{}")
    assert prepare_run_dir(finished) == "skip"
    killed = tmp_path / "killed"
    (killed / "checkpoints").mkdir(parents=True)
    (killed / "checkpoints" / "last.pt").write_bytes(b"x")
    assert prepare_run_dir(killed) == "resume"
    early = tmp_path / "early"
    early.mkdir()
    (early / "metrics.jsonl").write_text(json.dumps({"step": 0}) + "\n")
    assert prepare_run_dir(early) == "restart"
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("early.incomplete-")]
    assert len(moved) == 1 and (moved[0] / "metrics.jsonl").read_text().startswith('{"step": 0}')


def test_resolve_points_validates_every_point_before_running(tmp_path):
    points, configs, out = resolve_points("configs/demo.yaml", {"strategy.name": ["full", "linear"]},
                                          fixed=["train.epochs=1"], output_dir=tmp_path)
    assert [c["name"] for c in configs] == [p.name for p in points]
    assert all(c["output_dir"] == str(tmp_path) and c["train"]["epochs"] == 1 for c in configs)
    assert configs[1]["strategy"]["name"] == "linear" and out == tmp_path
    with pytest.raises(ConfigError):
        resolve_points("configs/demo.yaml", {"optim.lr": ["1e-3", "-1"]}, output_dir=tmp_path)


def test_points_with_another_strategy_drop_the_base_files_options_with_a_note(tmp_path):
    # adapter.yaml sets strategy {name: adapter, options: {reduction: 8}}: reduction is adapter's, not lora's.
    points, configs, _ = resolve_points("configs/paper_a_embedded/adapter.yaml",
                                        {"strategy.name": ["adapter", "lora"]}, output_dir=tmp_path)
    assert [c["strategy"] for c in configs] == [{"name": "adapter", "options": {"reduction": 8}},
                                                {"name": "lora", "options": {}}]
    assert points[0].note is None
    assert "reduction=8" in points[1].note and "belong to 'adapter'" in points[1].note
    # An option named explicitly (--set or grid) is kept, and checked against every point's strategy.
    _, configs, _ = resolve_points("configs/paper_a_embedded/adapter.yaml", {"strategy.name": ["lora"]},
                                   fixed=["strategy.options.r=4"], output_dir=tmp_path)
    assert configs[0]["strategy"]["options"] == {"r": 4}
    bad = (r"paper_a_embedded_adapter-strategy-adapter-strategy.options.r-4 "
           r"\(strategy.name=adapter strategy.options.r=4\)")
    with pytest.raises(ConfigError, match=r"1 of 2 .*\n  " + bad + r": unknown option\(s\) 'r'"):
        resolve_points("configs/paper_a_embedded/adapter.yaml",
                       {"strategy.name": ["adapter", "lora"], "strategy.options.r": ["4"]}, output_dir=tmp_path)


def test_same_strategy_keeps_the_base_options_and_no_note(tmp_path):
    points, configs, _ = resolve_points("configs/paper_a_embedded/adapter.yaml", {"optim.lr": ["1e-3"]},
                                        output_dir=tmp_path)
    assert configs[0]["strategy"]["options"] == {"reduction": 8} and points[0].note is None


def test_a_bad_point_fails_the_sweep_before_anything_runs(tmp_path, capsys):
    from robustft.cli import main
    from robustft.sweep import run_sweep

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(out=tmp_path / "runs"))
    out = tmp_path / "sweep"
    # vpt needs a ViT; lora's r must be > 0: both are found by building the point, not at run time.
    with pytest.raises(ConfigError) as caught:
        run_sweep(config, {"strategy.name": ["full", "vpt", "lora"]}, fixed=["strategy.options.r=-1"], output_dir=out)
    message = str(caught.value)
    assert "3 of 3 sweep point(s) are invalid, so nothing was started" in message
    assert "tiny-strategy-vpt (strategy.name=vpt): strategy 'vpt' needs a vit model" in message
    assert "tiny-strategy-lora (strategy.name=lora): strategy 'lora' option r=-1 must be > 0" in message
    assert not out.exists()  # no run directory, no manifest
    assert main(["sweep", str(config), "--grid", "strategy.name=full,vpt", "--output-dir", str(out)]) == 2
    assert "tiny-strategy-vpt" in capsys.readouterr().err and not out.exists()


TINY = """
name: tiny
output_dir: {out}
device: cpu
model: {{name: tiny-cnn, pretrained: false, image_size: 16}}
data: {{name: digits, image_size: 16, limit_train: 128, limit_val: 32, limit_test: 64}}
train: {{epochs: 1}}
logging: {{progress: false}}
"""


def test_prepare_run_dir_leaves_a_directory_another_process_holds(tmp_path):
    from test_run_lock import hold_in_other_process

    early = tmp_path / "early"  # no checkpoint yet: without the lock it would be moved aside and restarted
    early.mkdir()
    (early / "metrics.jsonl").write_text(json.dumps({"step": 0}) + "\n")
    child = hold_in_other_process(early)
    try:
        assert prepare_run_dir(early) == "running"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["early"]
    finally:
        child.kill()
        child.wait()
    assert prepare_run_dir(early) == "restart"  # once nobody holds it


def test_a_rerun_reports_points_trained_elsewhere_as_running_and_starts_nothing(tmp_path, capsys):
    from robustft.cli import main
    from robustft.sweep import STATUS_RUNNING, STATUS_SKIPPED, run_sweep
    from test_run_lock import hold_in_other_process

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(out=tmp_path / "runs"))
    out = tmp_path / "sweep"
    busy, done = out / "tiny-strategy-full", out / "tiny-strategy-linear"
    busy.mkdir(parents=True)
    done.mkdir()
    (done / "summary.json").write_text("{}")
    child = hold_in_other_process(busy)  # e.g. the first invocation of this sweep, still training the point
    try:
        results = run_sweep(config, {"strategy.name": ["full", "linear"]}, output_dir=out)
        assert [r.status for r in results] == [STATUS_RUNNING, STATUS_SKIPPED]
        assert f"pid {child.pid}" in results[0].extra["detail"]
        assert sorted(p.name for p in busy.iterdir()) == ["lock"]  # nothing started, nothing moved aside
        manifest = json.loads((out / "sweep.json").read_text())
        assert [p["status"] for p in manifest["points"]] == ["running", "skipped"]
        assert main(["sweep", str(config), "--grid", "strategy.name=full,linear", "--output-dir", str(out)]) == 0
        assert "1 running elsewhere (not started again)" in capsys.readouterr().out
    finally:
        child.kill()
        child.wait()


def test_sweep_status_from_the_manifest_and_the_run_directories(tmp_path, capsys):
    from robustft.cli import main
    from robustft.sweep.status import sweep_status
    from test_run_lock import hold_in_other_process

    names = ["s-done", "s-running", "s-failed", "s-interrupted", "s-pending"]
    statuses = {"s-done": "failed", "s-failed": "failed", "s-running": "pending"}  # the run directories win
    points = [{"name": n, "overrides": [], "path": f"elsewhere/{n}", "status": statuses.get(n, "pending"),
               "error": "exit status 2: out of memory" if n == "s-failed" else None} for n in names]
    (tmp_path / "sweep.json").write_text(json.dumps({"config": "c.yaml", "grid": {}, "fixed": [], "points": points}))
    (tmp_path / "s-done").mkdir()
    (tmp_path / "s-done" / "summary.json").write_text("{}")
    (tmp_path / "s-interrupted" / "checkpoints").mkdir(parents=True)
    (tmp_path / "s-interrupted" / "checkpoints" / "last.pt").write_bytes(b"x")
    torn = '{"step": 6, "na'  # the writer was killed mid-line: the last complete record's step is shown
    (tmp_path / "s-interrupted" / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in (0, 5))
                                                              + torn)
    (tmp_path / "s-running").mkdir()
    child = hold_in_other_process(tmp_path / "s-running")
    try:
        rows = sweep_status(tmp_path)
        assert [(r.name, r.status) for r in rows] == [("s-done", "done"), ("s-running", "running"),
                                                      ("s-failed", "failed"), ("s-interrupted", "pending"),
                                                      ("s-pending", "pending")]
        assert f"pid {child.pid}" in rows[1].detail
        assert rows[2].detail == "exit status 2: out of memory"
        assert "interrupted at step 5" in rows[3].detail
        assert main(["sweep", "--status", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "1 done, 1 running, 1 failed, 2 pending of 5 point(s)" in out
        assert any(line.startswith("failed") and "out of memory" in line for line in out.splitlines())
    finally:
        child.kill()
        child.wait()
    assert main(["sweep", "--status", str(tmp_path / "nope")]) == 2
    assert "sweep.json: it does not exist" in capsys.readouterr().err
