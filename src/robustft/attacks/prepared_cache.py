"""One prepared copy per model object, kept across attack calls and refreshed in place from the model's tensors.

Why: ``prepare_for_attack`` deep-copies the model, merges, folds and swaps modules; on the embedded MobileNetV2
that is 19-20 ms on 1 or 2 threads (2026-12-07, idle), paid again by every ``robust_accuracy``, ``robust_curve``
or attack call on a model that has not changed in between (an eps sweep, several attacks, a notebook loop): 2.5%
of a PGD-10 evaluation of 256 images on 1 thread, 4.5% on 2. Writing the model's current tensors into the copy
prepared before (``refresh``: plain tensors copied, each folded Conv2d+BatchNorm2d pair re-folded with torch's
``fuse_conv_bn_weights``, the formula a fresh fold applies) takes 1.4-1.6 ms, and checking that the model's
structure is still the one the copy was made from 0.6 ms.

When the copy is reused (``prepared_copy``): the model is the same object, no global module hooks are registered,
every hook in the model is a strategy's (``strategies.hooks.attach``) and the copy kept the same ones (bottleneck
adapters, Compacter, VPT; not a merged LoRA or (IA)3, nor adapters dropped as identities at their zero init: then
the copy's hooks differ and it is prepared afresh), the refresh plan writes every tensor of the copy and reads
every tensor of the model, and the model's ``structure_signature`` equals the one recorded when the copy was made:
every module by qualified name, identity and class, its plain attributes (stride, padding, eps, ...; not
``training``, which attacks override), every parameter and buffer by identity, shape, dtype and device, every
hook. Anything else gets a fresh ``prepare_for_attack``
(and becomes the kept copy if it can be refreshed). The values are always rewritten, never assumed unchanged:
writing through ``.data`` changes a tensor without bumping its version counter, so no cheaper test of "nothing
changed" is safe. The refreshed copy holds bit for bit the tensors of a fresh prepare (tests/test_prepared_cache.py,
and tests/test_fast_paths.py over every strategy x backbone).

The kept copies live in a ``WeakKeyDictionary``: one per live model object, gone with the model. Set
``ROBUSTFT_PREPARED_CACHE=off`` to prepare afresh on every call (what ``bench attack_loop`` compares against).
Written by hand: no library keeps a derived module in step with its source.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Hashable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from robustft.attacks.base import warn_train_mode_batchnorm
from robustft.attacks.prepare import PreparedModel, _global_hooks, prepare_for_attack
from robustft.strategies.hooks import hook_signature

ENV = "ROBUSTFT_PREPARED_CACHE"

Copy = tuple[torch.Tensor, torch.Tensor]  # (destination in the prepared copy, source in the model)
Fold = tuple[torch.Tensor, torch.Tensor, nn.Conv2d, nn.BatchNorm2d]  # (weight, bias) <- fold(conv, bn)
Derived = tuple[nn.Module, nn.Module]  # (a model module with ``write_plain``, the plain layer it writes in the copy)
_SCALARS = (bool, int, float, str, type(None))


class RefreshPlan(NamedTuple):
    """How a prepared copy is rewritten from its model: tensors copied, conv+BN pairs re-folded, and plain layers
    rewritten by the model module they stand for (Compacter's PHM projections: ``write_plain``)."""

    copies: list[Copy]
    folds: list[Fold]
    derived: list[Derived]


def _refreshable_hooks(model: nn.Module) -> tuple | None:
    """The model's hook signature when a copy of it may be refreshed (only strategy hooks, no global hooks)."""
    return None if _global_hooks() else hook_signature(model)


def refresh_plan(model: nn.Module, prepared: nn.Module) -> RefreshPlan | None:
    """How to rewrite ``prepared`` (a ``PreparedModel`` of ``model``) from ``model``'s tensors, or None.

    Modules correspond by qualified name. A BatchNorm2d of ``model`` that is an ``nn.Identity`` in the copy was
    folded into the Conv2d before it in the same Sequential. None when the hooks do not allow it (see the module
    docstring), when a name or tensor has no counterpart, when some tensor of the copy would not be written, or
    when some tensor of the model would not be read (an adaptation the copy merged or dropped).
    """
    inner = getattr(prepared, "model", None)
    hooks = _refreshable_hooks(model)
    if inner is None or hooks is None or hook_signature(inner) != hooks:
        return None
    copies: list[Copy] = []
    folds: list[Fold] = []
    derived: list[Derived] = []
    written: set[int] = set()
    read: set[int] = set()
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
            read.update(map(id, [*_tensors(source), *_tensors(folded_bn)]))
            continue
        if hasattr(source, "write_plain") and type(target) is not type(source):
            derived.append((source, target))
            written.update(map(id, _tensors(target)))
            read.update(map(id, _tensors(source)))
            continue
        mine = {k: v for k, v in [*target._parameters.items(), *target._buffers.items()] if v is not None}
        theirs = {k: v for k, v in [*source._parameters.items(), *source._buffers.items()] if v is not None}
        if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
            return None
        for key, tensor in mine.items():
            copies.append((tensor, theirs[key]))
            written.add(id(tensor))
            read.add(id(theirs[key]))
    if any(id(t) not in written for t in [*inner.parameters(), *inner.buffers()]):
        return None
    if any(id(t) not in read for t in [*model.parameters(), *model.buffers()]):
        return None  # e.g. LoRA merged into a conv: refreshing the conv alone would drop the trained delta
    return RefreshPlan(copies, folds, derived)


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    """A module's own parameters and buffers (not its children's)."""
    return [t for t in [*module._parameters.values(), *module._buffers.values()] if t is not None]


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


@torch.no_grad()
def refresh(plan: RefreshPlan) -> None:
    """Writes the model's current tensors into the prepared copy along ``plan`` (from ``refresh_plan``)."""
    copies, folds, derived = plan
    for source_module, plain in derived:
        source_module.write_plain(plain)
    for destination, source in copies:
        destination.copy_(source)
    for weight, bias, conv, bn in folds:
        fused_weight, fused_bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                        bn.eps, bn.weight, bn.bias)
        weight.copy_(fused_weight)
        bias.copy_(fused_bias)


