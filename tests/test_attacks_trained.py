"""Attack strength on a trained model, cross-checked against independent implementations, and masking checks."""

from __future__ import annotations

import pytest
import torch

from robustft.attacks import apgd, build_attack, cascade, pgd, robust_accuracy, run_checks
from robustft.models.wrapper import ModelInfo, RobustModel
from test_attacks_support import quadrant_task, trained_tiny_cnn

EPS = (8 / 255, 12 / 255)  # on this model: accuracy ~90% and ~60% under PGD, so differences are visible


@pytest.fixture(scope="module")
def model():
    return trained_tiny_cnn()


@pytest.fixture(scope="module")
def data():
    return quadrant_task(128, seed=1)


def _accuracy(model, x_adv, labels):
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == labels).float().mean())


@pytest.mark.parametrize("eps", EPS)
def test_pgd_at_least_as_strong_as_torchattacks(model, data, eps):
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = data
    torch.manual_seed(0)
    reference = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True)
    theirs = _accuracy(model, reference(images, labels), labels)
    ours = robust_accuracy(model, (images, labels), build_attack(
        "pgd", steps=10, step_size=2.5 * eps / 10, random_start=True, generator=torch.Generator().manual_seed(0)),
        eps).accuracy
    assert ours <= theirs + 0.01
    assert ours < 0.99  # the comparison is meaningful: the attack fools some samples


def test_pgd_at_least_as_strong_as_foolbox(model, data):
    foolbox = pytest.importorskip("foolbox")
    images, labels = data
    eps = EPS[1]
    fmodel = foolbox.PyTorchModel(model.eval(), bounds=(0, 1))
    torch.manual_seed(0)
    attack = foolbox.attacks.LinfPGD(steps=10, rel_stepsize=0.25, random_start=True)
    _, clipped, success = attack(fmodel, images, labels, epsilons=eps)
    theirs = 1 - float(success.float().mean())
    ours = robust_accuracy(model, (images, labels), build_attack(
        "pgd", steps=10, step_size=0.25 * eps, generator=torch.Generator().manual_seed(0)), eps).accuracy
    assert ours <= theirs + 0.01


def test_apgd_t_at_least_as_strong_as_torchattacks(model, data):
    """Targeted APGD over every other class (4 classes: 3 targets), 10 steps each, as torchattacks' APGDT."""
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = data
    eps = EPS[1]
    reference = torchattacks.APGDT(model, eps=eps, steps=10, n_classes=4, seed=0)
    theirs = _accuracy(model, reference(images, labels), labels)
    ours = robust_accuracy(model, (images, labels), build_attack(
        "apgd-t", steps=10, generator=torch.Generator().manual_seed(0)), eps).accuracy
    assert ours <= theirs + 0.01
    assert ours < 0.9  # meaningful: the attack fools a good share of the samples


@pytest.mark.slow
def test_square_at_least_as_strong_as_torchattacks(model, data):
    """Square is a random search: one seed of either implementation swings by several points on 128 samples, so
    the mean over three seeds of each is compared (about 30 s)."""
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = data
    eps, queries, seeds = 24 / 255, 200, (0, 1, 2)
    theirs = sum(_accuracy(model, torchattacks.Square(model, eps=eps, n_queries=queries, seed=seed)(images, labels),
                           labels) for seed in seeds) / len(seeds)
    ours = sum(robust_accuracy(model, (images, labels), build_attack(
        "square", n_queries=queries, generator=torch.Generator().manual_seed(seed)), eps).accuracy
               for seed in seeds) / len(seeds)
    assert ours <= theirs + 0.01
    assert ours < 0.9


@pytest.mark.parametrize("eps", EPS)
def test_apgd_ce_not_weaker_than_pgd(model, data, eps):
    images, labels = data
    by_pgd = robust_accuracy(model, (images, labels), build_attack(
        "pgd", steps=10, generator=torch.Generator().manual_seed(0)), eps).accuracy
    by_apgd = robust_accuracy(model, (images, labels), build_attack(
        "apgd-ce", steps=10, generator=torch.Generator().manual_seed(0)), eps).accuracy
    assert by_apgd <= by_pgd + 0.01


def test_cascade_not_weaker_than_its_first_stage(model, data):
    images, labels = data[0][:48], data[1][:48]
    eps = EPS[1]
    first = _accuracy(model, apgd(model, images, labels, eps, steps=5, generator=torch.Generator().manual_seed(0)),
                      labels)
    full = _accuracy(model, cascade(model, images, labels, eps, steps=5, n_target_classes=2, n_queries=30,
                                    generator=torch.Generator().manual_seed(0)), labels)
    assert full <= first


def test_more_restarts_not_weaker(model, data):
    images, labels = data
    eps = EPS[1]
    one = _accuracy(model, pgd(model, images, labels, eps, steps=5, generator=torch.Generator().manual_seed(3)),
                    labels)
    three = _accuracy(model, pgd(model, images, labels, eps, steps=5, restarts=3,
                                 generator=torch.Generator().manual_seed(3)), labels)
    assert three <= one


class _Quantised(torch.nn.Module):
    """Gradient masking by construction: inputs rounded to 4 levels (round has zero gradient almost everywhere)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 3) / 3)


class _Noisy(torch.nn.Module):
    """A randomised 'defence': large Gaussian noise on the input at test time."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner((x + 0.3 * torch.randn_like(x)).clamp(0, 1))


def _wrap(inner, model):
    info = ModelInfo("masked", "cnn", 16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 4, head="backbone.inner.backbone")
    return RobustModel(inner, info).eval()


def test_checks_pass_a_normal_model(model, data):
    images, labels = data
    assert run_checks(model, (images[:32], labels[:32]), EPS[0], max_samples=32, n_queries=50) == []


def test_checks_flag_a_quantising_model(model, data):
    images, labels = data
    masked = _wrap(_Quantised(model), model)
    found = {w.check for w in run_checks(masked, (images[:32], labels[:32]), EPS[0], max_samples=32,
                                         n_queries=50)}
    assert "zero_or_nan_gradients" in found
    assert "huge_eps_accuracy" in found


def test_checks_flag_a_random_model(model, data):
    images, labels = data
    noisy = _wrap(_Noisy(model), model)
    warnings = run_checks(noisy, (images[:32], labels[:32]), EPS[0], max_samples=32, n_queries=50)
    assert "random_forward" in {w.check for w in warnings}
    assert all(w.message for w in warnings)
