"""Projected gradient descent (Madry et al. 2018) and FGSM (Goodfellow et al. 2015), L-inf and L2.

Written here rather than taken from torchattacks/foolbox because robustft needs what they do not give
together: per-sample worst case across iterates and restarts (a sample counts as fooled if any iterate fooled
it), early stop (fooled samples leave the batch: same verdict, less compute), fp32 gradients under autocast,
and parameters frozen during the attack so backward computes the input gradient only.
"""

from __future__ import annotations

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
from robustft.attacks.losses import get_loss
from robustft.attacks.prepared_cache import attack_target
from robustft.attacks.record import ReturnedLogits, keep_logits
from robustft.config.units import RelativeStep, parse_step_size, step_in_pixels
from robustft.errors import ConfigError


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, norm: str = "linf",
         loss: str = "ce", random_start: bool = False, generator: torch.Generator | None = None,
         prepare: bool = True, precision: str = "auto", record: ReturnedLogits | None = None) -> torch.Tensor:
    """Fast gradient sign method: one step of size eps (from a random start if asked: then step 1.25 eps, FGSM-RS).

    Args:
        model: classifier on [0, 1] images.
        images: float N x C x H x W in [0, 1].
        labels: int64 N.
        eps: radius in pixel units.
        norm: ``linf`` or ``l2``.
        loss: ``ce``, ``margin`` or ``dlr``.
        random_start: start from a random point of the ball (Wong et al. 2020).
        generator: CPU generator for the random start.
        prepare: attack ``prepare_for_attack``'s folded, frozen, eval-mode copy (same function, faster; a
            ``PreparedModel`` is used as it is); False attacks ``model`` itself.
        precision: as ``pgd``.
        record: as ``pgd``.

    Returns:
        x_adv, N x C x H x W in [0, 1] within eps of images: per sample the better of the start and the step.
    """
    step = 1.25 * check_eps(eps) if random_start else check_eps(eps)
    return pgd(model, images, labels, eps, norm=norm, steps=1, step_size=step, random_start=random_start,
               loss=loss, generator=generator, prepare=prepare, precision=precision, record=record)


def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, norm: str = "linf",
        steps: int = 10, step_size: float | str | None = None, random_start: bool = True, restarts: int = 1,
        loss: str = "ce", early_stop: bool = False, generator: torch.Generator | None = None,
        prepare: bool = True, precision: str = "auto", record: ReturnedLogits | None = None,
        radii: torch.Tensor | None = None, start_noise: torch.Tensor | None = None) -> torch.Tensor:
    """Untargeted PGD; returns per sample the best iterate (a fooling one if any, else the highest-loss one).

    Args:
        model: classifier on [0, 1] images; put in eval mode and frozen while attacking, restored after.
        images: float N x C x H x W in [0, 1].
        labels: int64 N.
        eps: radius in pixel units (e.g. 4/255); 0 returns images.
        norm: ``linf`` (sign steps) or ``l2`` (normalised-gradient steps).
        steps: gradient steps per restart.
        step_size: pixel units (``0.25/255``) or relative to eps (``"0.25eps"``: 0.25 * eps at every eps the
            attack runs at, what a robust curve over several eps needs: a fixed step tuned for a small eps cannot
            reach a larger one in ``steps`` steps). Default 2.5 * eps / steps (Madry et al.).
        random_start: start each restart from a uniform random point of the ball.
        restarts: independent runs; later restarts attack only samples not yet fooled.
        loss: ``ce``, ``margin`` or ``dlr``.
        early_stop: drop samples from the batch as soon as they are fooled (same verdict, less compute).
        generator: CPU random generator for reproducible starts.
        prepare: attack ``prepare_for_attack``'s folded, frozen, eval-mode copy (same function, faster; a
            ``PreparedModel`` is used as it is); False attacks ``model`` itself.
        precision: ``auto`` (bf16 forward/backward under autocast on a CUDA device that supports it, fp32
            elsewhere), ``fp32`` or ``bf16``. Whether a point fools is always decided in fp32 (``confirm_fooled``).
        record: receives the fp32 logits of each returned point, as computed when the attack saw it
            (``attacks.record``; left empty under bf16, where the caller classifies the points itself).
        radii: float N, each sample's own radius in (0, eps] (``base.radius_of_each``): a relative or default
            step size scales with it; a step in pixel units stays. How a robust curve attacks several eps in one
            batch (``attacks.curve_levels``); each sample is attacked exactly as alone at its radius.
        start_noise: L-inf, restarts 1: the uniform [0, 1) draws (N x C x H x W) of the random start, instead of
            drawing them here.

    Returns:
        x_adv, N x C x H x W in [0, 1], within eps of images in ``norm`` (within its radius, given ``radii``).
    """
    check_norm(norm)
    eps = check_eps(eps, norm)
    check_inputs(images, labels)
    dtype = autocast_dtype(precision, images.device)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"pgd needs steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}.")
    images = images.detach().float()
    if eps == 0 or images.shape[0] == 0:
        return images.clone()
    if start_noise is not None and restarts != 1:
        raise ConfigError(f"pgd's start_noise gives one random start per sample; it needs restarts=1, got {restarts}.")
    radius = radius_of_each(eps, radii, images)
    step = _step(step_size, radius, steps)
    model = attack_target(model, prepare)
    with attack_mode(model), cudnn_autotune(images.device, fixed_shapes=not early_stop):
        best_x = images.clone()
        best_loss = torch.full((images.shape[0],), float("-inf"), device=images.device)
        best_fooled = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        best_logits: torch.Tensor | None = None
        taken = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)  # best_x is a seen point
        for restart in range(restarts):
            # Later restarts only matter for samples not fooled yet (per-sample worst case).
            todo = torch.arange(images.shape[0], device=images.device)
            if restart > 0:
                todo = todo[~best_fooled]
                if todo.numel() == 0:
                    break
            x, loss_v, fooled, logits = _pgd_run(model, images, labels, radius, norm, steps, step, random_start,
                                                 loss, early_stop, generator, todo, dtype, start_noise)
            take = better(loss_v, fooled, best_loss[todo], best_fooled[todo])
            idx = todo[take]
            best_x[idx], best_loss[idx], best_fooled[idx] = x[take], loss_v[take], fooled[take]
            if best_logits is None:
                best_logits = logits.new_zeros((images.shape[0], logits.shape[1]))
            best_logits[idx], taken[idx] = logits[take], True
    keep_logits(record, best_logits, dtype is None and bool(taken.all()))
    return best_x


