"""Gradient-masking checks (Athalye et al. 2018; Carlini et al. 2019; Croce & Hein 2020's sanity checks).

A model can look robust because its gradients are useless, not because it is robust. Each check below
looks for one symptom and, when it fires, returns a ``CheckWarning`` with a plain explanation and what to do:

- ``zero_or_nan_gradients``: input gradients that are exactly zero or NaN for many samples (non-differentiable
  preprocessing such as quantisation, saturated softmax, NaN in the model);
- ``eps_not_monotone``: accuracy not falling as eps grows;
- ``steps_not_monotone``: the iterative attack weaker than one FGSM step, or more steps weaker than fewer;
- ``black_box_beats_white_box``: Square (no gradients) fools samples that PGD/APGD could not;
- ``huge_eps_accuracy``: accuracy far from 0 at an eps where any image can become any other;
- ``random_forward``: logits that change between two identical forward passes in eval mode (stochastic
  defences need expectation over transformation);
- ``attack_not_converged`` (when the evaluated attack is given): the same attack with ``CONVERGENCE_FACTOR`` times
  its steps leaves measurably fewer samples robust, so the reported number overstates robustness. This is not
  masking but an attack stopped too early: paper B's APGD-CE-10 at eps_g = 32/255 on the demo's RFT-fix model left
  17.0% of 200 test images robust where APGD-CE-100 left 0.0% (torchattacks agreed).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from robustft.attacks.apgd import apgd
from robustft.attacks.base import Attack, attack_mode, check_eps, logits_of, loss_and_grad
from robustft.attacks.losses import ce_loss
from robustft.attacks.pgd import fgsm, pgd
from robustft.attacks.prepare import prepare_for_attack
from robustft.attacks.robust_evaluation import _iter_batches
from robustft.attacks.square import square
from robustft.errors import ConfigError


@dataclass(frozen=True)
class CheckWarning:
    """One gradient-masking symptom: which check, what was measured, and what it means in plain words."""

    check: str
    message: str
    value: float

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


def _take(batches, max_samples: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, count = [], [], 0
    for x, y in _iter_batches(batches):
        images.append(x)
        labels.append(y)
        count += x.shape[0]
        if count >= max_samples:
            break
    if not images:
        raise ConfigError("run_checks got no samples; pass a non-empty batch iterable.")
    return torch.cat(images)[:max_samples].to(device).float(), torch.cat(labels)[:max_samples].to(device).long()


def _robust(model: nn.Module, x_adv: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits_of(model, x_adv).argmax(1) == labels


CONVERGENCE_FACTOR = 10  # the convergence check runs the evaluated attack with this many times its steps


def run_checks(model: nn.Module, batches, eps: float | str, *, max_samples: int = 128, steps: int = 10,
               n_queries: int = 300, huge_eps: float = 0.5, tolerance: float = 0.05, seed: int = 0,
               device: str | torch.device | None = None, attack: Attack | None = None) -> list[CheckWarning]:
    """Runs the gradient-masking checks on up to ``max_samples`` samples; returns the warnings (empty: all fine).

    Args:
        model: classifier on [0, 1] images (mode and flags restored).
        batches: iterable of (images, labels) or one (images, labels) tuple; images in [0, 1].
        eps: the radius the model will be evaluated at.
        max_samples: samples used (keep it small: the checks run several attacks).
        steps: PGD/APGD steps of the reference white-box attack (the steps check also uses 4x as many).
        n_queries: Square queries of the black-box check.
        huge_eps: the "huge" L-inf radius where accuracy must be near 0.
        tolerance: accuracy differences smaller than this (plus 2 samples) are noise, not a warning.
        seed: seed of the attacks' random starts.
        device: where to run; default the model's device.
        attack: the attack whose robust accuracy is reported; given, and taking ``steps``, it is also checked for
            convergence at ``eps`` against itself with ``CONVERGENCE_FACTOR`` times its steps.

    Returns:
        A list of CheckWarning.
    """
    eps = check_eps(eps)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    images, labels = _take(batches, max_samples, torch.device(device))
    model = prepare_for_attack(model)  # once, so the attacks below make no copy each
    slack = tolerance + 2 / images.shape[0]
    warnings, clean = _forward_checks(model, images, labels)
    if eps > 0:
        warnings += _budget_checks(model, images, labels, eps, steps, n_queries, slack, seed)
        if attack is not None:
            warnings += _convergence_check(model, images, labels, eps, attack, slack, seed)
    acc_huge = _accuracy(model, pgd(model, images, labels, huge_eps, steps=2 * steps, step_size=huge_eps / 4,
                                    generator=_generator(seed)), labels, clean)
    if acc_huge > slack:
        warnings.append(CheckWarning(
            "huge_eps_accuracy",
            f"at eps={huge_eps:g} (where any image can be turned into another) PGD still leaves {acc_huge:.1%} of the "
            "samples correctly classified instead of ~0%: the attack cannot follow the gradients (masking) or the "
            "model ignores its input.",
            acc_huge))
    return warnings


def _generator(seed: int) -> torch.Generator:
    """A fresh generator per attack: every attack of the checks starts from the same random state."""
    return torch.Generator().manual_seed(seed)


def _accuracy(model: nn.Module, x_adv: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Share of samples still classified correctly at ``x_adv`` (and in ``mask``, when given)."""
    robust = _robust(model, x_adv, labels)
    return float(robust.float().mean()) if mask is None else float((robust & mask).float().mean())


