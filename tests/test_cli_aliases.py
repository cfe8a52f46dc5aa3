"""Paper B's names are aliases wherever schedules are named: configs, overrides, ``robustft list``."""

from __future__ import annotations

import pytest

from robustft.cli import main
from robustft.config import load_config
from robustft.errors import ConfigError, UnknownNameError
from robustft.registry import Registry
from robustft.training.schedules import EPS_SCHEDULES


@pytest.mark.parametrize("alias, name", [("fix", "constant"), ("rft-fix", "constant"),
                                         ("epsilon-scheduling", "scheduled"), ("linear-warmup", "linear")])
def test_paper_b_schedule_names_are_accepted_and_resolved(alias, name):
    assert load_config(None, ["objective.name=adversarial", f"eps.schedule={alias}"]).eps.schedule == name
    assert EPS_SCHEDULES.get(alias) is EPS_SCHEDULES.get(name)
    assert alias in EPS_SCHEDULES and alias not in EPS_SCHEDULES.names()


def test_unknown_schedule_still_refused():
    with pytest.raises(ConfigError, match="not an eps schedule"):
        load_config(None, ["eps.schedule=fixed-ish"])


def test_list_shows_the_aliases(capsys):
    assert main(["list", "schedules"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("constant"))
    assert "(also: fix, rft-fix)" in line


def test_registry_aliases():
    registry: Registry[int] = Registry("thing")
    registry.add("one", 1)
    registry.add_alias("uno", "one")
    assert registry.get("uno") == 1 and registry.canonical("uno") == "one" and registry.aliases_of("one") == ["uno"]
    assert registry.entry("uno").name == "one" and list(registry) == ["one"]
    with pytest.raises(ValueError):
        registry.add_alias("dos", "two")  # not registered
    with pytest.raises(UnknownNameError, match="uno"):
        registry.get("unoo")  # close matches include aliases
