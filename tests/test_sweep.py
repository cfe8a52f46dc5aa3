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
