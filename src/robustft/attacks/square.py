"""Square Attack (Andriushchenko et al., ECCV 2020), L-inf, score-based: random square updates, no gradients.

It only queries logits, so gradient masking (non-differentiable preprocessing, shattered or obfuscated
gradients) does not stop it: a model that resists PGD but not Square is masking gradients. Implemented from
the paper: vertical-stripe initialisation at +-eps, margin loss z_y - max_{k != y} z_k to minimise, each
iteration one square window of side round(sqrt(p * H * W)) at a random place, filled per channel with
+-eps around the clean image, kept per sample if it lowers the loss; p halves on the paper's schedule
(iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10000, rescaled to ``n_queries``).
Fooled samples stop being queried.
"""

from __future__ import annotations

import torch
from torch import nn

from robustft.attacks.base import attack_mode, check_eps, check_inputs, logits_of
from robustft.attacks.losses import margin_loss
from robustft.attacks.prepared_cache import attack_target
from robustft.attacks.record import ReturnedLogits, keep_logits
from robustft.errors import ConfigError

_HALVING_AT = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_p(p_init: float, iteration: int, n_queries: int) -> float:
    """The fraction of pixels changed at ``iteration`` (the paper's piecewise-constant halving schedule)."""
    it = int(iteration / max(n_queries, 1) * 10000)
    halvings = sum(it > t for t in _HALVING_AT)
    return p_init / (2 ** halvings)


def square(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, n_queries: int = 1000,
           p_init: float = 0.8, early_stop: bool = True, generator: torch.Generator | None = None,
           prepare: bool = True, record: ReturnedLogits | None = None) -> torch.Tensor:
    """L-inf Square Attack.

    Args:
        model: classifier on [0, 1] images (only its logits are used); eval mode while attacking.
        images: float N x C x H x W in [0, 1].
        labels: int64 N.
        eps: L-inf radius in pixel units; 0 returns images.
        n_queries: queries per sample (1 for the initialisation + one per iteration).
        p_init: initial fraction of pixels per square (0.8 as in AutoAttack's standard setting).
        early_stop: always on in effect: a fooled sample is never queried again (kept for a uniform interface).
        generator: CPU random generator (window places and signs).
        prepare: attack ``prepare_for_attack``'s folded, frozen, eval-mode copy (same function, faster; a
            ``PreparedModel`` is used as it is); False attacks ``model`` itself.
        record: receives the (fp32) logits of each returned point, as computed when the attack queried it.

    Returns:
        x_adv, N x C x H x W in [0, 1] within eps (L-inf) of images.
    """
    eps = check_eps(eps)
    check_inputs(images, labels)
    if n_queries < 1:
        raise ConfigError(f"square needs n_queries >= 1, got {n_queries}.")
    images = images.detach().float()
    n, c, h, w = images.shape
    if eps == 0 or n == 0:
        return images.clone()
    device = images.device
    gen = generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))

    def signs(shape):
        return (torch.randint(0, 2, shape, generator=gen).float() * 2 - 1).to(device)

    model = attack_target(model, prepare)
    with attack_mode(model):
        x = (images + eps * signs((n, c, 1, w))).clamp(0.0, 1.0)
        logits = logits_of(model, x)  # per sample, the logits of its current point x
        margin = -margin_loss(logits, labels)  # z_y - max other: < 0 means fooled
        for i in range(1, n_queries):
            active = torch.nonzero(margin >= 0).squeeze(1)
            if active.numel() == 0:
                break
            p = square_p(p_init, i, n_queries)
            side = min(max(int(round((p * h * w) ** 0.5)), 1), h - 1 if h > 1 else 1, w - 1 if w > 1 else 1)
            top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
            # Signs for the whole batch, so a sample's draw does not depend on which others are still active.
            window_signs = signs((n, c, 1, 1))[active]
            xa, base = x[active], images[active]
            win = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
            candidate = xa.clone()
            candidate[win] = (base[win] + eps * window_signs).clamp(0.0, 1.0)
            new_logits = logits_of(model, candidate)
            new_margin = -margin_loss(new_logits, labels[active])
            accept = new_margin < margin[active]
            x[active[accept]] = candidate[accept]
            margin[active[accept]] = new_margin[accept]
            logits[active[accept]] = new_logits[accept]
    keep_logits(record, logits, True)
    return x
