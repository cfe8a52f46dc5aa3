"""run_checks' convergence check: the evaluated attack against itself with 10x its steps."""

from __future__ import annotations

import pytest
import torch

from robustft.attacks import Attack, build_attack, pgd, run_checks
from robustft.attacks.checks import CONVERGENCE_FACTOR, attack_steps
from test_attacks_support import quadrant_task, trained_tiny_cnn

EPS = 12 / 255  # PGD leaves about 60% of this model's samples robust here


@pytest.fixture(scope="module")
def model():
    return trained_tiny_cnn()


@pytest.fixture(scope="module")
def data():
    return quadrant_task(64, seed=1)


def stops_early(model, images, labels, eps, steps=10, generator=None):
    """An attack that does nothing below 100 steps and is PGD from 100 on: what a not-converged attack looks like
    to the check, deterministically."""
    if steps < 100:
        return images.clone()
    return pgd(model, images, labels, eps, steps=steps, generator=generator)


def check_names(model, data, attack: Attack | None, eps: float = EPS) -> set[str]:
    images, labels = data
    return {w.check for w in run_checks(model, (images[:32], labels[:32]), eps, max_samples=32, n_queries=50,
                                        attack=attack)}


def test_an_attack_that_more_steps_make_much_stronger_is_flagged(model, data):
    images, labels = data
    warnings = run_checks(model, (images[:32], labels[:32]), EPS, max_samples=32, n_queries=50,
                          attack=Attack("stops-early", stops_early, {"steps": 10}))
    flagged = [w for w in warnings if w.check == "attack_not_converged"]
    assert len(flagged) == 1
    assert "with 10 steps leaves" in flagged[0].message and "with 100 steps" in flagged[0].message
    assert "--steps 100" in flagged[0].message and flagged[0].value > 0.1


def test_a_converged_attack_and_an_attack_without_steps_pass(model, data):
    assert "attack_not_converged" not in check_names(model, data, build_attack("pgd", steps=10))
    assert check_names(model, data, build_attack("fgsm")) == check_names(model, data, None)


def test_the_check_needs_an_eps(model, data):
    assert "attack_not_converged" not in check_names(model, data, Attack("stops-early", stops_early), eps=0.0)


def test_attack_steps_reads_the_option_then_the_default():
    assert attack_steps(build_attack("pgd", steps=7)) == 7
    assert attack_steps(Attack("stops-early", stops_early)) == 10
    assert attack_steps(build_attack("fgsm")) is None
    assert CONVERGENCE_FACTOR * attack_steps(build_attack("apgd-ce", steps=10)) == 100


def test_the_long_run_starts_from_the_same_random_state(model, data):
    """Both runs take a fresh generator seeded alike: a converged attack gives the same points both times."""
    seen = []

    def recording(model, images, labels, eps, steps=10, generator=None):
        seen.append(torch.rand(3, generator=generator))
        return images.clone()

    check_names(model, data, Attack("recording", recording))
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])


def test_a_plain_function_has_no_steps_to_raise():
    assert attack_steps(stops_early) is None
