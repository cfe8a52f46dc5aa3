"""Config tree: YAML + overrides, round trip, presets, base includes, and clear errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from robustft.config import (
    PRESETS,
    Config,
    apply_overrides,
    dump_yaml,
    format_eps_exact,
    from_dict,
    load_config,
    parse_eps_text,
    to_dict,
)
from robustft.errors import ConfigError, RobustftError


def write(path: Path, tree: dict | str) -> Path:
    path.write_text(tree if isinstance(tree, str) else yaml.safe_dump(tree), encoding="utf-8")
    return path


def test_defaults_match_the_documented_schema() -> None:
    cfg = load_config(None)
    assert isinstance(cfg, Config)
    assert cfg.model.name == "mobilenet_v2" and cfg.data.name == "fashion-mnist"
    # eps.schedule unset: zero under the default standard objective, constant under an adversarial one
    assert cfg.eps.value == 4 / 255 and cfg.eps.schedule == "zero"
    assert load_config(None, ["objective.name=adversarial"]).eps.schedule == "constant"
    assert cfg.eval.eps == [1 / 255] and cfg.eval.attack.step_size == 0.25 / 255
    assert cfg.train.epochs == 3 and cfg.train.steps is None
    assert cfg.optim.betas == [0.9, 0.999]
    assert cfg.run_dir == Path("runs") / "demo"


def test_yaml_and_overrides_are_parsed_as_yaml_scalars(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"name": "x", "optim": {"lr": 0.01}, "eps": {"value": "2/255"}})
    # eval.attack.step_size=0.25eps: the default PGD-15 step of 0.25/255 cannot reach the curve's 4/255
    cfg = load_config(path, ["optim.lr=3e-4", "data.ood=[a, b]", "eps.value=8/255", "eval.curve=4/255",
                             "eval.attack.step_size=0.25eps", "objective.step_size=null", "model.options.drop_rate=0.1",
                             "seed=7"])
    assert cfg.name == "x"
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.data.ood == ["a", "b"]
    assert cfg.eps.value == 8 / 255
    assert cfg.eval.curve == 4 / 255
    assert cfg.objective.step_size is None
    assert cfg.model.options == {"drop_rate": 0.1}
    assert cfg.seed == 7


def test_later_override_of_the_same_key_wins() -> None:
    assert load_config(None, ["optim.lr=1e-2", "optim.lr=2e-2"]).optim.lr == pytest.approx(2e-2)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["eval.attack=paper-b", "eval.final=null", "train.steps=40", "objective.name=adversarial",
         "eps.schedule=scheduled", "eps.t1=3"],
        ["eps.value=0.25/255", "eval.eps=[1/255, 0.0123]", "optim.amp=true", "data.ood=auto", "optim.warmup=10"],
        ["eval.schedule=steps:[0, 5, 9]", "data.augment=[flip, 'color_jitter:0.25']", "eps.value=0"],
    ],
)
def test_round_trip_through_plain_dict_yaml_and_json(overrides: list[str]) -> None:
    cfg = load_config(None, overrides)
    plain = to_dict(cfg)
    assert from_dict(plain) == cfg
    assert from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg
    assert from_dict(json.loads(json.dumps(plain))) == cfg


def test_eps_written_back_as_fractions_when_exact() -> None:
    plain = to_dict(load_config(None, ["eps.value=8/255", "eval.eps=[1/255, 0.0123]"]))
    assert plain["eps"]["value"] == "8/255"
    assert plain["eval"]["eps"] == ["1/255", 0.0123]
    assert plain["eval"]["attack"]["step_size"] == "0.25/255"
    assert format_eps_exact(0.0) == "0"


@pytest.mark.parametrize("text, expected", [("4/255", 4 / 255), ("0.25/255", 0.25 / 255), (0.5, 0.5), ("0", 0.0)])
def test_parse_eps_text(text: str | float, expected: float) -> None:
    assert parse_eps_text(text, "eps") == expected


def test_presets_expand() -> None:
    cfg_a = load_config(None, ["eval.attack=paper-a"])
    assert (cfg_a.eval.attack.name, cfg_a.eval.attack.steps) == ("pgd", 15)
    assert cfg_a.eval.attack.step_size == 0.25 / 255 and cfg_a.eval.attack.random_start
    cfg_b = load_config(None, ["eval.attack=paper-b", "eval.final=paper-b"])
    assert (cfg_b.eval.attack.name, cfg_b.eval.attack.steps, cfg_b.eval.attack.step_size) == ("apgd-ce", 10, None)
    assert cfg_b.eval.final is not None and cfg_b.eval.final.name == "apgd-ce"
    assert set(PRESETS["eval.attack"]) == {"paper-a", "paper-b"}


def test_train_steps_override_clears_epochs_but_both_at_once_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"train": {"epochs": 5}})
    assert load_config(path, ["train.steps=200"]).train.steps == 200
    assert load_config(path, ["train.steps=200"]).train.epochs is None
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(path, ["train.steps=200", "train.epochs=2"])
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(None, ["train.epochs=null"])
    both = write(tmp_path / "both.yaml", {"train": {"epochs": 5, "steps": 10}})
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(both)


def test_base_include_is_relative_and_deep_merged(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", {"name": "base", "optim": {"lr": 0.01, "batch_size": 32}, "data": {"ood": ["a"]}})
    child = write(tmp_path / "sub" / "child.yaml", {"base": "../base.yaml", "optim": {"lr": 0.02}})
    cfg = load_config(child)
    assert cfg.name == "base" and cfg.optim.lr == 0.02 and cfg.optim.batch_size == 32 and cfg.data.ood == ["a"]


def test_base_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"base": "b.yaml"})
    write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_apply_overrides_does_not_mutate_its_input() -> None:
    tree = {"optim": {"lr": 1.0}}
    assert apply_overrides(tree, ["optim.lr=2"]) == {"optim": {"lr": 2}}
    assert tree == {"optim": {"lr": 1.0}}


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["optim.lrr=1"], ["optim.lrr", "Did you mean 'optim.lr'", "batch_size", "weight_decay"]),
        (["modle.name=x"], ["modle", "Did you mean 'model'", "top level"]),
        (["eval.attack.stepz=3"], ["eval.attack.stepz", "eval.attack.steps"]),
        (["optim.lr=0"], ["optim.lr", "positive"]),
        (["optim.lr=-1e-3"], ["optim.lr", "positive"]),
        (["optim.lr=abc"], ["optim.lr", "number"]),
        (["optim.batch_size=0"], ["optim.batch_size", "at least 1"]),
        (["optim.batch_size=2.5"], ["optim.batch_size", "integer"]),
        (["eps.value=8"], ["eps.value", "8/255"]),
        (["eval.eps=[1/255, 4]"], ["eval.eps[1]", "4/255"]),
        (["eps.value=four"], ["eps.value", "4/255"]),
        (["eps.schedule=schedueld"], ["eps.schedule", "Did you mean 'scheduled'", "uniform"]),
        (["eps.schedule=scheduled", "eps.t1=40", "eps.t2=10"], ["eps.t1", "T1 <= T2"]),
        (["eps.schedule=scheduled", "eps.t1=0.8", "eps.t2=0.2"], ["eps.t1", "T1 <= T2"]),
        (["eps.t1=1.5"], ["eps.t1", "fraction", "[0, 1]"]),
        (["eps.t1=-2"], ["eps.t1", "negative"]),
        (["eps.per=batch"], ["eps.per", "'epoch'", "'step'"]),
        (["optim.lr_schedule=cosin"], ["optim.lr_schedule", "Did you mean 'cosine'"]),
        (["optim.betas=[0.9]"], ["optim.betas", "two betas"]),
        (["optim.amp=maybe"], ["optim.amp"]),
        (["eval.schedule=often"], ["eval.schedule", "paper-a", "every:N"]),
        (["eval.schedule=every:0"], ["eval.schedule", "at least 1"]),
        (["eval.splits=[train, holdout]"], ["eval.splits[1]", "train, val, test"]),
        (["eval.attack=paper-c"], ["eval.attack", "paper-a", "paper-b"]),
        (["eval.attack.steps=0"], ["eval.attack.steps", "at least 1"]),
        (["data.val_fraction=1.0"], ["data.val_fraction", "[0, 1)"]),
        (["data.ood=3"], ["data.ood"]),
        (["model.pretrained=2"], ["model.pretrained", "true or false"]),
        (["device=gpu"], ["device", "cuda:N"]),
        (["name=a/b"], ["name", "directory"]),
        (["checkpoint.best_metric=accuracy"], ["checkpoint.best_metric", "val/clean/accuracy"]),
        (["detect.onset_threshold=5"], ["detect.onset_threshold", "(0, 1)"]),
        (["model=mobilenet"], ["model", "mapping"]),
        (["optim.lr"], ["key=value"]),
        (["optim.lr=[1"], ["optim.lr", "YAML"]),
    ],
)
def test_bad_values_give_one_paragraph_errors_naming_key_and_fix(overrides: list[str], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path / "bad.yaml", "optim: {lr: [1\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    assert load_config(write(tmp_path / "empty.yaml", "")) == load_config(None)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RobustftError):
        load_config(path)


def test_options_dicts_accept_any_keys_and_are_copied() -> None:
    tree = {"strategy": {"name": "lora", "options": {"r": 4, "targets": ["qkv"]}}}
    cfg = from_dict(tree)
    assert cfg.strategy.options == {"r": 4, "targets": ["qkv"]}
    tree["strategy"]["options"]["r"] = 99
    assert cfg.strategy.options["r"] == 4


def test_single_items_without_brackets_become_lists() -> None:
    cfg = load_config(None, ["eval.eps=4/255", "eval.splits=test", "data.augment=flip", "data.ood=auto",
                             "eval.attack.step_size=0.25eps"])  # the default 0.25/255 x 15 steps cannot reach 4/255
    assert cfg.eval.eps == [4 / 255] and cfg.eval.splits == ["test"] and cfg.data.augment == ["flip"]
    assert cfg.data.ood == "auto"
    assert load_config(None, ["eval.eps=0.01"]).eval.eps == [0.01]
    assert load_config(None, ["data.ood=fashion-mnist@contrast:3"]).data.ood == ["fashion-mnist@contrast:3"]


def test_override_of_a_preset_field_tunes_the_preset(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"eval": {"attack": "paper-a", "final": "paper-b"}})
    cfg = load_config(path, ["eval.attack.steps=20", "eval.final.steps=20"])
    assert (cfg.eval.attack.name, cfg.eval.attack.steps, cfg.eval.attack.step_size) == ("pgd", 20, 0.25 / 255)
    assert (cfg.eval.final.name, cfg.eval.final.steps) == ("apgd-ce", 20)




@settings(max_examples=300, deadline=None)
@given(eps=st.one_of(st.floats(0, 1, allow_nan=False), st.integers(0, 255).map(lambda k: k / 255),
                     st.integers(0, 1020).map(lambda k: k / 4 / 255)))
def test_eps_text_round_trips_exactly(eps: float) -> None:
    assert parse_eps_text(format_eps_exact(eps), "eps") == eps


def test_string_fields_keep_override_text_as_written(tmp_path: Path) -> None:
    cfg = load_config(None, ["name=007", "output_dir=/tmp/a b/2024-01-01", "data.root=null", "objective.attack='pgd'",
                             "model.name=hf:google/vit-base-patch16-224-in21k"])
    assert (cfg.name, cfg.output_dir, cfg.data.root) == ("007", "/tmp/a b/2024-01-01", None)
    assert cfg.objective.attack == "pgd" and cfg.model.name == "hf:google/vit-base-patch16-224-in21k"
    assert load_config(write(tmp_path / "d.yaml", "name: 2024-01-01\n")).name == "2024-01-01"


def test_errors_name_the_file_they_came_from(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", {"optim": {"lr": -1}})
    with pytest.raises(ConfigError, match=r"optim.lr.*loading .*bad.yaml"):
        load_config(path)
    with pytest.raises(ConfigError, match="with overrides optim.lr=0"):
        load_config(write(tmp_path / "ok.yaml", {}), ["optim.lr=0"])


def test_config_pickles_and_copies_for_parallel_sweeps() -> None:
    import copy
    import pickle

    cfg = load_config(None, ["objective.name=trades", "eps.schedule=scheduled", "eval.attack=paper-b",
                             "strategy.options.r=4"])
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    clone = copy.deepcopy(cfg)
    clone.strategy.options["r"] = 8
    assert cfg.strategy.options["r"] == 4


def test_a_file_setting_only_steps_means_steps(tmp_path):
    from robustft.config import from_dict, load_config

    path = tmp_path / "steps.yaml"
    path.write_text("train: {steps: 10}\n")
    assert (load_config(path).train.epochs, load_config(path).train.steps) == (None, 10)
    assert from_dict({"train": {"steps": 7}}).train.steps == 7
    with pytest.raises(ConfigError, match="both are set"):
        from_dict({"train": {"steps": 7, "epochs": 2}})