def _plain_attributes(module: nn.Module) -> tuple:
    """The module's own attributes a forward may read that are no tensor or module (``training`` left out)."""
    items = []
    for key, value in vars(module).items():
        if key == "training" or key.startswith("_"):
            continue
        if isinstance(value, _SCALARS) or (isinstance(value, tuple) and all(isinstance(v, _SCALARS) for v in value)):
            items.append((key, value))
        else:  # a callable or object set on the instance (a replaced forward, a config): compared by identity
            items.append((key, id(value)))
    return tuple(items)


def structure_signature(model: nn.Module) -> Hashable:
    """What a prepared copy of ``model`` depends on besides its tensors' values (see the module docstring)."""
    parts: list = []
    for name, module in model.named_modules():
        hooks = [*module._forward_hooks.items(), *module._forward_pre_hooks.items()]
        parts.append((name, id(module), type(module), _plain_attributes(module),
                      tuple((key, id(hook)) for key, hook in hooks)))
        for key, tensor in [*module._parameters.items(), *module._buffers.items()]:
            parts.append((key, None) if tensor is None else (key, id(tensor), tuple(tensor.shape), tensor.dtype,
                                                            tensor.device))
    return tuple(parts)


class _Kept:
    """A prepared copy, the plan that refreshes it, and the signature and modules of the model it was made from."""

    def __init__(self, prepared: nn.Module, plan: RefreshPlan, signature: Hashable,
                 model: nn.Module) -> None:
        self.prepared, self.plan, self.signature = prepared, plan, signature
        # Holding the submodules keeps their ids from being reused by new objects while the signature names them
        # (the model itself is the dictionary's weak key: holding it here would keep the entry alive for ever).
        self.modules = [module for module in model.modules() if module is not model]


_kept: weakref.WeakKeyDictionary[nn.Module, _Kept] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def enabled() -> bool:
    """False when ``ROBUSTFT_PREPARED_CACHE=off``: every call prepares a fresh copy."""
    return os.environ.get(ENV, "on").lower() not in ("off", "0", "false", "no")


def prepared_copy(model: nn.Module) -> nn.Module:
    """``prepare_for_attack(model)``'s function, reusing (refreshed) the copy made for this model object before.

    Args:
        model: a classifier on [0, 1] images (not modified). A ``PreparedModel`` is returned as it is.

    Returns:
        A ``PreparedModel`` holding ``model``'s current tensors, bit for bit what ``prepare_for_attack`` gives.
        The caller must not modify it (move it, change its modules): the next call on this model returns it again.
    """
    if isinstance(model, PreparedModel):
        return model
    if not enabled() or _refreshable_hooks(model) is None:
        return prepare_for_attack(model)
    signature = structure_signature(model)
    with _lock:  # a refresh must not run while another thread refreshes the same copy
        kept = _kept.get(model)
        if kept is not None and kept.signature == signature:
            warn_train_mode_batchnorm(model)
            refresh(kept.plan)
            return kept.prepared
        prepared = prepare_for_attack(model)
        plan = refresh_plan(model, prepared)
        if plan is None:
            _kept.pop(model, None)
        else:
            _kept[model] = _Kept(prepared, plan, signature, model)
        return prepared


def forget(model: nn.Module | None = None) -> None:
    """Drops the kept copy of ``model`` (every kept copy if None): the next call prepares afresh."""
    with _lock:
        if model is None:
            _kept.clear()
        else:
            _kept.pop(model, None)


def attack_target(model: nn.Module, prepare: bool) -> nn.Module:
    """The module an attack runs on: ``prepared_copy(model)`` (same function, faster), or ``model`` itself."""
    return prepared_copy(model) if prepare else model
