"""Mean cross-entropy under attack: the validation loss paper B's authors tune on (utils/hp_opt.py minimises it).

Unlike ``robust_curve``, nothing is nested and no sample leaves early: every sample is attacked at every eps
(a sample already misclassified still adds its loss), and the loss is read at the point the attack returns
(APGD: a fooling iterate if it found one, else its best-loss iterate), on the model itself in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robustft.attacks.base import check_eps
from robustft.attacks.prepare import prepare_for_attack
from robustft.attacks.robust_evaluation import (
    AttackLike,
    _admissible,
    _default_batch_size,
    _device_of,
    _iter_batches,
    _resolve_attack,
)
from robustft.errors import ConfigError


def _cross_entropy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Summed cross-entropy of ``model`` on images N x C x H x W in [0, 1] (full precision, no gradients)."""
    with torch.no_grad(), torch.autocast(device_type=images.device.type, enabled=False):
        return float(F.cross_entropy(model(images.float()), labels, reduction="sum"))


def adversarial_loss(model: nn.Module, batches, attack: AttackLike, eps_list: Sequence[float | str], *,
                     batch_size: int | None = None) -> list[float]:
    """Mean cross-entropy over the samples at each eps of ``eps_list``: eps 0 on the clean images, eps > 0 at
    the point ``attack`` returns for each sample.

    Args:
        model: classifier on [0, 1] images, evaluated in eval mode on its own device (every submodule's mode is
            restored afterwards).
        batches: (images, labels) batches as ``robust_curve`` takes them; images float N x C x H x W in [0, 1].
        attack: an ``Attack``, a registry name or a callable ``(model, images, labels, eps) -> x_adv``; run on a
            prepared (folded, frozen) copy without early stop.
        eps_list: radii in pixel units (``"4/255"`` accepted), any order.
        batch_size: attack chunk size (default as ``robust_curve``).

    Returns:
        One mean loss (>= 0, nats) per eps, in the order given.
    """
    eps_values = [check_eps(e) for e in eps_list]
    attack_fn, attack_name = _resolve_attack(attack, False, True)
    device = _device_of(model)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    target = prepare_for_attack(model).to(device)
    size = _default_batch_size(device, batch_size)
    totals, n = [0.0] * len(eps_values), 0
    try:
        for images, labels in _iter_batches(batches):
            images, labels = images.to(device).float(), labels.to(device).long()
            for start in range(0, images.shape[0], size):
                x, y = images[start:start + size], labels[start:start + size]
                for i, eps in enumerate(eps_values):
                    point = x if eps == 0 else _admissible(attack_fn(target, x, y, eps), x, eps, attack_name)
                    totals[i] += _cross_entropy(model, point, y)
            n += images.shape[0]
    finally:
        for module, training in modes:  # as found: a strategy may keep parts of a training model in eval mode
            module.training = training
    if n == 0:
        raise ConfigError("adversarial_loss got no samples; check the data split and eval.subset.")
    return [total / n for total in totals]
