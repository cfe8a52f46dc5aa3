"""Run names: exactly the characters the message states, which are the ones sweeps name their points with."""

from __future__ import annotations

import pytest

from robustft.config import from_dict
from robustft.errors import ConfigError
from robustft.sweep import expand_grid

ALLOWED = ("use 1 to 200 characters from ASCII letters, digits, '.', '_', '+' and '-', starting with a letter, "
           "digit or '_'")


@pytest.mark.parametrize("name", [
    "<img src=x onerror=alert(1)>", "../x", "a/b", "a\\b", ".", "..", ".hidden", "-rf", "", "a b", "a=b",
    "run;rm", "ünïcode", "x" * 201, "tab\there", "a:b",
])
def test_names_outside_the_stated_set_are_refused_with_that_set(name):
    with pytest.raises(ConfigError) as caught:
        from_dict({"name": name})
    assert ALLOWED in str(caught.value)


@pytest.mark.parametrize("name", ["demo", "paper_a_embedded_lora", "demo-20240101-120000", "_x", "7", "x" * 200])
def test_ordinary_names_are_accepted(name):
    assert from_dict({"name": name}).name == name


def test_every_name_a_sweep_generates_is_a_valid_run_name():
    grid = {"strategy.name": ["peft:lora", "lp-ft"], "eps.value": ["1/255", "0.5/255"], "optim.lr": ["1e-3", "1e+2"],
            "data.augment": ["[flip, color_jitter:0.25]"], "model.options": ["{a: <b>}"]}
    for point in expand_grid("paper_a_embedded", grid):
        assert from_dict({"name": point.name}).name == point.name
