"""Auto-PGD (Croce & Hein, ICML 2020): step-size-free PGD with momentum, CE or DLR loss, untargeted or targeted.

Implemented from the paper (Algorithm 1), not from the AutoAttack code:
- step size eta starts at 2 eps; checkpoints w_j = ceil(p_j * N) with p_0 = 0, p_1 = 0.22,
  p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06);
- x(1) = P(x(0) + eta * dir(grad)); then z = P(x(k) + eta * dir(grad)),
  x(k+1) = P(x(k) + alpha (z - x(k)) + (1 - alpha)(x(k) - x(k-1))) with alpha = 0.75;
- at each checkpoint, per sample: if the loss rose in fewer than rho * (w_j - w_{j-1}) of the steps since the
  last checkpoint (condition 1), or neither eta nor the best loss changed since it (condition 2), halve eta and
  restart from the best-loss point (momentum reset there: a choice the paper leaves open).
The returned point per sample is a fooling iterate if one exists, else the best-loss iterate (for training).
Targeted (APGD-T) uses the targeted DLR loss against each of the top ``n_target_classes`` other classes of the
clean logits in turn, attacking only samples not fooled yet.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robustft.attacks.base import (
    ascent_direction,
    attack_mode,
    better,
    check_eps,
    check_inputs,
    check_norm,
    logits_of,
    loss_and_grad,
    num_classes_of,
    project,
    random_start,
)
from robustft.attacks.losses import dlr_targeted_loss, get_loss
from robustft.errors import ConfigError


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations w_j (1 <= w_j < steps) where APGD may halve its step size."""
    p = [0.0, 0.22]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if nxt > 1:
            break
        p.append(nxt)
    points = sorted({math.ceil(round(q * steps, 9)) for q in p[1:]})  # round: 0.41 + 0.16 is not 0.57 in floats
    return [w for w in points if 0 < w < steps]


def apgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, norm: str = "linf",
         steps: int = 10, loss: str = "ce", targeted: bool = False, n_target_classes: int = 9, restarts: int = 1,
         rho: float = 0.75, alpha: float = 0.75, random_start: bool = True, early_stop: bool = False,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """APGD-CE / APGD-DLR (untargeted) or APGD-T (targeted DLR).

    Args:
        model: classifier on [0, 1] images; eval mode and frozen while attacking, restored after.
        images: float N x C x H x W in [0, 1].
        labels: int64 N.
        eps: radius in pixel units; 0 returns images.
        norm: ``linf`` or ``l2``.
        steps: update steps per run (the paper's N_iter); costs steps forward+backward passes + 1 forward.
        loss: ``ce`` or ``dlr`` (ignored when targeted: targeted DLR).
        targeted: APGD-T, one run per target class among the top ``n_target_classes`` non-true classes.
        n_target_classes: number of target classes for APGD-T (capped at num_classes - 1).
        restarts: runs per (target); later runs attack only samples not fooled yet.
        rho: condition-1 threshold on the fraction of steps that raised the loss.
        alpha: momentum weight of the new step.
        random_start: start from a uniform random point of the ball (as the reference code does).
        early_stop: fooled samples leave the batch (same verdict, less compute).
        generator: CPU random generator.

    Returns:
        x_adv, N x C x H x W in [0, 1] within eps of images.
    """
    check_norm(norm)
    eps = check_eps(eps, norm)
    check_inputs(images, labels)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"apgd needs steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}.")
    images = images.detach().float()
    n = images.shape[0]
    if eps == 0 or n == 0:
        return images.clone()
    with attack_mode(model):
        # Untargeted runs need no clean forward pass when the model states its number of classes.
        has_info = getattr(getattr(model, "info", None), "num_classes", None)
        clean_logits = logits_of(model, images) if targeted or not has_info else None
        num_classes = num_classes_of(model, clean_logits)
        if targeted:
            if num_classes < 4:
                raise ConfigError(f"apgd-t (targeted DLR) needs at least 4 classes, the model has {num_classes}; "
                                  "use apgd-ce.")
            order = clean_logits.scatter(1, labels[:, None], float("-inf")).argsort(dim=1, descending=True)
            runs = [(order[:, i], None) for i in range(min(n_target_classes, num_classes - 1))]
        else:
            runs = [(None, get_loss(loss, num_classes))]
        best_x = images.clone()
        best_loss = torch.full((n,), float("-inf"), device=images.device)
        best_fooled = torch.zeros(n, dtype=torch.bool, device=images.device)
        first = True
        for targets, loss_fn in runs:
            for _ in range(restarts):
                # The first run attacks every sample (training wants the highest-loss point even for samples
                # already misclassified); later runs only those not fooled yet (per-sample worst case).
                todo = torch.arange(n, device=images.device) if first else torch.nonzero(~best_fooled).squeeze(1)
                first = False
                if todo.numel() == 0:
                    break
                x, loss_v, fooled = _apgd_run(model, images, labels, targets, loss_fn, eps, norm, steps, rho,
                                              alpha, random_start, early_stop, generator, todo)
                take = better(loss_v, fooled, best_loss[todo], best_fooled[todo])
                idx = todo[take]
                best_x[idx], best_loss[idx], best_fooled[idx] = x[take], loss_v[take], fooled[take]
    return best_x


