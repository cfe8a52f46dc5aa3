"""Per-sample attack losses on logits (N x K), all to be MAXIMISED by the attacker.

- ``ce``: cross-entropy; the standard PGD/APGD-CE loss.
- ``margin``: Carlini-Wagner margin max_{k != y} z_k - z_y (> 0 iff misclassified).
- ``dlr``: Difference of Logits Ratio (Croce & Hein 2020), -(z_y - max_{k != y} z_k) / (z_pi1 - z_pi3),
  invariant to shifting and rescaling the logits, so it resists logit-scale gradient masking.
- ``dlr_targeted``: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), used by APGD-T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustft.errors import ConfigError


def _other_max(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """max_{k != y} z_k per sample (N)."""
    masked = logits.scatter(1, labels[:, None], float("-inf"))
    return masked.max(dim=1).values


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy (N)."""
    return F.cross_entropy(logits, labels, reduction="none")


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """max_{k != y} z_k - z_y (N); positive iff the sample is misclassified."""
    return _other_max(logits, labels) - logits.gather(1, labels[:, None]).squeeze(1)


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR (N); needs at least 3 classes."""
    top = logits.topk(3, dim=1).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    return -(z_y - _other_max(logits, labels)) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (N); needs at least 4 classes."""
    top = logits.topk(4, dim=1).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


LOSSES = {"ce": ce_loss, "margin": margin_loss, "dlr": dlr_loss}
MIN_CLASSES = {"ce": 2, "margin": 2, "dlr": 3}


def get_loss(name: str, num_classes: int):
    """The loss function ``name`` (ce, margin, dlr), checking the number of classes it needs."""
    if name not in LOSSES:
        raise ConfigError(f"unknown attack loss {name!r}; use one of {', '.join(LOSSES)}.")
    if num_classes < MIN_CLASSES[name]:
        raise ConfigError(
            f"loss {name!r} needs at least {MIN_CLASSES[name]} classes, the model has {num_classes}; use loss='ce'."
        )
    return LOSSES[name]
