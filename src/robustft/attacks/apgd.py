"""Auto-PGD (Croce & Hein, ICML 2020): step-size-free PGD with momentum, CE or DLR loss, untargeted or targeted.

robustft follows the reference implementation (fra31/auto-attack, ``autopgd_base.py``), not the paper's
Algorithm 1, where the two differ, because the community's APGD and AutoAttack numbers come from that code and
at few steps the difference is large (paper B trains with APGD-CE-7 and evaluates with APGD-CE-10):

- checkpoints: the paper puts them at w_j = ceil(p_j N) with p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} -
  0.03, 0.06). The reference counts steps instead: the first check comes after max(int(0.22 N), 1) steps, and
  each following interval is the previous one minus max(int(0.03 N), 1), but at least max(int(0.06 N), 1).
  For N = 100 both give 22, 41, 57, 70, 80, 87, 93, 99; for N = 10 the paper gives 3, 5, 6, 7, 8, 9 and the
  reference 2, 3, ..., 10; for N = 7 the paper 2, 3, 4, 5, 6 and the reference every step.
- condition 1 (too few loss increases): the step size is halved when the loss rose in at most rho * interval
  of the steps since the last check (the reference's ``<=``; the paper writes ``<``). As in the reference,
  the first step's loss is compared with 0 rather than with the start's loss (the reference reads its not yet
  filled loss history there), which only matters for the first check.
- condition 2: the step size was not halved at the last check and the best loss has not improved since.
- restart: a sample whose step size is halved continues from its best point with that point's gradient, and
  the momentum term is kept: the next step's momentum is (best point - x_prev), where x_prev is the point the
  last step started from (the paper leaves this open; resetting the momentum there was robustft's old choice).

Otherwise as in both: step size eta starts at 2 eps; x(1) = P(x(0) + eta dir(grad)); then z = P(x(k) + eta
dir(grad)), x(k+1) = P(x(k) + alpha (z - x(k)) + (1 - alpha)(x(k) - x(k-1))) with alpha = 0.75.
The returned point per sample is a fooling iterate if one exists, else the best-loss iterate (for training).
Targeted (APGD-T) uses the targeted DLR loss against each of the top ``n_target_classes`` other classes of the
clean logits in turn, attacking only samples not fooled yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustft.attacks.base import (
    ascent_direction,
    attack_mode,
    autocast_dtype,
    better,
    check_eps,
    check_inputs,
    check_norm,
    confirm_fooled,
    cudnn_autotune,
    logits_of,
    loss_and_grad,
    num_classes_of,
    project,
    radius_of_each,
    random_start,
)
from robustft.attacks.losses import dlr_targeted_loss, get_loss
from robustft.attacks.prepared_cache import attack_target
from robustft.attacks.record import ReturnedLogits, keep_logits
from robustft.errors import ConfigError


def apgd_checkpoints(steps: int) -> list[int]:
    """The step counts after which APGD checks whether to halve its step size (the reference code's rule).

    The first check comes after max(int(0.22 N), 1) steps; each following interval is the previous one minus
    max(int(0.03 N), 1), but at least max(int(0.06 N), 1). A check after the last step (k = N) changes nothing
    returned; it is listed because the reference makes it. Example: N = 10 -> 2, 3, ..., 10.
    """
    interval = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points, done = [], interval
    while done <= steps:
        points.append(done)
        interval = max(interval - shrink, shortest)
        done += interval
    return points


def apgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, norm: str = "linf",
         steps: int = 10, loss: str = "ce", targeted: bool = False, n_target_classes: int = 9, restarts: int = 1,
         rho: float = 0.75, alpha: float = 0.75, random_start: bool = True, early_stop: bool = False,
         generator: torch.Generator | None = None, prepare: bool = True, precision: str = "auto",
         record: ReturnedLogits | None = None, radii: torch.Tensor | None = None,
         start_noise: torch.Tensor | None = None) -> torch.Tensor:
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
        rho: condition 1 halves the step size when at most this fraction of the steps since the last check
            raised the loss.
        alpha: momentum weight of the new step.
        random_start: start from a uniform random point of the ball (as the reference code does).
        early_stop: fooled samples leave the batch (same verdict, less compute).
        generator: CPU random generator.
        prepare: attack ``prepare_for_attack``'s folded, frozen, eval-mode copy (same function, faster; a
            ``PreparedModel`` is used as it is); False attacks ``model`` itself.
        precision: ``auto`` (bf16 forward/backward under autocast on a CUDA device that supports it, fp32
            elsewhere), ``fp32`` or ``bf16``. Whether a point fools is always decided in fp32 (``confirm_fooled``).
        record: receives the fp32 logits of each returned point, as computed when the attack saw it
            (``attacks.record``; left empty under bf16, where the caller classifies the points itself).
        radii: float N, each sample's own radius in (0, eps] (``base.radius_of_each``; the step size starts at
            2 x its radius): how a robust curve attacks several eps in one batch (``attacks.curve_levels``); each
            sample is attacked exactly as alone at its radius.
        start_noise: L-inf, one run (untargeted, restarts 1): the uniform [0, 1) draws (N x C x H x W) of the
            random start, instead of drawing them here.

    Returns:
        x_adv, N x C x H x W in [0, 1] within eps of images (within its radius, given ``radii``).
    """
    check_norm(norm)
    eps = check_eps(eps, norm)
    check_inputs(images, labels)
    dtype = autocast_dtype(precision, images.device)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"apgd needs steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}.")
    images = images.detach().float()
    n = images.shape[0]
    if eps == 0 or n == 0:
        return images.clone()
    if start_noise is not None and (targeted or restarts != 1):
        raise ConfigError("apgd's start_noise gives one random start per sample: it needs one untargeted run "
                          f"(restarts=1, targeted=False), got restarts={restarts}, targeted={targeted}.")
    radius = radius_of_each(eps, radii, images)
    model = attack_target(model, prepare)
    with attack_mode(model), cudnn_autotune(images.device, fixed_shapes=not early_stop):
        # Untargeted runs need no clean forward pass: the loss learns the number of classes from its first logits.
        clean_logits = logits_of(model, images) if targeted else None
        if targeted:
            num_classes = num_classes_of(model, clean_logits)
            if num_classes < 4:
                raise ConfigError(f"apgd-t (targeted DLR) needs at least 4 classes, the model has {num_classes}; "
                                  "use apgd-ce.")
            order = clean_logits.scatter(1, labels[:, None], float("-inf")).argsort(dim=1, descending=True)
            runs = [(order[:, i], None) for i in range(min(n_target_classes, num_classes - 1))]
        else:
            runs = [(None, _first_logits_loss(model, loss))]
        best_x = images.clone()
        best_loss = torch.full((n,), float("-inf"), device=images.device)
        best_fooled = torch.zeros(n, dtype=torch.bool, device=images.device)
        best_logits: torch.Tensor | None = None
        taken = torch.zeros(n, dtype=torch.bool, device=images.device)  # best_x is a point a run saw
        first = True
        for targets, loss_fn in runs:
            for _ in range(restarts):
                # The first run attacks every sample (training wants the highest-loss point even for samples
                # already misclassified); later runs only those not fooled yet (per-sample worst case).
                todo = torch.arange(n, device=images.device) if first else torch.nonzero(~best_fooled).squeeze(1)
                first = False
                if todo.numel() == 0:
                    break
                x, loss_v, fooled, logits = _apgd_run(model, images, labels, targets, loss_fn, radius, norm, steps,
                                                      rho, alpha, random_start, early_stop, generator, todo, dtype,
                                                      start_noise)
                take = better(loss_v, fooled, best_loss[todo], best_fooled[todo])
                idx = todo[take]
                best_x[idx], best_loss[idx], best_fooled[idx] = x[take], loss_v[take], fooled[take]
                if best_logits is None:
                    best_logits = logits.new_zeros((n, logits.shape[1]))
                best_logits[idx], taken[idx] = logits[take], True
    keep_logits(record, best_logits, dtype is None and bool(taken.all()))
    return best_x