def _forward_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor
                    ) -> tuple[list[CheckWarning], torch.Tensor]:
    """Checks of the forward and backward pass alone (random logits, zero or NaN input gradients); returns the
    warnings and which samples are classified correctly (N bool)."""
    warnings: list[CheckWarning] = []
    with attack_mode(model):
        first = logits_of(model, images)
        second = logits_of(model, images)
        spread = float((first - second).abs().max())
        scale = float(first.abs().max()) + 1e-12
        if spread > 1e-4 * scale + 1e-6:
            warnings.append(CheckWarning(
                "random_forward",
                f"two identical forward passes in eval mode gave logits differing by up to {spread:.3g}: the model "
                "is random at test time, so gradients of one pass do not describe the next; evaluate with "
                "expectation over transformation (average gradients over many passes) before trusting robustness.",
                spread))
        clean = first.argmax(1) == labels
        _, grad, _ = loss_and_grad(model, images, lambda z: ce_loss(z, labels))
        flat = grad.flatten(1)
        bad = (~torch.isfinite(flat)).any(1) | (flat.abs().amax(1) == 0)
        bad_share = float(bad.float().mean())
    if bad_share > 0.1:
        warnings.append(CheckWarning(
            "zero_or_nan_gradients",
            f"{bad_share:.0%} of samples have an input gradient that is exactly zero or NaN: gradient attacks "
            "learn nothing there (non-differentiable preprocessing like rounding/JPEG, saturated outputs, or NaN "
            "in the model), so their robust accuracy is meaningless; use BPDA or a black-box attack (square).",
            bad_share))
    return warnings, clean


def _budget_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
                   n_queries: int, slack: float, seed: int) -> list[CheckWarning]:
    """Checks at the evaluated eps: accuracy falls with eps and with steps, and no black box beats the white box."""
    warnings: list[CheckWarning] = []
    x_ref = pgd(model, images, labels, eps, steps=steps, generator=_generator(seed))
    acc_ref = _accuracy(model, x_ref, labels)
    acc_half = _accuracy(model, pgd(model, images, labels, eps / 2, steps=steps, generator=_generator(seed)), labels)
    acc_double = _accuracy(model, pgd(model, images, labels, min(2 * eps, 1.0), steps=steps,
                                      generator=_generator(seed)), labels)
    if acc_ref > acc_half + slack or acc_double > acc_ref + slack:
        warnings.append(CheckWarning(
            "eps_not_monotone",
            f"PGD accuracy does not fall as eps grows (eps/2: {acc_half:.1%}, eps: {acc_ref:.1%}, 2 eps: "
            f"{acc_double:.1%}): a larger budget can only help a working attack, so the gradients mislead it.",
            max(acc_ref - acc_half, acc_double - acc_ref)))
    acc_fgsm = _accuracy(model, fgsm(model, images, labels, eps), labels)
    acc_long = _accuracy(model, pgd(model, images, labels, eps, steps=4 * steps, generator=_generator(seed)), labels)
    if acc_ref > acc_fgsm + slack or acc_long > acc_ref + slack:
        warnings.append(CheckWarning(
            "steps_not_monotone",
            f"more attack steps do not lower accuracy (FGSM: {acc_fgsm:.1%}, PGD-{steps}: {acc_ref:.1%}, "
            f"PGD-{4 * steps}: {acc_long:.1%}): an iterative attack weaker than one step means the loss "
            "surface is masked or the step size is wrong.",
            max(acc_ref - acc_fgsm, acc_long - acc_ref)))
    x_white = apgd(model, images, labels, eps, steps=steps, generator=_generator(seed))
    white_robust = _robust(model, x_white, labels) & _robust(model, x_ref, labels)
    x_black = square(model, images, labels, eps, n_queries=n_queries, generator=_generator(seed))
    black_only = float((white_robust & ~_robust(model, x_black, labels)).float().mean())
    if black_only > slack:
        warnings.append(CheckWarning(
            "black_box_beats_white_box",
            f"Square (black-box, no gradients) fooled {black_only:.1%} of the samples that PGD and APGD-CE "
            "could not: with usable gradients white-box attacks are stronger, so the gradients are masked; "
            "report the worst case over both (e.g. --attack cascade).",
            black_only))
    return warnings


def attack_steps(attack: Attack) -> int | None:
    """The steps ``attack`` runs (its option, else its function's default); None for an attack without steps (or a
    plain function, whose options cannot be changed)."""
    if not isinstance(attack, Attack):
        return None
    if "steps" in attack.options:
        return int(attack.options["steps"])
    parameter = inspect.signature(attack.fn).parameters.get("steps")
    return None if parameter is None or parameter.default is inspect.Parameter.empty else int(parameter.default)


def _convergence_check(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, attack: Attack,
                       slack: float, seed: int) -> list[CheckWarning]:
    """The evaluated attack against itself with ``CONVERGENCE_FACTOR`` x its steps, from the same random state."""
    steps = attack_steps(attack)
    if steps is None:
        return []
    longer = attack.with_options(steps=CONVERGENCE_FACTOR * steps)

    def accuracy(run: Attack) -> float:
        if run.accepts("generator"):
            run = run.with_options(generator=_generator(seed))
        return _accuracy(model, run(model, images, labels, eps), labels)

    acc, acc_long = accuracy(attack), accuracy(longer)
    if acc <= acc_long + slack:
        return []
    return [CheckWarning(
        "attack_not_converged",
        f"{attack.name} with {steps} steps leaves {acc:.1%} of the checked samples robust, with "
        f"{CONVERGENCE_FACTOR * steps} steps {acc_long:.1%}: the attack has not converged at this eps, so its robust "
        f"accuracy overstates robustness; evaluate with more steps (--steps {CONVERGENCE_FACTOR * steps}, or "
        "steps: in the config's attack) and report that number.",
        acc - acc_long)]
