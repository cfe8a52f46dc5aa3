"""Training objectives: standard cross-entropy, classic adversarial training (Madry et al.) and TRADES.

An objective is a function ``loss(model, images, labels, eps, context) -> (loss, logits)``:

* ``images``: float N x C x H x W in [0, 1]; ``labels``: int64 N; ``eps``: L-inf radius in pixel units.
* ``context``: an ``ObjectiveContext`` holding the inner attack (crafted in EVAL mode, so BatchNorm statistics
  and dropout do not move while attacking), the strategy's ``train_mode`` (called before the update forward
  pass instead of ``model.train()``, so frozen modules stay in eval mode), and TRADES' beta.
* returns the scalar loss to back-propagate and the logits of the update forward pass (N x num_classes),
  which the trainer uses for its running training accuracy.

At ``eps == 0`` adversarial training and TRADES skip the attack entirely: adversarial training becomes
standard training and TRADES' KL term is exactly 0 (x_adv = x).

TRADES' inner maximisation (KL between the predictions on x and x') is written here by hand: the attack
package implements cross-entropy attacks for evaluation, and torchattacks' TPGD does not expose the step size
and start the TRADES paper uses (x + 0.001 * N(0, 1), step eps/4 by default here, per-sample projection).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks import prepare_for_attack
from robustft.registry import Registry
from robustft.training.crafting import CraftingCopy
from robustft.training.small_map_depthwise import SmallMapDepthwise

OBJECTIVES = Registry("objective")

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]


def _default_train_mode(model: nn.Module) -> None:
    model.train()


@dataclass
class ObjectiveContext:
    """What an objective needs besides the batch.

    Attributes:
        attack: ``attack(model, images, labels, eps) -> x_adv`` in [0, 1]; used by ``adversarial``.
        train_mode: puts the model in training mode the way the strategy wants (frozen parts stay in eval).
        beta: TRADES' weight of the robustness (KL) term.
        steps: TRADES' inner steps.
        step_size: TRADES' inner step size in pixel units; None -> eps / 4 (TRADES paper: 0.007 for 8/255 ~ eps/4).
        autocast: a context-manager factory for the update forward pass (mixed precision on CUDA), or None.
        prepare_attack: craft on ``attacks.prepare_for_attack``'s copy of the current weights (eval mode, conv+BN
            folded, channels_last, frozen): the same function, about twice the forward+backward throughput on a
            CNN, for a per-step copy that costs a few milliseconds.
        trades_fused: TRADES' update as ONE forward pass over [x; x'] instead of the reference's separate passes
            over x and x'. On a BatchNorm backbone in train mode the fused pass normalises both halves with the
            pooled statistics of clean and adversarial images, a different loss; off by default.
        crafting: the trainer's per-run prepared copy (``training.crafting``), refreshed per step; None: a fresh
            ``prepare_for_attack`` copy per call.
        crafted_eps: set by the objective on every call: the eps of the perturbation it crafted, 0.0 when it crafted
            none (the standard objective, or eps == 0). The trainer counts the steps that trained on a perturbation
            from it (summary.json's ``perturbed_steps``), so a run that never perturbed says so.
        small_map_depthwise: run the update's forward on the CPU under ``training.small_map_depthwise`` (trained
            depthwise convolutions on maps of <= 2 x 2 pixels as a product; the trainer sets it from
            ``train.cpu_fast_paths``).
    """

    attack: Attack | None = None
    train_mode: Callable[[nn.Module], object] = _default_train_mode
    beta: float = 6.0
    steps: int = 7
    step_size: float | None = None
    autocast: Callable[[], contextlib.AbstractContextManager[object]] | None = None
    prepare_attack: bool = True
    trades_fused: bool = False
    crafting: CraftingCopy | None = None
    crafted_eps: float = 0.0
    small_map_depthwise: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """No parameter requires grad inside: the inner attack's k backward passes compute input gradients only
    (no weight gradients, fewer saved activations); the flags are restored on exit, even on error."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def crafting_model(model: nn.Module, context: ObjectiveContext) -> nn.Module:
    """The model the inner maximisation runs on: ``attacks.prepare_for_attack``'s copy of the current weights, or
    the model itself.

    The copy has mergeable adaptations (LoRA, IA3, peft tuners) merged into its weights and conv+BN pairs folded,
    so the attack's k forward+backward passes cost what full fine-tuning's do; the function is the same up to
    float rounding (tests/test_fast_paths.py) and the trained model keeps its adapters.
    """
    if not context.prepare_attack:
        return model
    return context.crafting(model) if context.crafting is not None else prepare_for_attack(model)


