"""Step sizes relative to eps ("0.25eps"), and the refusal of configs whose attack cannot reach its eps."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from robustft.attacks import ATTACKS, build_attack, pgd, robust_curve
from robustft.config import from_dict, load_config
from robustft.config.units import RelativeStep, relative_step, step_in_pixels
from robustft.config.validate import STEP_SIZE_ATTACKS
from robustft.errors import ConfigError
from test_attacks_support import quadrant_task, trained_tiny_cnn

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(("text", "ratio"), [("0.25eps", 0.25), ("0.25*eps", 0.25), ("1/4 eps", 0.25),
                                              ("eps/4", 0.25), ("eps", 1.0), (" 2 * eps ", 2.0)])
def test_relative_step_forms(text, ratio):
    assert relative_step(text) == ratio
    assert step_in_pixels(text, 4 / 255) == pytest.approx(ratio * 4 / 255)


@pytest.mark.parametrize("value", ["0.25/255", 0.001, None])
def test_absolute_steps_are_not_relative(value):
    assert relative_step(value) is None


@pytest.mark.parametrize("value", ["fast", "0eps", "eps/0", 0.0])
def test_bad_steps_say_how_to_write_them(value):
    with pytest.raises(ConfigError, match="0.25eps"):
        step_in_pixels(value, 1 / 255)


def test_relative_step_at_1_255_is_paper_a_exactly():
    """Paper A's PGD-15 at 1/255 with step 0.25/255: the relative step gives bit-identical points."""
    model = trained_tiny_cnn()
    images, labels = quadrant_task(32, seed=2)
    assert step_in_pixels("0.25eps", 1 / 255) == step_in_pixels("0.25/255", 1.0) == 0.25 / 255
    paper = pgd(model, images, labels, 1 / 255, steps=15, step_size=0.25 / 255,
                generator=torch.Generator().manual_seed(0))
    relative = pgd(model, images, labels, 1 / 255, steps=15, step_size="0.25eps",
                   generator=torch.Generator().manual_seed(0))
    assert torch.equal(paper, relative)


def test_curve_with_relative_steps_matches_runs_with_the_step_scaled():
    """Each curve point is the attack at that eps with step 0.25 * eps, nested over the smaller eps."""
    model = trained_tiny_cnn()
    images, labels = quadrant_task(64, seed=3)
    eps_list = [0.0, 4 / 255, 8 / 255, 12 / 255]
    attack = build_attack("pgd", steps=10, step_size="0.25eps", random_start=False)
    curve = robust_curve(model, (images, labels), attack, eps_list)
    robust = model(images).argmax(1) == labels
    expected = [int(robust.sum())]
    for eps in eps_list[1:]:
        x_adv = pgd(model, images, labels, eps, steps=10, step_size=0.25 * eps, random_start=False)
        robust &= model(x_adv).argmax(1) == labels
        expected.append(int(robust.sum()))
    assert [r.correct for r in curve] == expected
    assert expected[1] > expected[-1] > 0  # the points differ: the step really scales with eps
    assert "step_size=0.25eps" in curve[-1].attack


def _demo_tree(**attack) -> dict:
    tree = load_config(CONFIGS / "demo.yaml")
    from robustft.config import to_dict

    plain = to_dict(tree)
    plain["eval"]["attack"].update(attack)
    return plain


def test_demo_configs_are_valid_and_use_the_relative_step():
    # configs/demo.yaml evaluates PGD-10 along a curve to 4/255: only a relative step reaches every eps.
    cfg = load_config(CONFIGS / "demo.yaml")
    assert cfg.eval.attack.step_size == RelativeStep(0.25) and cfg.eval.curve == 4 / 255  # parsed once, here
    # The demo study's configs (what `robustft demo` runs) pass the reach check as shipped.
    study = sorted(p for p in (CONFIGS / "demo").rglob("*.yaml") if not p.name.startswith("_"))
    assert len(study) == 10
    for path in study:
        load_config(path)


def test_a_step_that_cannot_reach_the_curve_end_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"moves at most 2\.5/255.*eps=4/255.*eval\.curve.*0\.25eps") as info:
        from_dict(_demo_tree(step_size="0.25/255"))  # the old demo: PGD-10, 0.25/255, curve to 4/255
    assert "steps=16" in str(info.value)
    with pytest.raises(ConfigError, match="weaker attack"):
        from_dict(_demo_tree(step_size="0.05eps"))  # 10 x 0.05 eps = half of eps
    with pytest.raises(ConfigError, match="eval.eps"):
        from_dict({"eval": {"attack": "paper-a", "eps": ["8/255"], "curve": None}})
    final = {"eval": {"eps": ["1/255"], "curve": "4/255", "attack": {"step_size": "0.25eps"},
                      "final": {"name": "pgd", "steps": 10, "step_size": "0.25/255"}}}
    with pytest.raises(ConfigError, match="eval.final"):
        from_dict(final)


def test_reachable_steps_and_adaptive_attacks_are_accepted():
    paper_a = from_dict({"eval": {"attack": "paper-a", "eps": ["1/255"], "curve": None}})
    assert paper_a.eval.attack.step_size == 0.25 / 255 and paper_a.eval.attack.steps == 15  # unchanged
    from_dict(_demo_tree(step_size="0.25/255", steps=16))  # 16 x 0.25/255 = 4/255
    from_dict(_demo_tree(name="apgd-ce", step_size="0.25/255"))  # APGD ignores the step: no reach to check


def test_step_size_attacks_are_the_registered_attacks_with_a_step_size():
    with_step = {name for name in ATTACKS.names() if "step_size" in inspect.signature(ATTACKS.get(name)).parameters}
    assert with_step == set(STEP_SIZE_ATTACKS)
