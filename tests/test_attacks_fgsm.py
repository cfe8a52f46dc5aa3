"""FGSM is one PGD step: of size eps from the clean image, or of 1.25 eps from a random start (FGSM-RS, Wong et al.
2020), with the loss, norm, generator and prepare options passed through; and PGD queries the model steps + 1
times when the model states its number of classes.

Written against the survivors of mutation testing (scripts/mutation.py on attacks/pgd.py): no test looked at
what FGSM returns beyond the box and the radius.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from robustft.attacks import fgsm, pgd
from robustft.errors import ConfigError
from robustft.models.tiny import tiny_cnn

EPS = 8 / 255


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = 0.1 + 0.8 * torch.rand(8, 3, 8, 8, generator=generator)  # away from the box: no clipping
    return images, torch.randint(0, 5, (8,), generator=generator)


class Linear(nn.Module):
    """Two classes, class 1's logit is w . x with w = +-1 per pixel; every label is 0, so the cross-entropy's input
    gradient has the sign of w everywhere. Records the batches it is called on."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.randn(3 * 8 * 8, generator=torch.Generator().manual_seed(2)).sign()
        self.info = SimpleNamespace(num_classes=2)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(len(x))
        wrong = 0.01 * (x.flatten(1) @ self.w) - 10.0  # never fooled; the loss rises with every step
        return torch.stack([torch.zeros_like(wrong), wrong], 1)


def test_fgsm_steps_eps_along_the_gradient_sign():
    model = Linear()
    images, _ = _batch()
    labels = torch.zeros(8, dtype=torch.long)
    x_adv = fgsm(model, images, labels, EPS, prepare=False)
    torch.testing.assert_close(x_adv, images + EPS * model.w.view(1, 3, 8, 8).expand_as(images))


def test_fgsm_rs_steps_one_and_a_quarter_eps_from_a_uniform_start():
    # From a start u in [-eps, eps] along the gradient sign, a step of 1.25 eps reaches the face u + 1.25 eps >= eps
    # when u >= -0.25 eps: 5/8 of the pixels; the others end in [0.25 eps, eps). (A step of eps: 1/2; >= 2 eps: all.)
    model = Linear()
    images = torch.full((64, 3, 8, 8), 0.5)
    labels = torch.zeros(64, dtype=torch.long)
    x_adv = fgsm(model, images, labels, EPS, random_start=True, generator=torch.Generator().manual_seed(0),
                 prepare=False)
    along = ((x_adv - images) * model.w.view(1, 3, 8, 8)).flatten()
    assert ((along - EPS).abs() < 1e-6).float().mean().item() == pytest.approx(5 / 8, abs=0.02)
    assert along.min().item() == pytest.approx(0.25 * EPS, abs=0.01 * EPS)


@pytest.mark.parametrize("options", [{}, {"loss": "margin"}, {"norm": "l2"}, {"loss": "dlr", "norm": "l2"}])
@pytest.mark.parametrize("start", [False, True], ids=["clean-start", "random-start"])
def test_fgsm_is_one_pgd_step_with_the_same_options(options, start):
    model = tiny_cnn(num_classes=5, width=4, seed=1).eval()
    images, labels = _batch()
    eps = 0.5 if options.get("norm") == "l2" else EPS
    x_fgsm = fgsm(model, images, labels, eps, random_start=start, generator=torch.Generator().manual_seed(3),
                  **options)
    x_pgd = pgd(model, images, labels, eps, steps=1, step_size=1.25 * eps if start else eps, random_start=start,
                generator=torch.Generator().manual_seed(3), **options)
    torch.testing.assert_close(x_fgsm, x_pgd)
    if not start:  # without a random start, FGSM defaults to none
        torch.testing.assert_close(fgsm(model, images, labels, eps, **options), x_fgsm)


def test_losses_change_fgsm_on_a_five_class_model():
    # so that passing the loss through is visible at all: CE and margin ascend in different directions here
    model = tiny_cnn(num_classes=5, width=4, seed=1).eval()
    images, labels = _batch()
    assert not torch.equal(fgsm(model, images, labels, EPS), fgsm(model, images, labels, EPS, loss="margin"))