def _forward(model: nn.Module, images: torch.Tensor, context: ObjectiveContext) -> torch.Tensor:
    """The update's forward pass (its backward follows from the graph recorded here)."""
    if context.autocast is not None:
        with context.autocast():
            return model(images)
    if context.small_map_depthwise and images.device.type == "cpu":
        with SmallMapDepthwise():
            return model(images)
    return model(images)


@OBJECTIVES.register("standard")
def standard_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                  context: ObjectiveContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on clean images (eps is ignored)."""
    context.crafted_eps = 0.0
    context.train_mode(model)
    logits = _forward(model, images, context)
    return F.cross_entropy(logits.float(), labels), logits


@OBJECTIVES.register("adversarial")
def adversarial_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                     context: ObjectiveContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Classic adversarial training: cross-entropy on x_adv crafted in eval mode at the current eps."""
    if eps > 0:
        if context.attack is None:
            raise ValueError("the adversarial objective needs context.attack")
        model.eval()  # craft against fixed BatchNorm statistics / no dropout; train_mode below restores it
        with frozen_parameters(model):
            adversarial = context.attack(crafting_model(model, context), images, labels, eps).detach()
    else:
        adversarial = images
    context.crafted_eps = float(eps) if eps > 0 else 0.0
    context.train_mode(model)
    logits = _forward(model, adversarial, context)
    return F.cross_entropy(logits.float(), labels), logits


def trades_inner_max(model: nn.Module, images: torch.Tensor, eps: float, steps: int,
                     step_size: float | None = None) -> torch.Tensor:
    """TRADES' inner maximisation: x' in the eps-ball maximising KL(f(x) || f(x')).

    Args:
        model: the classifier; run in eval mode here, the caller restores the mode it needs.
        images: N x C x H x W in [0, 1].
        eps: L-inf radius (pixel units), > 0.
        steps: sign-gradient ascent steps.
        step_size: pixel units; None -> eps / 4.

    Returns:
        x' (N x C x H x W in [0, 1], detached), within eps of ``images`` per pixel.
    """
    step_size = eps / 4 if step_size is None else step_size
    was_training = model.training
    model.eval()
    images = images.detach().float()
    with torch.no_grad():
        natural = F.softmax(model(images).float(), dim=1)
    # The TRADES start: a tiny Gaussian perturbation (the KL gradient is exactly 0 at x' = x).
    adversarial = (images + 0.001 * torch.randn_like(images)).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        with torch.enable_grad():
            divergence = F.kl_div(F.log_softmax(model(adversarial).float(), dim=1), natural, reduction="sum")
            (gradient,) = torch.autograd.grad(divergence, adversarial)
        adversarial = adversarial.detach() + step_size * gradient.sign()
        adversarial = torch.min(torch.max(adversarial, images - eps), images + eps).clamp(0, 1)
    model.train(was_training)
    return adversarial.detach()


@OBJECTIVES.register("trades")
def trades_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                context: ObjectiveContext) -> tuple[torch.Tensor, torch.Tensor]:
    """TRADES: CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL in eval mode.

    The update follows the reference code (yaodongyu/TRADES, ``trades_loss``): separate train-mode forward passes
    over x and x', so on a BatchNorm backbone each is normalised with its own batch statistics. The reference
    calls ``model(x_natural)`` a second time for the KL target; in train mode that gives the same logits (BatchNorm
    uses batch statistics, and timm/torchvision backbones have no dropout by default), so the first pass's logits
    are reused: one forward pass fewer, the same loss and gradient, one running-statistics update fewer per step.
    ``context.trades_fused`` makes one pass over [x; x'] instead (pooled BatchNorm statistics; not the reference).
    """
    if eps > 0:
        model.eval()
        with frozen_parameters(model):
            adversarial = trades_inner_max(crafting_model(model, context), images, eps, context.steps,
                                           context.step_size)
    else:
        adversarial = None
    context.crafted_eps = float(eps) if eps > 0 else 0.0
    context.train_mode(model)
    if adversarial is None:
        logits = _forward(model, images, context)
        return F.cross_entropy(logits.float(), labels), logits
    if context.trades_fused:
        both = _forward(model, torch.cat([images, adversarial]), context).float()
        logits, adversarial_logits = both[: len(images)], both[len(images):]
    else:
        logits = _forward(model, images, context).float()
        adversarial_logits = _forward(model, adversarial, context).float()
    natural = F.cross_entropy(logits, labels)
    robust = F.kl_div(F.log_softmax(adversarial_logits, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    return natural + context.beta * robust, logits


def get_objective(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The objective function registered as ``name`` (unknown -> UnknownNameError listing the names)."""
    return OBJECTIVES.get(name)
