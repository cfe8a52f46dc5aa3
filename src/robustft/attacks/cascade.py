"""Attack cascades: APGD-CE, then APGD-T, then Square, each on the samples still robust (per-sample worst case).

``cascade`` is robustft's own code, modelled on AutoAttack's standard L-inf suite but NOT equal to it: the
standard suite (fra31/auto-attack, ``version='standard'``) runs APGD-CE -> APGD-T -> FAB-T -> Square, and
robustft has no FAB-T, so ``cascade`` is APGD-CE -> APGD-T -> Square. The stages it has use the standard
suite's budgets (100 steps, 9 target classes, 5000 Square queries; pass smaller numbers for cheap tracking).
Without FAB-T its accuracy can only be higher than or equal to what those stages plus FAB-T would give, so a
number from ``cascade`` is not an AutoAttack number: report it as "APGD-CE + APGD-T + Square".
``autoattack`` runs the official AutoAttack package first when it is installed (FAB-T included), then
robustft's cascade on what survives, so the reported accuracy is the worst case over both.
"""

from __future__ import annotations

import torch
from torch import nn

from robustft.attacks.apgd import apgd
from robustft.attacks.base import attack_mode, check_eps, check_inputs, logits_of, num_classes_of
from robustft.attacks.prepared_cache import attack_target
from robustft.attacks.record import ReturnedLogits, keep_logits
from robustft.attacks.square import square
from robustft.errors import MissingAssetError


def cascade(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, steps: int = 100,
            n_target_classes: int = 9, n_queries: int = 5000, restarts: int = 1, early_stop: bool = True,
            generator: torch.Generator | None = None, prepare: bool = True,
            record: ReturnedLogits | None = None) -> torch.Tensor:
    """APGD-CE -> APGD-T -> Square (L-inf); each stage attacks only samples no earlier stage fooled.

    Args:
        model: classifier on [0, 1] images.
        images: float N x C x H x W in [0, 1].
        labels: int64 N.
        eps: L-inf radius in pixel units.
        steps: APGD steps (CE and each target of APGD-T).
        n_target_classes: APGD-T targets (skipped for models with fewer than 4 classes).
        n_queries: Square queries (0 skips Square).
        restarts: APGD restarts.
        early_stop: within each stage, fooled samples leave the batch.
        generator: CPU random generator.
        prepare: attack ``prepare_for_attack``'s folded, frozen, eval-mode copy (same function, faster; a
            ``PreparedModel`` is used as it is); False attacks ``model`` itself.
        record: receives the fp32 logits of each returned point, as the stage that returned it computed them.

    Returns:
        x_adv, N x C x H x W in [0, 1] within eps: per sample the first stage's fooling point, else APGD-CE's.
    """
    eps = check_eps(eps)
    check_inputs(images, labels)
    images = images.detach().float()
    if eps == 0 or images.shape[0] == 0:
        return images.clone()
    model = attack_target(model, prepare)  # once: every stage then runs on this copy
    # Each stage hands back the logits of its points (attacks.record), so no verdict costs another pass.
    seen = ReturnedLogits()
    x = apgd(model, images, labels, eps, steps=steps, loss="ce", restarts=restarts, early_stop=early_stop,
             generator=generator, record=seen)
    logits = _logits_of_points(model, x, seen)
    robust = logits.argmax(1) == labels
    stages = []
    if n_target_classes > 0 and num_classes_of(model, logits) >= 4:
        stages.append(lambda xs, ys, rec: apgd(model, xs, ys, eps, steps=steps, targeted=True, restarts=restarts,
                                               n_target_classes=n_target_classes, early_stop=early_stop,
                                               generator=generator, record=rec))
    if n_queries > 0:
        stages.append(lambda xs, ys, rec: square(model, xs, ys, eps, n_queries=n_queries, generator=generator,
                                                 record=rec))
    for stage in stages:
        idx = torch.nonzero(robust).squeeze(1)
        if idx.numel() == 0:
            break
        seen = ReturnedLogits()
        x_stage = stage(images[idx], labels[idx], seen)
        stage_logits = _logits_of_points(model, x_stage, seen)
        fooled = stage_logits.argmax(1) != labels[idx]
        x[idx[fooled]] = x_stage[fooled]
        logits[idx[fooled]] = stage_logits[fooled]
        robust[idx[fooled]] = False
    keep_logits(record, logits, True)
    return x


def _logits_of_points(model: nn.Module, x: torch.Tensor, seen: ReturnedLogits) -> torch.Tensor:
    """The logits a stage recorded for its points, or (when it could not vouch for them) computed now, in fp32."""
    if seen.logits is not None:
        return seen.logits
    with attack_mode(model):
        return logits_of(model, x)


def autoattack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, version: str = "standard",
               steps: int = 100, n_target_classes: int = 9, n_queries: int = 5000,
               generator: torch.Generator | None = None, prepare: bool = True) -> torch.Tensor:
    """The official AutoAttack (L-inf, ``version``) and then robustft's cascade on the samples it left robust.

    Raises:
        MissingAssetError: the ``autoattack`` package is not installed (the message says how to install it).
    """
    eps = check_eps(eps)
    check_inputs(images, labels)
    try:
        from autoattack import AutoAttack
    except ImportError:
        raise MissingAssetError(
            "the 'autoattack' evaluation needs the official AutoAttack package, which is not on PyPI: install it "
            "with `pip install git+https://github.com/fra31/auto-attack`, or use robustft's own '--attack cascade' "
            "(APGD-CE -> APGD-T -> Square)."
        ) from None
    images = images.detach().float()
    if eps == 0 or images.shape[0] == 0:
        return images.clone()
    model = attack_target(model, prepare)
    with attack_mode(model):
        official = AutoAttack(model, norm="Linf", eps=eps, version=version, verbose=False,
                              device=str(images.device))
        x = official.run_standard_evaluation(images, labels, bs=images.shape[0]).detach().float()
        # Trust but verify: keep the official point only where it is admissible.
        x = torch.minimum(torch.maximum(x, images - eps), images + eps).clamp(0.0, 1.0)
        robust = logits_of(model, x).argmax(1) == labels
    idx = torch.nonzero(robust).squeeze(1)
    if idx.numel():
        x_own = cascade(model, images[idx], labels[idx], eps, steps=steps, n_target_classes=n_target_classes,
                        n_queries=n_queries, generator=generator)
        with attack_mode(model):
            fooled = logits_of(model, x_own).argmax(1) != labels[idx]
        x[idx[fooled]] = x_own[fooled]
    return x
