"""PGD and APGD return the per-sample worst case: the best of every iterate of every restart, not the last one.

The models here are built so that the answer is known: a ridge whose loss rises and falls along the attack's path
(so the last iterate is worse than an earlier one), and a step whose only way to be fooled is a lucky random start
(so only a restart can fool). Every point an attack evaluates is recorded by the model, so the tests compare the
returned point with all of them, whatever the attack's internal schedule of steps.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks import apgd, pgd
from robustft.models.tiny import tiny_cnn

N = 16
EPS = 3 / 255


class Ridge(nn.Module):
    """Two classes; the logit of class 1 is ``height * cos(2 pi (mean(x) - 0.5) / period)``, class 0 (every label)
    has a fixed logit. The cross-entropy rises and falls as an attack moves the mean pixel, so sign-gradient steps
    overshoot the crest and come back: the iterates' losses oscillate. Class 0's logit is 5 (> height: never
    misclassified) for every sample, or with ``half_fooled`` 1 for the odd samples (misclassified near the crest:
    those leave an early-stopping attack's batch, the even ones stay). Records every batch it is called on."""

    def __init__(self, period: float, half_fooled: bool, height: float = 2.0) -> None:
        super().__init__()
        self.period, self.half_fooled, self.height = period, half_fooled, height
        self.info = SimpleNamespace(num_classes=2)
        self.seen: list[torch.Tensor] = []

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        crest = self.height * torch.cos(2 * math.pi * (x.mean((1, 2, 3)) - 0.5) / self.period)
        true = torch.full_like(crest, 5.0)
        if self.half_fooled:
            true = torch.where(_sample_of(x) % 2 == 1, 1.0, true)
        return torch.stack([true, crest], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.logits(x)


def _ridge_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """N images of mean pixel near 0.5 (each sample starts elsewhere on the ridge), a checkerboard of +-0.2 so that
    no pixel is near the [0, 1] box, and pixel (0, 0, 0) at 0.1 + 0.05 i: sample i is told by that pixel alone
    (the values are further apart than 2 eps), whatever subset of the batch an attack evaluates. Labels 0."""
    offsets = (torch.arange(N, dtype=torch.float32) / N - 0.5) * (2 / 255)
    checker = ((torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2 * 2 - 1).float()
    images = 0.5 + offsets.view(-1, 1, 1, 1) + 0.2 * checker.expand(N, 3, 8, 8)
    images[:, 0, 0, 0] = 0.1 + 0.05 * torch.arange(N)
    return images, torch.zeros(N, dtype=torch.long)


def _sample_of(x: torch.Tensor) -> torch.Tensor:
    return torch.round((x[:, 0, 0, 0] - 0.1) / 0.05).long()


def _loss_and_fooled(model: Ridge, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model.logits(x)
    return F.cross_entropy(logits, labels, reduction="none"), logits.argmax(1) != labels


ATTACKS = {
    "pgd": lambda model, x, y, **kw: pgd(model, x, y, EPS, steps=5, step_size=1 / 255, prepare=False, **kw),
    "apgd": lambda model, x, y, **kw: apgd(model, x, y, EPS, steps=8, prepare=False, **kw),
}


@pytest.mark.parametrize("early_stop", [False, True], ids=["all-steps", "early-stop"])
@pytest.mark.parametrize("random_start", [False, True], ids=["clean-start", "random-start"])
@pytest.mark.parametrize("half_fooled", [False, True], ids=["never-fooled", "half-fooled"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_returned_point_is_the_per_sample_worst_iterate(name, half_fooled, random_start, early_stop):
    model = Ridge(period=2 / 255, half_fooled=half_fooled)
    images, labels = _ridge_batch()
    x_adv = ATTACKS[name](model, images, labels, random_start=random_start, early_stop=early_stop,
                          generator=torch.Generator().manual_seed(0))
    # Every point the attack evaluated, per sample, in order (early stop evaluates shrinking subsets).
    losses: list[list[float]] = [[] for _ in range(N)]
    fooled: list[list[bool]] = [[] for _ in range(N)]
    for x in model.seen:
        loss, wrong = _loss_and_fooled(model, x, labels[: len(x)])
        for sample, value, flag in zip(_sample_of(x).tolist(), loss.tolist(), wrong.tolist(), strict=True):
            losses[sample].append(value)
            fooled[sample].append(flag)
    got_loss, got_fooled = _loss_and_fooled(model, x_adv, labels)

    # The case is meaningful: for many samples that no iterate fooled (those an early stop keeps attacking), the
    # last iterate has a lower loss than an earlier one; and with half_fooled, some samples were fooled.
    last_worse = [ls[-1] < max(ls) - 1e-3 and not any(fs) for ls, fs in zip(losses, fooled, strict=True)]
    assert sum(last_worse) >= 2
    assert any(map(any, fooled)) == half_fooled
    # Per sample: a fooling point if any iterate fooled, and the highest loss among the iterates of that kind.
    for i in range(N):
        assert bool(got_fooled[i]) == any(fooled[i]), i
        best = max(v for v, f in zip(losses[i], fooled[i], strict=True) if f == any(fooled[i]))
        assert got_loss[i].item() == pytest.approx(best, abs=1e-5), i


class Threshold(nn.Module):
    """Fooled exactly when pixel (0, 0, 0) is above 0.5 + eps / 2; the input gradient is 0 everywhere, so an
    attack stays at its random start and only another start (a restart) can fool a sample."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.info = SimpleNamespace(num_classes=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wrong = torch.where(x[:, 0, 0, 0] > 0.5 + self.eps / 2, 5.0, -5.0) + 0.0 * x.flatten(1).sum(1)
        return torch.stack([torch.zeros_like(wrong), wrong], 1)


@pytest.mark.parametrize("attack", [pgd, apgd], ids=["pgd", "apgd"])
def test_a_second_restart_fools_what_the_first_did_not(attack):
    model = Threshold(EPS)
    images, labels = torch.full((64, 3, 4, 4), 0.5), torch.zeros(64, dtype=torch.long)

    def fooled(restarts: int) -> torch.Tensor:
        x_adv = attack(model, images, labels, EPS, steps=2, restarts=restarts, prepare=False,
                       generator=torch.Generator().manual_seed(3))
        return model(x_adv).argmax(1) != labels

    one, two = fooled(1), fooled(2)
    # Each start fools a sample with probability 1/4: the first restart fools some, the second more of the rest.
    assert 0 < int(one.sum()) < 64
    assert bool((two >= one).all())  # nothing the first restart fooled is lost
    assert int(two.sum()) >= int(one.sum()) + 4


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_raises_every_samples_loss_above_the_clean_one(random_start):
    model = tiny_cnn(num_classes=5, width=6, seed=3).eval()
    generator = torch.Generator().manual_seed(5)
    images = 0.1 + 0.8 * torch.rand(16, 3, 12, 12, generator=generator)
    labels = torch.randint(0, 5, (16,), generator=generator)
    x_adv = pgd(model, images, labels, 4 / 255, steps=5, random_start=random_start,
                generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = F.cross_entropy(model(images), labels, reduction="none")
        attacked = F.cross_entropy(model(x_adv), labels, reduction="none")
    assert bool((attacked > clean + 1e-3).all()), (attacked - clean).tolist()
