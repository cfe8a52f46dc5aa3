"""The attack contract: box and norm bounds, eps = 0, model state hygiene, fp32 under autocast, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robustft.attacks.base as attack_base
from robustft.attacks import ATTACKS, apgd, build_attack, fgsm, pgd, square
from robustft.errors import ConfigError, MissingAssetError, UnknownNameError
from robustft.models.tiny import tiny_cnn

FAST = {
    "fgsm": {}, "pgd": {"steps": 3}, "apgd-ce": {"steps": 3}, "apgd-dlr": {"steps": 3},
    "apgd-t": {"steps": 2, "n_target_classes": 2}, "square": {"n_queries": 10},
    "cascade": {"steps": 2, "n_target_classes": 2, "n_queries": 5},
}
OWN = sorted(FAST)


def _model():
    return tiny_cnn(num_classes=5, width=4, seed=1).eval()


def _batch(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 5, (n,), generator=g)


MODEL = _model()


def test_every_registered_attack_is_covered():
    assert set(ATTACKS.names()) == set(OWN) | {"autoattack"}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(OWN), eps_255=st.floats(0.5, 64), seed=st.integers(0, 1000),
       saturate=st.booleans())
def test_linf_box_and_radius_always_hold(name, eps_255, seed, saturate):
    images, labels = _batch(seed=seed)
    if saturate:  # pixels at 0 and 1 are where box clipping matters
        images = (images > 0.5).float()
    eps = eps_255 / 255
    attack = build_attack(name, **FAST[name], generator=torch.Generator().manual_seed(seed))
    x_adv = attack(MODEL, images, labels, eps)
    assert x_adv.shape == images.shape and x_adv.dtype == torch.float32
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - images).abs().max() <= eps + 1e-6


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eps=st.floats(0.01, 3.0), seed=st.integers(0, 1000), use_apgd=st.booleans(), steps=st.integers(1, 4))
def test_l2_box_and_radius_always_hold(eps, seed, use_apgd, steps):
    images, labels = _batch(seed=seed)
    attack = apgd if use_apgd else pgd
    x_adv = attack(MODEL, images, labels, eps, norm="l2", steps=steps, generator=torch.Generator().manual_seed(seed))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - images).flatten(1).norm(dim=1).max() <= eps + 1e-5


@pytest.mark.parametrize("name", OWN)
def test_eps_zero_returns_the_input(name):
    images, labels = _batch()
    x_adv = build_attack(name, **FAST[name])(MODEL, images, labels, 0.0)
    assert torch.equal(x_adv, images)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "square"])
def test_model_mode_flags_and_grads_restored(name):
    model = tiny_cnn(num_classes=5, width=4, seed=2)
    model.train()
    model.backbone.features[1].eval()  # mixed per-module modes must come back exactly
    first = next(model.parameters())
    first.requires_grad_(False)
    sentinel = torch.full_like(model.backbone.classifier.weight, 3.0)
    model.backbone.classifier.weight.grad = sentinel.clone()
    modes = {name_: m.training for name_, m in model.named_modules()}
    flags = {name_: p.requires_grad for name_, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_attack(name, **FAST[name])(model, images, labels, 8 / 255)
    assert {name_: m.training for name_, m in model.named_modules()} == modes
    assert {name_: p.requires_grad for name_, p in model.named_parameters()} == flags
    assert torch.equal(model.backbone.classifier.weight.grad, sentinel)
    assert all(p.grad is None for n_, p in model.named_parameters() if n_ != "backbone.classifier.weight")
    # Eval mode while attacking: BatchNorm running statistics are not updated by adversarial batches.
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_train_mode_batchnorm_is_said_once(monkeypatch):
    monkeypatch.setattr(attack_base, "_warned_train_mode", False)
    model = tiny_cnn(num_classes=5, width=4).train()
    images, labels = _batch()
    with pytest.warns(UserWarning, match="BatchNorm in train mode"):
        pgd(model, images, labels, 2 / 255, steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pgd(model, images, labels, 2 / 255, steps=1)


def test_gradients_are_fp32_under_autocast():
    images, labels = _batch()
    generator = torch.Generator().manual_seed(0)
    plain = pgd(MODEL, images, labels, 4 / 255, steps=3, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = pgd(MODEL, images, labels, 4 / 255, steps=3, generator=torch.Generator().manual_seed(0))
    assert under_autocast.dtype == torch.float32
    assert torch.equal(plain, under_autocast)


def test_works_under_no_grad():
    images, labels = _batch()
    with torch.no_grad():
        x_adv = pgd(MODEL, images, labels, 8 / 255, steps=2)
    assert (x_adv - images).abs().max() > 0


@pytest.mark.parametrize("attack", [pgd, apgd])
def test_early_stop_gives_the_same_verdict(attack):
    model = tiny_cnn(num_classes=5, width=6, seed=3).eval()
    images, labels = _batch(n=24, size=12, seed=5)
    verdicts = []
    for early in (False, True):
        x_adv = attack(model, images, labels, 3 / 255, steps=6, early_stop=early,
                       generator=torch.Generator().manual_seed(7))
        verdicts.append(model(x_adv).argmax(1) == labels)
    assert torch.equal(verdicts[0], verdicts[1])
    assert 0 < int(verdicts[0].sum()) < len(labels)  # the check is meaningful: some fooled, some not


def test_returned_point_fools_if_any_iterate_did():
    """Per-sample worst case across restarts: more restarts can only fool more samples."""
    model = tiny_cnn(num_classes=5, width=6, seed=3).eval()
    images, labels = _batch(n=24, size=12, seed=5)
    one = model(pgd(model, images, labels, 2 / 255, steps=2, generator=torch.Generator().manual_seed(1))).argmax(1)
    many = model(pgd(model, images, labels, 2 / 255, steps=2, restarts=4,
                     generator=torch.Generator().manual_seed(1))).argmax(1)
    assert ((many == labels) <= (one == labels)).all()


def test_pgd_returns_highest_loss_point_for_training():
    """Without fooling, the returned point has at least the loss of the random start and of the last iterate."""
    model = tiny_cnn(num_classes=5, width=6, seed=3).eval()
    images, labels = _batch(n=8, size=12, seed=5)
    x_adv = pgd(model, images, labels, 1 / 255, steps=3, random_start=False)
    loss = torch.nn.functional.cross_entropy(model(x_adv), labels, reduction="none")
    clean = torch.nn.functional.cross_entropy(model(images), labels, reduction="none")
    assert (loss >= clean - 1e-6).all()


def test_fgsm_and_square_shapes():
    images, labels = _batch()
    assert fgsm(MODEL, images, labels, 4 / 255).shape == images.shape
    assert square(MODEL, images, labels, 4 / 255, n_queries=3).shape == images.shape


def test_eps_written_in_255_units_suggests_fraction():
    images, labels = _batch()
    with pytest.raises(ConfigError, match="8/255"):
        pgd(MODEL, images, labels, 8)


def test_unknown_attack_lists_attacks():
    with pytest.raises(UnknownNameError, match="apgd-ce"):
        build_attack("apgd_ce")


def test_unknown_option_lists_options():
    with pytest.raises(ConfigError, match="steps"):
        build_attack("pgd", stepz=3)


def test_images_outside_unit_box_rejected():
    images, labels = _batch()
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        pgd(MODEL, images * 255, labels, 4 / 255)


def test_dlr_needs_three_classes():
    model = tiny_cnn(num_classes=2, width=4).eval()
    images, labels = _batch()
    with pytest.raises(ConfigError, match="apgd-ce|ce"):
        apgd(model, images, labels % 2, 4 / 255, loss="dlr")


def test_autoattack_without_package_says_how_to_install():
    try:
        import autoattack  # noqa: F401
    except ImportError:
        images, labels = _batch()
        with pytest.raises(MissingAssetError, match="pip install git\\+https://github.com/fra31/auto-attack"):
            build_attack("autoattack")(MODEL, images, labels, 4 / 255)
    else:
        pytest.skip("autoattack is installed here; the missing-package message cannot be observed")
