"""``robustft sweep --seeds N``: a last ``seed`` axis; the seeds of one point form one analysis group."""

import pytest

from robustft.errors import ConfigError
from robustft.sweep import add_seed_axis, expand_grid, resolve_points


def test_seeds_add_a_last_seed_axis():
    grid = add_seed_axis({"strategy.name": ["full", "lora"]}, 3)
    assert grid == {"strategy.name": ["full", "lora"], "seed": ["0", "1", "2"]}
    names = [p.name for p in expand_grid("demo", grid)]
    assert names[:3] == ["demo-strategy-full-seed-0", "demo-strategy-full-seed-1", "demo-strategy-full-seed-2"]
    assert add_seed_axis({"a": ["1"]}, None) == {"a": ["1"]}


@pytest.mark.parametrize("bad", [0, -2, True])
def test_bad_seed_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="--seeds"):
        add_seed_axis({}, bad)


def test_seeds_and_a_seed_grid_conflict():
    with pytest.raises(ConfigError, match="--grid seed"):
        add_seed_axis({"seed": ["1", "2"]}, 2)


def test_seed_points_resolve_to_configs_differing_only_in_seed(tmp_path):
    from robustft.analysis.seed_stats import group_runs
    from robustft.runs import Run

    points, configs, _ = resolve_points("configs/demo.yaml", add_seed_axis({"strategy.name": ["full", "bitfit"]}, 2),
                                        output_dir=tmp_path)
    assert [c["seed"] for c in configs] == [0, 1, 0, 1]
    groups = group_runs([Run(name=c["name"], config=c) for c in configs])
    assert groups["group"].tolist() == ["strategy=full", "strategy=full", "strategy=bitfit", "strategy=bitfit"]


def test_cli_refuses_zero_seeds(capsys):
    from robustft.cli import main

    assert main(["sweep", "configs/demo.yaml", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
