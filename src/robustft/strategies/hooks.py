"""Attach a strategy module to an existing layer with a forward hook, without renaming the layer's parameters.

Wrapping a layer (``qkv`` -> ``qkv.base_layer``) would rename every adapted weight; a hook keeps the pretrained
weights' names, so a plain backbone state dict still lines up, and removing the hook (``merge``) restores the
original module. The hook functions are module-level ``functools.partial`` objects, so models stay
deep-copyable and picklable.

Three ways to attach ``child`` as attribute ``attr`` of ``target``:
- ``delta``: ``output + child(input)`` (LoRA);
- ``post``: ``child(output)`` (scales, adapters, prompt removal);
- ``pre``: the first input becomes ``child(input)`` (input scales, prompt insertion).
Tuple outputs (some Hugging Face layers) are handled on their first element.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from torch import nn

Kind = Literal["delta", "post", "pre"]


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *value[1:]) if isinstance(value, tuple) else tensor


def _delta_hook(attr: str, module: nn.Module, args: tuple, output: Any) -> Any:
    return _replace_first(output, _first(output) + getattr(module, attr)(args[0]))


def _post_hook(attr: str, module: nn.Module, args: tuple, output: Any) -> Any:
    return _replace_first(output, getattr(module, attr)(_first(output)))


def _pre_hook(attr: str, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    child = getattr(module, attr)
    if args:
        return (child(args[0]), *args[1:]), kwargs
    key = next(iter(kwargs))  # called with keywords only: the first one is the hidden states
    return args, {**kwargs, key: child(kwargs[key])}


def attach(target: nn.Module, attr: str, child: nn.Module, kind: Kind) -> None:
    """Registers ``child`` as ``target.<attr>`` and hooks it into ``target``'s forward."""
    if hasattr(target, attr):
        raise ValueError(f"{type(target).__name__} already has an attribute {attr!r}; was a strategy applied twice?")
    target.add_module(attr, child)
    if kind == "delta":
        target.register_forward_hook(functools.partial(_delta_hook, attr))
    elif kind == "post":
        target.register_forward_hook(functools.partial(_post_hook, attr))
    elif kind == "pre":
        target.register_forward_pre_hook(functools.partial(_pre_hook, attr), with_kwargs=True)
    else:
        raise ValueError(f"unknown hook kind {kind!r}")


def detach(target: nn.Module, attr: str) -> None:
    """Removes ``target.<attr>`` and its hook, restoring the plain module."""
    for hooks in (target._forward_hooks, target._forward_pre_hooks):
        for key, hook in list(hooks.items()):
            if isinstance(hook, functools.partial) and hook.args == (attr,):
                del hooks[key]
                target._forward_hooks_with_kwargs.pop(key, None)
                target._forward_pre_hooks_with_kwargs.pop(key, None)
    delattr(target, attr)


def attached(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Every (target, attr, child) attached with ``attach`` in ``model``."""
    found = []
    for target in model.modules():
        for hooks in (target._forward_hooks, target._forward_pre_hooks):
            for hook in hooks.values():
                if isinstance(hook, functools.partial) and hook.func in (_delta_hook, _post_hook, _pre_hook):
                    found.append((target, hook.args[0], getattr(target, hook.args[0])))
    return found


def hook_signature(model: nn.Module) -> tuple[tuple[str, str, str], ...] | None:
    """Every forward hook and pre-hook in ``model`` as (qualified module name, hook function, attribute), in module
    order; None when any hook was not attached by ``attach`` (a user's hook: what it computes is unknown).

    Two models whose signatures are equal run the same strategy hooks on the same modules: what a copy refreshed
    in place from its model needs (``attacks.prepared_cache.refresh_plan``)."""
    parts = []
    for name, module in model.named_modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for hook in hooks.values():
                if not (isinstance(hook, functools.partial) and hook.func in (_delta_hook, _post_hook, _pre_hook)):
                    return None
                parts.append((name, hook.func.__name__, hook.args[0]))
    return tuple(parts)
