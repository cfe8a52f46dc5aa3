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

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from robustft.attacks import prepare_for_attack

__all__ = ["CraftingCopy"]

Copy = tuple[torch.Tensor, torch.Tensor]  # (destination in the prepared copy, source in the model)
Fold = tuple[torch.Tensor, torch.Tensor, nn.Conv2d, nn.BatchNorm2d]  # (weight, bias) <- fold(conv, bn)


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

    @torch.no_grad()
    def refresh(self) -> None:
        """Writes the source model's current parameters and buffers into the prepared copy."""
        for destination, source in self.copies:
            destination.copy_(source)
        for weight, bias, conv, bn in self.folds:
            fused_weight, fused_bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                                            bn.running_var, bn.eps, bn.weight, bn.bias)
            weight.copy_(fused_weight)
            bias.copy_(fused_bias)


def refresh_plan(model: nn.Module, prepared: nn.Module) -> tuple[list[Copy], list[Fold]] | None:
    """How to rewrite ``prepared`` (a ``PreparedModel`` of ``model``) from ``model``'s tensors, or None.

    Modules correspond by qualified name. A BatchNorm2d of ``model`` that is an ``nn.Identity`` in the copy was
    folded into the Conv2d before it in the same Sequential. None when the model has hooks (see the module
    docstring), when a name or tensor has no counterpart, or when some tensor of the copy would not be written.
    """
    inner = getattr(prepared, "model", None)
    if inner is None or any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return None
    copies: list[Copy] = []
    folds: list[Fold] = []
    written: set[int] = set()
    for name, target in inner.named_modules():
        try:
            source = model.get_submodule(name)
        except AttributeError:
            return None
        if isinstance(target, nn.Identity) and not isinstance(source, nn.Identity):
            if not isinstance(source, nn.BatchNorm2d):
                return None
            continue  # folded into the conv before it (handled with that conv)
        folded_bn = _folded_successor(name, inner, model)
        if folded_bn is not None:
            if not (isinstance(source, nn.Conv2d) and isinstance(target, nn.Conv2d) and target.bias is not None):
                return None
            folds.append((target.weight, target.bias, source, folded_bn))
            written.update({id(target.weight), id(target.bias)})
            continue
        mine = {k: v for k, v in [*target._parameters.items(), *target._buffers.items()] if v is not None}
        theirs = {k: v for k, v in [*source._parameters.items(), *source._buffers.items()] if v is not None}
        if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
            return None
        for key, tensor in mine.items():
            copies.append((tensor, theirs[key]))
            written.add(id(tensor))
    everything = [*inner.parameters(), *inner.buffers()]
    if any(id(t) not in written for t in everything):
        return None
    return copies, folds


def _folded_successor(name: str, inner: nn.Module, model: nn.Module) -> nn.BatchNorm2d | None:
    """The model's BatchNorm2d folded into the conv at ``name`` (its next sibling in a Sequential), or None."""
    parent_name, _, child = name.rpartition(".")
    if not name:
        return None
    target_parent = inner.get_submodule(parent_name)
    source_parent = model.get_submodule(parent_name)
    if not isinstance(target_parent, nn.Sequential):
        return None
    names = list(target_parent._modules)
    position = names.index(child)
    if position + 1 >= len(names):
        return None
    following = names[position + 1]
    source_next = source_parent._modules.get(following)
    if isinstance(target_parent._modules[following], nn.Identity) and isinstance(source_next, nn.BatchNorm2d):
        return source_next
    return None