def _first_logits_loss(model: nn.Module, name: str):
    """The loss ``name`` (``losses.get_loss``), its class count checked against the first logits it sees (the
    model's ``.info`` if it has one): no extra forward pass only to count classes."""
    chosen: list = []

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not chosen:
            chosen.append(get_loss(name, num_classes_of(model, logits)))
        return chosen[0](logits, labels)

    return loss_fn


def _apgd_run(model, images, labels, targets, loss_fn, eps, norm, steps, rho, alpha, start_random, early_stop,
              generator, todo, dtype, start_noise=None):
    """One APGD run on images[todo]; returns (best x, its loss, fooled, its logits) for those samples.

    ``eps``: a radius, or N x 1 x 1 x 1 per-sample radii. The passes run in ``dtype`` under autocast (None: fp32);
    whether a point fools is decided in fp32.
    """
    x0 = random_start(images, eps, norm, generator, start_noise) if start_random else images.clone()
    if todo.numel() != images.shape[0]:
        images, labels, x0 = images[todo], labels[todo], x0[todo]
        targets = None if targets is None else targets[todo]
        eps = eps[todo] if isinstance(eps, torch.Tensor) else eps
    n, device = images.shape[0], images.device

    def objective(logits, idx):
        if targets is None:
            return loss_fn(logits, labels[idx])
        return dlr_targeted_loss(logits, labels[idx], targets[idx])

    checkpoints = set(apgd_checkpoints(steps))
    state = _StepSizes.start(x0, eps)
    out_x, out_loss = x0.clone(), torch.full((n,), float("-inf"), device=device)
    out_fooled = torch.zeros(n, dtype=torch.bool, device=device)
    out_logits = None  # the logits of out_x; at k = 0 every sample's out_x is x0, seen in full
    x, x_prev = x0, x0
    active = torch.arange(n, device=device)  # positions in this run of the samples still attacked
    for k in range(steps + 1):
        if k < steps:
            loss_v, grad, logits = loss_and_grad(model, x, lambda z, a=active: objective(z, a), dtype)
        else:
            logits = logits_of(model, x, dtype)
            loss_v = objective(logits, active)
        fooled = confirm_fooled(model, x, labels[active], logits.argmax(1) != labels[active], dtype)
        take = better(loss_v, fooled, out_loss[active], out_fooled[active])
        sel = active[take]
        out_x[sel], out_loss[sel], out_fooled[sel] = x[take], loss_v[take], fooled[take]
        if out_logits is None:
            out_logits = logits.clone()
        else:
            out_logits[sel] = logits[take]
        if k == steps:
            break
        state.observe(active, k, loss_v, x, grad)
        if k in checkpoints:
            x, grad = state.check(active, k, rho, x, grad)
        if early_stop and fooled.any():
            keep = ~fooled
            active, x, x_prev, grad = active[keep], x[keep], x_prev[keep], grad[keep]
            if active.numel() == 0:
                break
        base = images[active]
        radius = eps[active] if isinstance(eps, torch.Tensor) else eps
        z = project(x + state.eta[active] * ascent_direction(grad, norm), base, radius, norm)
        x_next = z if k == 0 else project(x + alpha * (z - x) + (1 - alpha) * (x - x_prev), base, radius, norm)
        x_prev, x = x, x_next
    return out_x, out_loss, out_fooled, out_logits