def _apgd_run(model, images, labels, targets, loss_fn, eps, norm, steps, rho, alpha, start_random, early_stop,
              generator, todo):
    """One APGD run on images[todo]; returns (best x, its loss, fooled) for those samples."""
    x0 = random_start(images, eps, norm, generator) if start_random else images.clone()
    if todo.numel() != images.shape[0]:
        images, labels, x0 = images[todo], labels[todo], x0[todo]
        targets = None if targets is None else targets[todo]
    n, device = images.shape[0], images.device

    def objective(logits, idx):
        if targets is None:
            return loss_fn(logits, labels[idx])
        return dlr_targeted_loss(logits, labels[idx], targets[idx])

    checkpoints = set(apgd_checkpoints(steps))
    # Per-sample state, indexed by position in this run (0..n-1).
    eta = torch.full((n, 1, 1, 1), 2.0 * eps, device=device)
    out_x, out_loss = x0.clone(), torch.full((n,), float("-inf"), device=device)
    out_fooled = torch.zeros(n, dtype=torch.bool, device=device)
    max_x, max_loss = x0.clone(), torch.full((n,), float("-inf"), device=device)
    max_grad = torch.zeros_like(x0)
    prev_loss = torch.full((n,), float("-inf"), device=device)
    increases = torch.zeros(n, device=device)
    eta_at_check, max_loss_at_check = eta.clone(), max_loss.clone()
    last_check = 0
    x, x_prev = x0, x0
    active = torch.arange(n, device=device)
    for k in range(steps + 1):
        if k < steps:
            loss_v, grad, logits = loss_and_grad(model, x, lambda z, a=active: objective(z, a))
        else:
            logits = logits_of(model, x)
            loss_v = objective(logits, active)
        fooled = logits.argmax(1) != labels[active]
        take = better(loss_v, fooled, out_loss[active], out_fooled[active])
        sel = active[take]
        out_x[sel], out_loss[sel], out_fooled[sel] = x[take], loss_v[take], fooled[take]
        if k == steps:
            break
        if k > 0:
            increases[active] += (loss_v > prev_loss[active]).float()
        prev_loss[active] = loss_v
        improved = loss_v > max_loss[active]
        sel = active[improved]
        max_x[sel], max_loss[sel], max_grad[sel] = x[improved], loss_v[improved], grad[improved]
        if k in checkpoints:
            window = k - last_check
            cond1 = increases[active] < rho * window
            cond2 = (eta_at_check[active] == eta[active]).view(-1) & (max_loss_at_check[active] >= max_loss[active])
            reduce = cond1 | cond2
            eta_at_check[active] = eta[active]
            max_loss_at_check[active] = max_loss[active]
            sel = active[reduce]
            eta[sel] /= 2.0
            # Restart from the best point, with its gradient, and no momentum.
            x, x_prev, grad = x.clone(), x_prev.clone(), grad.clone()
            x[reduce], x_prev[reduce], grad[reduce] = max_x[sel], max_x[sel], max_grad[sel]
            increases[active] = 0
            last_check = k
        if early_stop and fooled.any():
            keep = ~fooled
            active, x, x_prev, grad = active[keep], x[keep], x_prev[keep], grad[keep]
            if active.numel() == 0:
                break
        base = images[active]
        z = project(x + eta[active] * ascent_direction(grad, norm), base, eps, norm)
        x_next = z if k == 0 else project(x + alpha * (z - x) + (1 - alpha) * (x - x_prev), base, eps, norm)
        x_prev, x = x, x_next
    return out_x, out_loss, out_fooled