@pytest.mark.parametrize("attack", [fgsm, pgd])
def test_prepare_false_queries_the_model_itself_steps_plus_one_times(attack):
    model = Linear()
    images, _ = _batch()
    labels = torch.zeros(8, dtype=torch.long)
    steps = 1 if attack is fgsm else 4
    options = {} if attack is fgsm else {"steps": steps, "random_start": False}
    attack(model, images, labels, EPS, prepare=False, **options)
    # one forward(+backward) per step and one forward for the last point; no pass to count the classes (the model
    # states them in .info)
    assert model.seen == [8] * (steps + 1)


def test_l2_fgsm_steps_eps_along_the_normalised_gradient():
    model = Linear()
    model.w = model.w * (1 + torch.arange(3 * 8 * 8) % 3)  # magnitudes 1, 2, 3: not a sign step
    images, _ = _batch()
    x_adv = fgsm(model, images, torch.zeros(8, dtype=torch.long), 0.5, norm="l2", prepare=False)
    direction = model.w / model.w.norm()
    torch.testing.assert_close(x_adv, images + 0.5 * direction.view(1, 3, 8, 8).expand_as(images))


@pytest.mark.parametrize("loss", ["ce", "margin", "dlr"])
def test_pgd_on_a_model_that_does_not_state_its_classes(loss):
    # no .info: the number of classes comes from one forward pass
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    torch.nn.init.normal_(model[1].weight, generator=torch.Generator().manual_seed(0))
    images, labels = _batch()
    x_adv = pgd(model, images, labels, EPS, steps=3, loss=loss, prepare=False)
    with torch.no_grad():
        clean_wrong, wrong = model(images).argmax(1) != labels, model(x_adv).argmax(1) != labels
    assert (x_adv - images).abs().max() <= EPS + 1e-6 and (x_adv - images).abs().max() > EPS / 2
    assert bool((wrong >= clean_wrong).all()) and int(wrong.sum()) > int(clean_wrong.sum())


class Marked(Linear):
    """Linear, plus a bias on the wrong class set by pixel (0, 0, 0): its logit is about +16 at 0.9 (fooled wherever
    it goes within eps) and about -16 at 0.1 (never fooled); the pixel follows each sample through an early stop's
    shrinking batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits + torch.stack([torch.zeros(len(x)), 40 * (x[:, 0, 0, 0] - 0.5) + 10.0], 1)


@pytest.mark.parametrize("fooled_at_start", [7, 8])
def test_early_stop_keeps_attacking_the_last_unfooled_sample_and_ends_when_none_is_left(fooled_at_start):
    model = Marked()
    images, _ = _batch()
    images[:, 0, 0, 0] = 0.1
    images[:fooled_at_start, 0, 0, 0] = 0.9
    labels = torch.zeros(8, dtype=torch.long)
    options = {"steps": 4, "step_size": EPS / 4, "random_start": False, "prepare": False}
    stopped = pgd(model, images, labels, EPS, early_stop=True, **options)
    # the samples fooled at their start leave the batch there
    torch.testing.assert_close(stopped[:fooled_at_start], images[:fooled_at_start])
    if fooled_at_start == 7:  # the one left is attacked to the end, as without early stop: eps along w
        torch.testing.assert_close(stopped[7], pgd(model, images, labels, EPS, **options)[7])
        expected = EPS * model.w.view(3, 8, 8).clone()
        expected[0, 0, 0] = EPS  # the marker pixel raises the wrong class's bias
        torch.testing.assert_close(stopped[7] - images[7], expected)


def test_pgd_refuses_zero_steps_with_the_reason():
    images, labels = _batch()
    with pytest.raises(ConfigError, match=r"steps >= 1 and restarts >= 1, got steps=0, restarts=1"):
        pgd(Linear(), images, labels, EPS, steps=0)


def test_a_batch_of_one_image_is_attacked():
    model = Linear()
    images, _ = _batch()
    x_adv = pgd(model, images[:1], torch.zeros(1, dtype=torch.long), EPS, steps=1, step_size=EPS,
                random_start=False, prepare=False)
    torch.testing.assert_close(x_adv, images[:1] + EPS * model.w.view(1, 3, 8, 8))


def test_restarts_end_when_every_sample_is_fooled():
    model = Marked()
    images, _ = _batch()
    images[:, 0, 0, 0] = 0.9  # all fooled at the start: the second restart has nothing to do
    x_adv = pgd(model, images, torch.zeros(8, dtype=torch.long), EPS, steps=2, restarts=2, prepare=False,
                generator=torch.Generator().manual_seed(0))
    assert isinstance(x_adv, torch.Tensor) and x_adv.shape == images.shape
    assert (x_adv - images).abs().max() <= EPS + 1e-6