def _step(step_size: float | str | None, radius: float | torch.Tensor, steps: int) -> float | torch.Tensor:
    """The step in pixel units at ``radius`` (a float, or N x 1 x 1 x 1 per-sample radii): 2.5 radius / steps by
    default, ratio x radius for a relative step, the given pixels otherwise."""
    if step_size is None:
        return 2.5 * radius / steps
    if isinstance(radius, torch.Tensor):
        parsed = parse_step_size(step_size) if isinstance(step_size, str) else step_size
        if isinstance(parsed, RelativeStep):
            return parsed.ratio * radius
        return step_in_pixels(parsed, float(radius.max()))
    return step_in_pixels(step_size, radius)


def _pgd_run(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float | torch.Tensor, norm: str,
             steps: int, step: float | torch.Tensor, start_random: bool, loss_name: str, early_stop: bool,
             generator: torch.Generator | None, todo: torch.Tensor, dtype: torch.dtype | None,
             start_noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD restart on images[todo]; returns (best x, its loss, whether it fools, its logits) for those
    samples (logits N x K as the pass that saw the point computed them).

    ``eps`` and ``step``: floats, or N x 1 x 1 x 1 per-sample values (``radii``). The passes run in ``dtype`` under
    autocast (None: fp32); whether a point fools is decided in fp32.
    """
    x0 = random_start(images, eps, norm, generator, start_noise) if start_random else images.clone()
    full = todo.numel() == images.shape[0]
    images, labels, x = (images, labels, x0) if full else (images[todo], labels[todo], x0[todo])
    # Per-sample radii and steps follow their samples, as the images do.
    eps, step = (value if full or not isinstance(value, torch.Tensor) else value[todo] for value in (eps, step))
    n = images.shape[0]
    loss_fns: list = []  # built from the first logits: a model without .info needs no extra pass for its classes

    def loss_fn(logits: torch.Tensor, ya: torch.Tensor) -> torch.Tensor:
        if not loss_fns:
            loss_fns.append(get_loss(loss_name, num_classes_of(model, logits)))
        return loss_fns[0](logits, ya)

    best_x = x.clone()
    best_loss = torch.full((n,), float("-inf"), device=x.device)
    best_fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    best_logits = None  # the logits of best_x; at t = 0 every sample's best_x is x0, seen in full
    # The samples still attacked, kept compact (row i is sample active[i]; active None: all n, in order), so a
    # step touches only their rows: no gather from and scatter into a full-size iterate.
    active = None
    xa, images_a, ya, eps_a, step_a = x, images, labels, eps, step
    for t in range(steps + 1):
        if t < steps:
            loss_v, grad, logits = loss_and_grad(model, xa, lambda z, ya=ya, fn=loss_fn: fn(z, ya), dtype)
        else:  # the last iterate needs no gradient, only its verdict and loss
            logits = logits_of(model, xa, dtype)
            loss_v = loss_fn(logits, ya)
        fooled = confirm_fooled(model, xa, ya, logits.argmax(1) != ya, dtype)
        if active is None:
            take = better(loss_v, fooled, best_loss, best_fooled)
            if bool(take.all()):  # the common case (the loss rose for every sample): one copy, no gather
                best_x.copy_(xa)
            else:
                best_x[take] = xa[take]
            # At t = 0 every row is x0's (best_x starts there), even where a NaN loss makes ``take`` False.
            best_logits = logits if best_logits is None else torch.where(take[:, None], logits, best_logits)
            best_loss = torch.where(take, loss_v, best_loss)
            best_fooled = best_fooled | fooled
        else:
            take = better(loss_v, fooled, best_loss[active], best_fooled[active])
            if bool(take.all()):
                best_x[active], best_loss[active], best_fooled[active], best_logits[active] = xa, loss_v, fooled, logits
            else:
                idx = active[take]
                best_x[idx], best_loss[idx], best_fooled[idx] = xa[take], loss_v[take], fooled[take]
                best_logits[idx] = logits[take]
        if t == steps:
            break
        if early_stop and fooled.any():
            keep = ~fooled
            active = (torch.arange(n, device=x.device) if active is None else active)[keep]
            if active.numel() == 0:
                break
            xa, grad, images_a, ya = xa[keep], grad[keep], images_a[keep], ya[keep]
            eps_a, step_a = (v[keep] if isinstance(v, torch.Tensor) else v for v in (eps_a, step_a))
        # In place where possible: the loop should cost nothing next to the forward+backward passes.
        direction = grad.sign_() if norm == "linf" else ascent_direction(grad, norm)
        moved = xa.addcmul(direction, step_a) if isinstance(step_a, torch.Tensor) else xa.add(direction, alpha=step_a)
        xa = project(moved, images_a, eps_a, norm)
    return best_x, best_loss, best_fooled, best_logits
