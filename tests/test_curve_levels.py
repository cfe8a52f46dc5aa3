"""A robust curve's eps levels attacked side by side (``attacks.curve_levels``) give the nested curve's verdicts.

The reference here is the plain nested loop written out: level by level, the samples still robust attacked at that
level's scalar eps with the level's start noise (drawn for the whole chunk, levels in order). ``robust_curve``
must match it sample by sample at every level, on every tiny backbone, for pgd and apgd-ce, at every depth; and
a per-sample radius must attack a sample exactly as the scalar eps does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from robustft.attacks import curve_levels, robust_curve
from robustft.attacks.apgd import apgd
from robustft.attacks.base import Attack
from robustft.attacks.pgd import pgd
from robustft.attacks.record import ReturnedLogits
from robustft.attacks.registry import build_attack
from robustft.attacks.robust_evaluation import _admissible
from robustft.errors import ConfigError
from robustft.models.tiny import tiny_cnn, tiny_mobilenet, tiny_vit
from robustft.models.wrapper import RobustModel

BACKBONES: dict[str, Callable[[], RobustModel]] = {
    "tiny-cnn": lambda: tiny_cnn(num_classes=10),
    "tiny-mobilenet": lambda: tiny_mobilenet(num_classes=10),
    "tiny-vit": lambda: tiny_vit(num_classes=10),
}
ATTACKS = {
    "pgd": lambda **o: build_attack("pgd", steps=4, step_size="0.25eps", **o),
    "apgd-ce": lambda **o: build_attack("apgd-ce", steps=4, **o),
}
GRID = [0.0, 0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255, 3 / 255, 4 / 255, 6 / 255, 8 / 255, 12 / 255]


def _case(backbone: str, n: int = 24) -> tuple[RobustModel, torch.Tensor, torch.Tensor]:
    """A tiny model and images labelled with its own predictions, but for a few: clean accuracy below 1, and a
    curve that falls over the grid rather than at its first point."""
    model = BACKBONES[backbone]().eval()
    images = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = model(images).argmax(1)
    labels[:3] = (labels[:3] + 1) % 10
    return model, images, labels


def _reference(model: RobustModel, images: torch.Tensor, labels: torch.Tensor, attack, grid: list[float],
               seed: int) -> list[np.ndarray]:
    """The nested loop written out: per level the survivors at the level's scalar eps, with the level's noise."""
    torch.manual_seed(seed)
    with torch.no_grad():
        robust = model(images).argmax(1) == labels
    masks = []
    for eps in grid:
        idx = torch.nonzero(robust).squeeze(1)
        if eps > 0 and idx.numel():
            noise = torch.rand(images.shape)  # the level's draws for the whole chunk
            # The verdict from the logits the attack recorded for its point, as robust evaluation takes it: tiny
            # random models have tiny margins, where another pass's rounding could flip a verdict.
            record = ReturnedLogits()
            attack.with_options(start_noise=noise[idx], early_stop=True, record=record)(
                model, images[idx], labels[idx], eps)
            robust[idx] = record.logits.argmax(1) == labels[idx]
        masks.append(robust.clone().numpy())
    return masks


@pytest.mark.parametrize("attack_name", sorted(ATTACKS))
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_side_by_side_curve_is_the_nested_loop_sample_by_sample(backbone, attack_name, monkeypatch):
    model, images, labels = _case(backbone)
    attack = ATTACKS[attack_name]()
    expected = _reference(model, images, labels, attack, GRID, seed=5)
    assert expected[0].sum() < len(labels) and expected[-1].sum() < expected[0].sum()  # a curve that moves
    for rows in (1, 16, 1000):  # depth 1 (the plain loop), a few levels, every level at once
        monkeypatch.setattr(curve_levels, "depth", lambda s, r, _rows, k=rows: max(1, min(r, k // max(s, 1))))
        torch.manual_seed(5)
        curve = robust_curve(model, (images, labels), attack, GRID)
        for level, (result, mask) in enumerate(zip(curve, expected, strict=True)):
            assert np.array_equal(result.per_sample, mask), (rows, level)
            assert result.correct == int(mask.sum())


def test_side_by_side_needs_no_global_rng_when_the_attack_has_a_generator():
    """With a generator, every level's noise comes from it: the global RNG's state does not matter."""
    model, images, labels = _case("tiny-cnn")
    results = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        attack = ATTACKS["apgd-ce"](generator=torch.Generator().manual_seed(3))
        results.append([r.per_sample for r in robust_curve(model, (images, labels), attack, GRID)])
    assert all(np.array_equal(a, b) for a, b in zip(*results, strict=True))
    assert results[0][-1].sum() < results[0][0].sum()


@pytest.mark.parametrize("attack_fn", [pgd, apgd], ids=["pgd", "apgd"])
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_a_per_sample_radius_attacks_as_the_scalar_eps_does(backbone, attack_fn):
    """Rows at radii 1/255 and 4/255 in one batch: each half's points, bit for bit, those of the attack at that
    scalar eps alone (same start noise), with early stop narrowing the batch in between."""
    model, images, labels = _case(backbone, n=12)
    noise = torch.rand((24, 3, 32, 32), generator=torch.Generator().manual_seed(2))
    options = {"steps": 4, "early_stop": True}
    if attack_fn is pgd:
        options["step_size"] = "0.25eps"
    radii = torch.cat([torch.full((12,), 1 / 255), torch.full((12,), 4 / 255)])
    both = attack_fn(model, images.repeat(2, 1, 1, 1), labels.repeat(2), 4 / 255, radii=radii, start_noise=noise,
                     **options)
    small = attack_fn(model, images, labels, 1 / 255, start_noise=noise[:12], **options)
    large = attack_fn(model, images, labels, 4 / 255, start_noise=noise[12:], **options)
    assert torch.equal(both[:12], small) and torch.equal(both[12:], large)
    assert float((small - images).abs().amax()) <= 1 / 255 + 1e-6
    assert not torch.equal(small, large)


@pytest.mark.parametrize("name, options, expected", [
    ("pgd", {}, True),
    ("apgd-ce", {}, True),
    ("apgd-dlr", {}, True),
    ("pgd", {"restarts": 2}, False),  # a second restart draws noise for the samples it attacks
    ("pgd", {"norm": "l2"}, False),
    ("apgd-t", {}, False),
    ("square", {}, False),
    ("fgsm", {}, False),
    ("apgd-ce", {"targeted": True}, False),  # targeted as an option rather than the registry's apgd-t
])
def test_which_attacks_run_levels_side_by_side(name, options, expected):
    assert curve_levels.runs_side_by_side(build_attack(name, **options)) is expected
    assert curve_levels.runs_side_by_side(lambda model, images, labels, eps: images) is False


def test_an_attack_needs_both_per_sample_radii_and_start_noise():
    def radii_only(model, images, labels, eps, *, radii=None):
        return images

    def noise_only(model, images, labels, eps, *, start_noise=None):
        return images

    assert not curve_levels.runs_side_by_side(Attack("radii-only", radii_only))
    assert not curve_levels.runs_side_by_side(Attack("noise-only", noise_only))


def test_an_attack_that_cannot_still_gives_the_nested_curve():
    """pgd with two restarts runs level by level: nested (non-increasing per sample), as before."""
    model, images, labels = _case("tiny-mobilenet")
    torch.manual_seed(0)
    curve = robust_curve(model, (images, labels), build_attack("pgd", steps=3, restarts=2), GRID)
    masks = np.stack([r.per_sample for r in curve])
    assert not (masks[1:] & ~masks[:-1]).any()
    assert masks[-1].sum() < masks[0].sum()


@pytest.mark.parametrize("survivors, remaining, rows, expected", [
    (80, 33, 200, 2), (17, 33, 200, 11), (17, 3, 200, 3), (300, 10, 200, 1), (200, 5, 200, 1), (0, 5, 200, 1),
    (5, 0, 200, 0), (1, 33, 200, 33), (1, 1, 200, 1),
])
def test_depth_fills_about_one_batch(survivors, remaining, rows, expected):
    assert curve_levels.depth(survivors, remaining, rows) == expected


def test_level_noise_is_drawn_once_per_attacked_level_in_order():
    torch.manual_seed(4)
    noise = curve_levels.LevelNoise(torch.Size((3, 1, 2, 2)), torch.device("cpu"))
    first = noise.of(1).clone()  # level 0 (eps 0, say) is never attacked: nothing drawn for it
    assert torch.equal(noise.of(1), first)
    third = noise.of(3)
    torch.manual_seed(4)
    assert torch.equal(first, torch.rand(3, 1, 2, 2)) and torch.equal(third, torch.rand(3, 1, 2, 2))
    with pytest.raises(ValueError, match="after level 3"):
        noise.of(2)
    noise.forget(2)
    with pytest.raises(ValueError):
        noise.of(1)
    noise.forget(3)  # below 3 only: level 3 is kept
    assert torch.equal(noise.of(3), third) and noise.held() == [3]
    noise.forget(4)
    assert noise.held() == []
    with pytest.raises(ValueError, match="after level 3"):
        noise.of(3)  # forgotten is not drawn again


def test_level_noise_comes_from_the_attacks_generator():
    torch.manual_seed(0)
    noise = curve_levels.LevelNoise(torch.Size((2, 3)), torch.device("cpu"), torch.Generator().manual_seed(9))
    drawn = [noise.of(0), noise.of(2)]
    expected = torch.Generator().manual_seed(9)
    assert all(torch.equal(d, torch.rand((2, 3), generator=expected)) for d in drawn)


def test_radii_and_start_noise_are_checked():
    model, images, labels = _case("tiny-cnn", n=4)
    with pytest.raises(ConfigError, match="radii must lie in"):
        pgd(model, images, labels, 1 / 255, radii=torch.full((4,), 2 / 255))
    with pytest.raises(ConfigError, match="one radius per image"):
        apgd(model, images, labels, 1 / 255, radii=torch.full((3,), 1 / 255))
    with pytest.raises(ConfigError, match="restarts=1"):
        pgd(model, images, labels, 1 / 255, restarts=2, start_noise=torch.rand(images.shape))
    with pytest.raises(ConfigError, match="one untargeted run"):
        apgd(model, images, labels, 1 / 255, targeted=True, start_noise=torch.rand(images.shape))
    with pytest.raises(ConfigError, match="start_noise must be"):
        pgd(model, images, labels, 1 / 255, start_noise=torch.rand(2, 3, 32, 32))
    with pytest.raises(ConfigError, match="start_noise must be"):
        pgd(model, images, labels, 0.5, norm="l2", start_noise=torch.rand(images.shape))


def test_a_row_beyond_its_own_radius_is_not_admissible():
    images = torch.full((2, 1, 2, 2), 0.5)
    x_adv = images.clone()
    x_adv[0] += 2 / 255  # within the batch's largest radius (4/255), beyond its own (1/255)
    radii = torch.tensor([1 / 255, 4 / 255])
    with pytest.raises(ConfigError, match="outside the threat model"):
        _admissible(x_adv, images, 4 / 255, "pgd", radii)
    assert _admissible(x_adv, images, 4 / 255, "pgd") is x_adv
    assert _admissible(x_adv, images, 4 / 255, "pgd", radii.flip(0)) is x_adv


@pytest.mark.parametrize("rows", [1, 8, 100])
def test_verdicts_stay_nested_when_an_attack_is_not_monotone(rows):
    """An attack that fools sample 0 at the second eps only and sample 2 at the third only: each stays non-robust
    at every larger eps, whatever the depth (a row's verdict above the level its sample fell at is not read)."""
    grid = [0.0, 1.0, 2.0, 3.0, 4.0]
    fooled_at = {(0, 2.0), (2, 3.0), (3, 1.0), (3, 4.0)}
    calls = []

    def call(x, y, radii, noise):
        calls.append(len(y))
        sample = x[:, 0, 0, 0].long()  # each image carries its sample number
        return torch.tensor([(int(k), float(r)) not in fooled_at for k, r in zip(sample, radii, strict=True)])

    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1)
    labels = torch.zeros(5, dtype=torch.long)
    robust = torch.tensor([True, True, True, True, False])
    noise = curve_levels.LevelNoise(images.shape, torch.device("cpu"))
    started = time.perf_counter()
    masks, seconds = curve_levels.nested_verdicts(call, images, labels, robust, grid, rows, noise)
    elapsed = time.perf_counter() - started
    expected = [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0]]
    assert [m.int().tolist() for m in masks] == expected
    assert torch.equal(robust, masks[-1])
    assert len(seconds) == len(grid) and seconds[0] == 0.0
    assert all(s > 0 for s in seconds[1:]) and sum(seconds) <= elapsed  # a group's time shared, not multiplied
    assert noise.held() == []  # no level's noise kept after the curve
    assert sum(calls) == {1: 4 + 3 + 2 + 1, 8: 4 * 2 + 2 * 2, 100: 4 * 4}[rows]


