"""APGD follows the reference code (fra31/auto-attack): its checkpoints, step-size conditions and restarts.

The oracle below is written from the reference's rules as the test's own plain loop (one run, L-inf, CE, no
random start, no early stop), and APGD must query the model at the very same points, step by step.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustft.attacks import apgd, apgd_checkpoints, prepare_for_attack
from robustft.attacks.base import loss_and_grad, project, random_start
from robustft.attacks.losses import ce_loss
from test_attacks_support import quadrant_task, trained_tiny_cnn


def _rule(steps: int) -> list[int]:
    """Derived by hand from the rule: first after max(int(.22N),1), intervals shrink by max(int(.03N),1)
    to at least max(int(.06N),1)."""
    return {
        7: [1, 2, 3, 4, 5, 6, 7],  # 0.22*7 = 1.54 -> 1; shrink 1, minimum 1: every step
        10: [2, 3, 4, 5, 6, 7, 8, 9, 10],  # first 2, then intervals of max(2-1, 1) = 1
        100: [22, 41, 57, 70, 80, 87, 93, 99],  # intervals 22, 19, 16, 13, 10, 7, 6, 6 (next: 105 > 100)
        50: [11, 21, 30, 38, 45],  # intervals 11, 10, 9, 8, 7 (next 6: 51 > 50)
    }[steps]


@pytest.mark.parametrize("steps", [7, 10, 100, 50])
def test_checkpoints_follow_the_reference_rule(steps):
    assert apgd_checkpoints(steps) == _rule(steps)


def test_checkpoints_of_tiny_budgets():
    assert apgd_checkpoints(1) == [1] and apgd_checkpoints(2) == [1, 2]


def _reference_queries(model, images, labels, start, eps, steps, rho=0.75):
    """The points the reference APGD queries (x(0), ..., x(N)) and how many restarts moved a sample."""
    queries = []

    def loss_grad(x):
        queries.append(x.clone())
        loss, grad, _ = loss_and_grad(model, x, lambda z: ce_loss(z, labels))
        return loss, grad

    n = images.shape[0]
    x = start.clone()
    loss, grad = loss_grad(x)
    best_x, best_grad, best_loss = x.clone(), grad.clone(), loss.clone()
    eta = torch.full((n, 1, 1, 1), 2 * eps)
    x_old = x.clone()
    history = []
    interval, since = max(int(0.22 * steps), 1), 0
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    best_at_check, halved_at_check = best_loss.clone(), torch.ones(n, dtype=torch.bool)
    moved = 0
    for i in range(steps):
        momentum, x_old = x - x_old, x.clone()
        a = 0.75 if i > 0 else 1.0
        z = project(x + eta * grad.sign(), images, eps, "linf")
        x = project(x + a * (z - x) + (1 - a) * momentum, images, eps, "linf")
        loss, grad = loss_grad(x)
        history.append(loss)
        improved = loss > best_loss
        best_x[improved], best_grad[improved], best_loss[improved] = x[improved], grad[improved], loss[improved]
        since += 1
        if since == interval:
            window = range(len(history) - interval, len(history))
            rises = sum((history[j] > (history[j - 1] if j > 0 else 0.0)).float() for j in window)
            halve = (rises <= rho * interval) | (~halved_at_check & (best_at_check >= best_loss))
            halved_at_check, best_at_check = halve, best_loss.clone()
            if i < steps - 1:  # a restart after the last step moves nothing that is queried
                moved += int((halve & (best_x != x).flatten(1).any(1)).sum())
            eta[halve] /= 2
            x, grad = x.clone(), grad.clone()
            x[halve], grad[halve] = best_x[halve], best_grad[halve]  # x_old untouched: momentum kept
            interval, since = max(interval - shrink, shortest), 0
    return queries, moved


class Quantized(nn.Module):
    """``model``'s logits rounded to multiples of ``grid``, with the unrounded logits' gradient (straight through).

    Small steps then often leave the loss exactly as it was, and the rules' edges get exercised: a step that does
    not raise the loss is not an increase (condition 1), and the first step's loss is compared with 0."""

    def __init__(self, model: nn.Module, grid: float) -> None:
        super().__init__()
        self.model, self.grid = model, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits + (torch.round(logits / self.grid) * self.grid - logits).detach()


@pytest.mark.parametrize(("steps", "rho", "grid"), [(7, 0.75, None), (10, 0.75, None), (100, 0.75, None),
                                                     (100, 0.5, None), (10, 0.75, 0.5), (10, 0.75, 2.0)])
def test_apgd_queries_the_reference_points_and_keeps_momentum_at_restarts(steps, rho, grid):
    # rho 0.5: at many checks the increases equal rho times the interval, or the best loss is exactly as at the
    # last check (condition 2 alone); the quantized logits give steps whose loss stays exactly the same.
    model = prepare_for_attack(trained_tiny_cnn())
    model = model if grid is None else Quantized(model, grid)
    images, labels = quadrant_task(12, seed=4)
    eps = 4 / 255  # partly robust here: losses fall at some steps, so step sizes halve and restarts happen
    start = random_start(images, eps, "linf", torch.Generator().manual_seed(0))  # what APGD draws first
    expected, moved = _reference_queries(model, images, labels, start, eps, steps, rho)
    assert moved > 0  # some sample restarted from a best point that was not its last iterate
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        apgd(model, images, labels, eps, steps=steps, rho=rho, early_stop=False, prepare=False,
             generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert len(seen) == len(expected) == steps + 1
    for k, (ours, theirs) in enumerate(zip(seen, expected, strict=True)):
        assert torch.allclose(ours, theirs, atol=1e-6), f"APGD left the reference's path at iterate {k}"
