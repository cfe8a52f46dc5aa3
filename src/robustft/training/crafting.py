"""The model an adversarial training step crafts on: one prepared copy per run, refreshed in place every step.

``attacks.prepare_for_attack`` makes the attacked model cheap (a frozen eval-mode copy, Conv2d+BatchNorm2d pairs
folded, channels_last) but builds it with ``copy.deepcopy`` every call: on the demo's MobileNetV2 at one thread
that is ~60-90 ms, 6-8% of an adversarial step with APGD-CE-7, paid again at every step although the copy's
structure never changes between steps, only its values. ``CraftingCopy`` prepares once and afterwards writes the
current weights into that copy: plain tensors are copied, each folded pair is re-folded with torch's
``fuse_conv_bn_weights`` (the formula ``fuse_conv_bn_eval`` applies), so the refreshed copy holds bit for bit the
tensors a fresh ``prepare_for_attack`` would (tests/test_crafting.py).

Where the structure is not a plain copy of the model, a fresh copy per call stays the only correct choice, and is
what happens: a model with any forward hook or pre-hook (strategies attach LoRA, (IA)3 and adapters with hooks,
and preparing merges the mergeable ones, which removes modules and changes weights), or a prepared copy with a
module, parameter or buffer the model has no counterpart for.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from robustft.attacks import prepare_for_attack
from robustft.attacks.prepared_cache import Copy, Fold, refresh, refresh_plan

__all__ = ["CraftingCopy", "refresh_plan"]


class CraftingCopy:
    """``crafting(model)`` -> the prepared copy of ``model``'s current weights, refreshed in place when it can be.

    The copy is bound to the first model it is called with; calling it with another model object prepares a
    fresh copy (no refresh plan holds across models).
    """

    def __init__(self, prepare: Callable[[nn.Module], nn.Module] = prepare_for_attack) -> None:
        self.prepare = prepare
        self.source: nn.Module | None = None
        self.prepared: nn.Module | None = None
        self.copies: list[Copy] = []
        self.folds: list[Fold] = []
        self.refreshable = False

    def __call__(self, model: nn.Module) -> nn.Module:
        if self.prepared is not None and self.refreshable and model is self.source:
            self.refresh()
            return self.prepared
        prepared = self.prepare(model)
        plan = refresh_plan(model, prepared)
        self.source, self.prepared = model, prepared
        self.refreshable = plan is not None
        self.copies, self.folds = plan if plan is not None else ([], [])
        return prepared

    def refresh(self) -> None:
        """Writes the source model's current parameters and buffers into the prepared copy."""
        refresh((self.copies, self.folds))
