"""The model an adversarial training step crafts on: one prepared copy per run, refreshed in place every step.

``attacks.prepare_for_attack`` makes the attacked model cheap (a frozen eval-mode copy, Conv2d+BatchNorm2d pairs
folded, channels_last) but builds it with ``copy.deepcopy`` every call: on the demo's MobileNetV2 at one thread
that is ~60-90 ms, 6-8% of an adversarial step with APGD-CE-7, paid again at every step although the copy's
structure never changes between steps, only its values. ``CraftingCopy`` prepares once and afterwards writes the
current weights into that copy: plain tensors are copied, each folded pair is re-folded with torch's
``fuse_conv_bn_weights`` (the formula ``fuse_conv_bn_eval`` applies), so the refreshed copy holds bit for bit the
tensors a fresh ``prepare_for_attack`` would (tests/test_crafting.py).

Where the copy is not a refreshable image of the model, a fresh copy per call stays the only correct choice, and is
what happens (``attacks.prepared_cache.refresh_plan`` decides): a hook that is not a strategy's, a copy whose hooks
differ from the model's (preparing merged LoRA or (IA)3, or dropped adapters still at their zero init), a module,
parameter or buffer of the copy with no counterpart in the model, or a tensor of the model the copy does not read.
The model's hooks are compared at every call, so a hook added or removed later gets a fresh copy.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from robustft.attacks import prepare_for_attack
from robustft.attacks.prepared_cache import Copy, Fold, RefreshPlan, refresh, refresh_plan
from robustft.strategies.hooks import hook_signature

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
        self.plan = RefreshPlan([], [], [])
        self.hooks: tuple | None = None  # the source's hooks when the plan was made
        self.refreshable = False

    @property
    def copies(self) -> list[Copy]:
        return self.plan.copies

    @property
    def folds(self) -> list[Fold]:
        return self.plan.folds

    def __call__(self, model: nn.Module) -> nn.Module:
        if (self.prepared is not None and self.refreshable and model is self.source
                and hook_signature(model) == self.hooks):
            self.refresh()
            return self.prepared
        prepared = self.prepare(model)
        plan = refresh_plan(model, prepared)
        self.source, self.prepared, self.hooks = model, prepared, hook_signature(model)
        self.refreshable = plan is not None
        self.plan = plan if plan is not None else RefreshPlan([], [], [])
        return prepared

    def refresh(self) -> None:
        """Writes the source model's current parameters and buffers into the prepared copy."""
        refresh(self.plan)