@dataclass
class _StepSizes:
    """APGD's per-sample step sizes and what their checkpoints read, indexed by position in one run (N samples)."""

    eta: torch.Tensor  # N x 1 x 1 x 1, starts at 2 eps
    max_x: torch.Tensor  # the best-loss point so far, its loss and gradient (where a halved step restarts)
    max_loss: torch.Tensor
    max_grad: torch.Tensor
    prev_loss: torch.Tensor  # the loss of the previous step, to count increases
    increases: torch.Tensor  # loss increases since the last checkpoint (condition 1)
    eta_at_check: torch.Tensor  # eta and best loss at the last checkpoint (condition 2)
    max_loss_at_check: torch.Tensor
    last_check: int = 0

    @classmethod
    def start(cls, x0: torch.Tensor, eps: float | torch.Tensor) -> _StepSizes:
        """eps: a radius, or N x 1 x 1 x 1 per-sample radii (eta starts at twice each)."""
        n, device = x0.shape[0], x0.device
        if isinstance(eps, torch.Tensor):
            eta = (2.0 * eps).to(device, torch.float32).expand(n, 1, 1, 1).clone()
        else:
            eta = torch.full((n, 1, 1, 1), 2.0 * eps, device=device)
        max_loss = torch.full((n,), float("-inf"), device=device)
        return cls(eta, x0.clone(), max_loss, torch.zeros_like(x0), torch.full((n,), float("-inf"), device=device),
                   torch.zeros(n, device=device), eta.clone(), max_loss.clone())

    def observe(self, active: torch.Tensor, k: int, loss_v: torch.Tensor, x: torch.Tensor,
                grad: torch.Tensor) -> None:
        """Counts a loss increase at step ``k`` and keeps the best point, for the ``active`` samples."""
        if k > 0:
            # The reference compares the first step's loss with 0, not with the start's (see the docstring).
            previous = torch.zeros_like(loss_v) if k == 1 else self.prev_loss[active]
            self.increases[active] += (loss_v > previous).float()
        self.prev_loss[active] = loss_v
        improved = loss_v > self.max_loss[active]
        sel = active[improved]
        self.max_x[sel], self.max_loss[sel], self.max_grad[sel] = x[improved], loss_v[improved], grad[improved]

    def check(self, active: torch.Tensor, k: int, rho: float, x: torch.Tensor, grad: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The checkpoint at step ``k``: halves eta where condition 1 or 2 holds; those samples continue from their
        best point with its gradient (x_prev stays, so the momentum term is kept, as in the reference)."""
        window = k - self.last_check
        cond1 = self.increases[active] <= rho * window
        cond2 = (self.eta_at_check[active] == self.eta[active]).view(-1) & (
            self.max_loss_at_check[active] >= self.max_loss[active])
        reduce = cond1 | cond2
        self.eta_at_check[active] = self.eta[active]
        self.max_loss_at_check[active] = self.max_loss[active]
        sel = active[reduce]
        self.eta[sel] /= 2.0
        x, grad = x.clone(), grad.clone()
        x[reduce], grad[reduce] = self.max_x[sel], self.max_grad[sel]
        self.increases[active] = 0
        self.last_check = k
        return x, grad
