"""One typed path from the config to the attack: no Any or plain dict on the way, eps parsed once, one attack spec.

The resolved ``Config`` is what the trainer, the evaluator, the objectives and the attacks take; epsilons and step
sizes are parsed when the config is built and reach the attack as the values the config holds.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
import yaml

import robustft
from robustft.attacks.registry import make_attack
from robustft.config import AttackSpec, Config, from_dict, load_config, units
from robustft.config.schema import EvalConfig, ObjectiveConfig
from robustft.config.units import RelativeStep
from robustft.errors import ConfigError
from robustft.models.tiny import tiny_cnn
from robustft.training import components, objectives, trainer
from robustft.training.evaluator import Evaluator
from robustft.training.trainer import Trainer, build_trainer, train
from test_train import TinyData, tiny_splits

# The public functions between the config and the attack.
PATH = [robustft.train, train, build_trainer, Trainer.__init__, Evaluator.__init__, make_attack, load_config,
        objectives.standard_loss, objectives.adversarial_loss, objectives.trades_loss, objectives.trades_inner_max,
        *(getattr(components, name) for name in dir(components)
          if not name.startswith("_") and callable(getattr(components, name))
          and getattr(getattr(components, name), "__module__", None) == components.__name__
          and not isinstance(getattr(components, name), type))]


def _untyped(hint: object, top: bool = True) -> bool:
    """Any anywhere in the hint; a plain dict or Mapping (of Any, or bare); or a parameter typed object."""
    if hint is typing.Any or hint in (dict, Mapping) or (top and hint is object):
        return True
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | None)) else ()
    if any(_untyped(member) for member in members):  # a union's members are the parameter's types
        return True
    return any(_untyped(arg, top=False) for arg in typing.get_args(hint) if arg is not Ellipsis)


def _hints(function) -> dict[str, object]:
    """The resolved annotations; ``robustft.train`` imports its annotation names only under TYPE_CHECKING (no torch
    on ``import robustft``), so they resolve in the trainer's namespace, which imports the same names."""
    if function is robustft.train:
        return typing.get_type_hints(function, localns=vars(trainer))
    return typing.get_type_hints(function)


@pytest.mark.parametrize("function", PATH, ids=lambda f: f"{f.__module__}.{f.__qualname__}")
def test_no_public_function_between_the_config_and_the_attack_takes_any_or_a_plain_dict(function):
    hints = _hints(function)
    untyped = {name: hint for name, hint in hints.items() if name != "return" and _untyped(hint)}
    assert not untyped, f"{function.__qualname__} takes untyped parameters: {untyped}"
    assert all(name in hints for name in function.__code__.co_varnames[:function.__code__.co_argcount]
               if name != "self"), f"{function.__qualname__} has unannotated parameters"


def test_the_config_sections_reach_their_consumers_as_their_types():
    assert typing.get_type_hints(train)["config"] == Config | str | Path | None  # a tree: from_dict(tree) first
    assert _hints(robustft.train) == typing.get_type_hints(train)  # the public entry point: the trainer's signature
    assert typing.get_type_hints(Trainer.__init__)["cfg"] is Config
    assert typing.get_type_hints(Evaluator.__init__)["eval_cfg"] is EvalConfig
    assert typing.get_type_hints(make_attack)["spec"] is AttackSpec
    # one attack spec type: the tracking attack, the final attack and the training attack
    hints = typing.get_type_hints(EvalConfig)
    assert hints["attack"] is AttackSpec and hints["final"] == AttackSpec | None
    assert isinstance(ObjectiveConfig().attack_spec, AttackSpec)


def test_the_old_eval_final_attack_key_names_the_new_one():
    with pytest.raises(ConfigError, match=r"'eval\.final\.attack' is now 'eval\.final\.name'.*eval\.final\.name="):
        load_config(None, ["eval.final.attack=apgd-ce"])
    assert load_config(None, ["eval.final.name=pgd"]).eval.final == AttackSpec("pgd", 10, None)  # final's defaults


