"""AdamW parameter groups: weight decay only on weight matrices/kernels, separate head learning rate and decay.

No decay on: biases, normalisation weights and any 1-D parameter (LayerScale/IA3/BitFit scales and
shifts), and on prompt/position/class tokens (VPT prompts, ``pos_embed``, ``cls_token``): decaying them pulls
them towards 0, which for scales means switching the layer off and for prompts/tokens means erasing learned
inputs rather than regularising a mapping.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NO_DECAY_NAME_PARTS = ("prompt", "pos_embed", "cls_token", "dist_token", "reg_token", "norm", "bias")


def wants_decay(name: str, parameter: torch.Tensor) -> bool:
    """Whether AdamW weight decay applies to the parameter ``name``."""
    if parameter.ndim <= 1:
        return False
    lowered = name.lower()
    return not any(part in lowered for part in NO_DECAY_NAME_PARTS)


def parameter_groups(model: nn.Module, lr: float, weight_decay: float, head_lr: float | None = None,
                     head: str | None = None, head_weight_decay: float | None = None) -> list[dict[str, Any]]:
    """Up to four groups (body/head x decay/no-decay) over the parameters with ``requires_grad``.

    The head (parameters under the module named ``head``) takes ``head_lr`` and ``head_weight_decay`` when they
    are given, else ``lr`` and ``weight_decay``. Each group carries ``base_lr`` so the trainer can scale
    ``lr = base_lr * lr_factor(step)``.
    """
    prefix = f"{head}." if head else None
    groups: dict[tuple[bool, bool], list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        is_head = bool(prefix) and name.startswith(prefix)
        groups.setdefault((is_head, wants_decay(name, parameter)), []).append(parameter)
    out = []
    for (is_head, decay), params in sorted(groups.items()):
        base_lr = head_lr if (is_head and head_lr is not None) else lr
        decay_rate = head_weight_decay if (is_head and head_weight_decay is not None) else weight_decay
        out.append({"params": params, "lr": base_lr, "base_lr": base_lr,
                    "weight_decay": decay_rate if decay else 0.0, "name": f"{'head' if is_head else 'body'}"
                    f"/{'decay' if decay else 'no_decay'}"})
    return out


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                    head_lr: float | None = None, head: str | None = None,
                    head_weight_decay: float | None = None) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model`` (see ``parameter_groups``)."""
    groups = parameter_groups(model, lr, weight_decay, head_lr, head, head_weight_decay)
    if not groups:
        raise ValueError("no trainable parameters: the strategy froze everything")
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