@pytest.mark.slow
@pytest.mark.parametrize("backbone, side", [("mobilenet_v2", 32), ("vit_small_dinov2", 28)])
def test_side_by_side_curve_is_the_nested_loop_on_the_embedded_backbones(backbone, side, monkeypatch):
    """The same sample-by-sample equality on the built-in pretrained backbones (their prepared copies: folded,
    pointwise products, the ViT's fast path), APGD-CE-4 over 8 levels, labels the model's own."""
    from robustft.errors import MissingAssetError
    from robustft.models import build

    try:
        model = build(backbone, 10, pretrained=True, image_size=side).eval()
    except MissingAssetError as error:
        pytest.skip(str(error))
    images = torch.rand(20, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = model(images).argmax(1)
    grid = [0.0, 0.25 / 255, 0.5 / 255, 1 / 255, 1.5 / 255, 2 / 255, 3 / 255, 4 / 255, 6 / 255]
    attack = ATTACKS["apgd-ce"]()
    expected = _reference(model, images, labels, attack, grid, seed=2)
    assert expected[-1].sum() < expected[0].sum()
    for rows in (1, 1000):
        monkeypatch.setattr(curve_levels, "depth", lambda s, r, _rows, k=rows: max(1, min(r, k // max(s, 1))))
        torch.manual_seed(2)
        curve = robust_curve(model, (images, labels), attack, grid)
        for level, (result, mask) in enumerate(zip(curve, expected, strict=True)):
            assert np.array_equal(result.per_sample, mask), (rows, level)