def _count_text_parses(monkeypatch) -> list[str]:
    """Every call of the one eps parser with text, wherever it was imported (``from ... import parse_eps``)."""
    calls: list[str] = []
    original = units.parse_eps

    def counting(value, *args, **kwargs):
        if isinstance(value, str):
            calls.append(value)
        return original(value, *args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("robustft") and getattr(module, "parse_eps", None) is original:
            monkeypatch.setattr(module, "parse_eps", counting)
    return calls


TEXTS = {"eps": {"schedule": "constant", "value": "8/255"},
         "eval": {"schedule": "every:4", "subset": 8, "batch_size": 8, "splits": ["val", "test"], "eps": ["2/255"],
                  "curve": "2/255", "attack": {"name": "pgd", "steps": 2, "step_size": "1/255"},
                  "final": {"name": "pgd", "steps": 2, "step_size": "0.5eps"}}}


def _write_config(tmp_path) -> Path:
    tree = {"name": "once", "output_dir": str(tmp_path), "device": "cpu", "seed": 0,
            "objective": {"name": "adversarial", "steps": 2, "step_size": "2/255"},
            "optim": {"batch_size": 16, "warmup": 0}, "train": {"steps": 4, "epochs": None},
            "logging": {"progress": False}, **TEXTS}
    path = tmp_path / "once.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_eps_text_is_parsed_once_when_the_config_is_built_and_never_again_on_the_way_to_the_attack(
        tmp_path, monkeypatch):
    path = _write_config(tmp_path)
    calls = _count_text_parses(monkeypatch)
    cfg = load_config(path)
    # eps.value, eval.eps[0], eval.curve, eval.attack.step_size, objective.step_size: one parse each ("0.5eps" is
    # a RelativeStep, read by parse_step_size without the eps parser)
    assert sorted(calls) == sorted(["8/255", "2/255", "2/255", "1/255", "2/255"])
    assert cfg.eval.final is not None and cfg.eval.final.step_size == RelativeStep(0.5)
    calls.clear()
    result = train(cfg, model=tiny_cnn(4), datasets=tiny_splits())
    assert calls == []  # the trainer, evaluator, objective and attacks take the parsed values as they are
    assert result.summary["train_eps_max"] == 8 / 255
    calls.clear()
    train(path, [f"output_dir={tmp_path / 'from-file'}"], model=tiny_cnn(4), datasets=tiny_splits())
    assert len(calls) == 5  # from the file: the same five parses, once


def test_the_training_attack_receives_the_eps_the_config_holds_and_its_settings(tmp_path):
    cfg = load_config(_write_config(tmp_path))
    splits = {"train": TinyData(64, 0), "val": TinyData(16, 1), "test": TinyData(16, 2)}
    trainer = build_trainer(cfg, model=tiny_cnn(4), datasets=splits, quiet=True)
    attack = trainer.context.attack
    assert attack is not None and attack.name == "pgd"
    assert attack.options["steps"] == 2 and attack.options["step_size"] == 2 / 255  # objective.* as written
    received: list[float] = []

    def recording(model, images, labels, eps):
        received.append(eps)
        return attack(model, images, labels, eps)

    trainer.context.attack = recording
    trainer.execute()
    # constant schedule: every step's attack runs at eps.value exactly, the float the config parsed
    assert received == [cfg.eps.value] * trainer.total_steps and cfg.eps.value == 8 / 255


def test_a_plain_tree_given_as_a_config_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"not a plain tree.*from_dict\(tree\)"):
        train({"name": "tree", "output_dir": str(tmp_path)}, model=tiny_cnn(4), datasets=tiny_splits())
    assert not (tmp_path / "tree").exists()


def test_a_config_given_to_load_config_keeps_its_values_with_overrides_on_top():
    cfg = from_dict({"eval": {"attack": {"step_size": "eps/4"}, "eps": ["0.3/255"]}})
    again = load_config(cfg, ["optim.lr=0.01"])
    assert again.eval == cfg.eval and again.optim.lr == 0.01
    assert str(again.eval.attack.step_size) == "eps/4"  # as written, for config.yaml
    assert load_config(cfg) == cfg and load_config(cfg) is not cfg


def test_make_attack_passes_the_specs_parsed_step_and_drops_settings_the_attack_has_no_use_for():
    relative = make_attack(AttackSpec("pgd", steps=3, step_size=RelativeStep(0.25, "0.25eps")))
    assert relative.options == {"steps": 3, "step_size": RelativeStep(0.25), "random_start": True, "restarts": 1}
    assert make_attack(AttackSpec("fgsm")).options == {"random_start": True}  # no steps, step_size, restarts
    model, images = tiny_cnn(4).eval(), torch.rand(4, 3, 16, 16)
    labels = torch.zeros(4, dtype=torch.long)
    x_adv = make_attack(AttackSpec("pgd", steps=1, step_size=RelativeStep(0.5), random_start=False))(
        model, images, labels, 4 / 255)
    assert (x_adv - images).abs().max().item() == pytest.approx(2 / 255, abs=1e-6)  # one step of 0.5 eps
