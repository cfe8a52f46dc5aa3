"""Type coercion for the config tree: YAML values -> annotated dataclass fields, and back to plain YAML types.

Driven by the dataclasses' type hints (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``list[X]``,
``dict[str, Any]``, ``Literal[...]``, nested dataclasses) plus three annotated kinds: :data:`Eps` (an epsilon in
pixel units, written ``4/255``), :data:`Step` (an attack step size: pixel units or ``0.25eps``) and
:data:`Duration` (an int count or a float fraction of training in [0, 1]).

This is where an epsilon or a step size written as text is parsed, once: the typed config holds floats (and
:class:`~robustft.config.units.RelativeStep`), which reach the attacks as they are; text comes back only when a
config is written out (``to_dict``: config.yaml, summary records).
Written by hand because it is small and gives messages that name the key and the fix; pydantic/omegaconf would
be a new dependency for one module. Errors are :class:`~robustft.errors.ConfigError`.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Annotated, Any, Literal, Union

from robustft.config.presets import PRESETS, RENAMED_KEYS
from robustft.config.units import RelativeStep, StepSize, parse_eps, parse_step_size
from robustft.errors import ConfigError

EPS = "eps"  # Annotated marker: an epsilon in pixel units, accepts "4/255"
STEP = "step"  # Annotated marker: an attack step size, pixel units ("0.25/255") or relative to eps ("0.25eps")
DURATION = "duration"  # Annotated marker: int count or float fraction of training in [0, 1]

Eps = Annotated[float, EPS]
Step = Annotated[StepSize, STEP]
Duration = Annotated[Union[int, float], DURATION]  # noqa: UP007 (Annotated needs a runtime object)



def format_eps_exact(eps: float) -> str | float:
    """``k/255`` text when it parses back to exactly ``eps`` (k may be a short decimal like 0.25), else the float."""
    k = eps * 255
    for text in (f"{round(k)}", f"{round(k * 4) / 4:g}", f"{round(k * 100) / 100:g}"):
        # The float parse_eps gives for "<text>/255" (Fractions, as it computes them), without parsing text.
        if float(Fraction(text) / 255) == eps:
            return "0" if text == "0" else f"{text}/255"
    return eps


def parse_eps_text(value: Any, key: str) -> float:
    """An epsilon from ``"4/255"``, ``"0.25/255"``, ``0.0157`` or ``0``; ``8`` raises with "did you mean 8/255".

    ``robustft.config.units.parse_eps`` with the config key in its messages: text is parsed, a number checked.
    """
    return parse_eps(value, name=key)


def hints_of(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def build(cls: type, tree: Any, path: str) -> Any:
    if not isinstance(tree, Mapping):
        where = path or "the config"
        raise ConfigError(
            f"{where} must be a mapping of keys ({', '.join(f.name for f in dataclasses.fields(cls))}), "
            f"not {tree!r}."
        )
    hints = hints_of(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in tree:
        if key not in names:
            renamed = RENAMED_KEYS.get(_join(path, str(key)))
            if renamed is not None:
                raise ConfigError(f"config key {_join(path, str(key))!r} is now {renamed!r} (one attack spec type for "
                                  f"every attack): write {renamed}={tree[key]!r} instead of "
                                  f"{_join(path, str(key))}={tree[key]!r}.")
            raise ConfigError(unknown_key_message(str(key), names, path))
    kwargs = {key: _coerce(_over_field_default(cls, key, value, _join(path, key)), hints[key], _join(path, key))
              for key, value in tree.items()}
    return cls(**kwargs)


def _over_field_default(cls: type, name: str, value: Any, key: str) -> Any:
    """A mapping given for a section whose default is not its class's defaults (``eval.final``: an AttackSpec of
    apgd-ce with 10 steps, where AttackSpec() is pgd with 15) is layered over the field's default, so keys it
    leaves out keep the field's default values; anything else is returned unchanged."""
    if not isinstance(value, Mapping):
        return value
    item = next(f for f in dataclasses.fields(cls) if f.name == name)
    if item.default_factory is dataclasses.MISSING:  # type: ignore[misc]
        return value
    default = item.default_factory()  # type: ignore[misc]
    if not dataclasses.is_dataclass(default) or default == type(default)():
        return value
    value = _with_preset(value, key) if key in PRESETS else value
    return {**plain_dataclass(default, text=False), **value}


def unknown_key_message(key: str, valid: Sequence[str], path: str) -> str:
    """The message for an unknown config key: close matches first, then every valid key at that level."""
    close = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(_join(path, c)) for c in close)}?" if close else ""
    level = f"under '{path}'" if path else "at the top level"
    return f"unknown config key {_join(path, key)!r}.{hint} Valid keys {level}: {', '.join(valid)}."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return {EPS: "an epsilon like 4/255", DURATION: "an int count or a fraction in [0, 1]",
                STEP: "a step size like 0.25/255 or 0.25eps"}[args[1]]
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of ({_describe(args[0])})"
    if origin is dict:
        return "a mapping"
    if hint is type(None):
        return "null"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Converts a YAML value to the annotated type, or raises a ConfigError naming ``key``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        if args[1] == EPS:
            return parse_eps_text(value, key)
        if args[1] == STEP:
            return parse_step_size(value, name=key)
        return _coerce_duration(value, key)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, hint, key)
    if origin is Literal:
        return _coerce_literal(value, args, key)
    if origin is list:
        return _coerce_list(value, args[0], key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r} must be a mapping of option names to values (or {{}}).")
        return copy.deepcopy(dict(value))
    if dataclasses.is_dataclass(hint):
        if key in PRESETS:
            value = _with_preset(value, key)
        return build(hint, value, key)
    if hint is Any:
        return copy.deepcopy(value)
    return _coerce_scalar(value, hint, key)


def _coerce_union(value: Any, hint: Any, key: str) -> Any:
    """``X | Y | None``: null if allowed, a preset name for a dataclass member, else the first member that fits."""
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    dataclass_args = [a for a in args if dataclasses.is_dataclass(a)]
    if dataclass_args and key in PRESETS and isinstance(value, str | Mapping):
        return _coerce(_with_preset(value, key), dataclass_args[0], key)
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, key)
        except ConfigError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    raise ConfigError(f"{key}={value!r} must be {_describe(hint)}.")


def _coerce_literal(value: Any, choices: tuple[Any, ...], key: str) -> Any:
    if value in choices and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in choices)):
        return value
    close = difflib.get_close_matches(str(value), [str(a) for a in choices], n=1, cutoff=0.5)
    hint_text = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{key}={value!r} is not one of {', '.join(repr(a) for a in choices)}.{hint_text}")


def _coerce_list(value: Any, item_hint: Any, key: str) -> list[Any]:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, str) or (number and typing.get_origin(item_hint) is Annotated):
        value = [value]  # one item written without brackets: eval.eps=4/255, eval.splits=test
    if not isinstance(value, Sequence):
        raise ConfigError(f"{key}={value!r} must be a list, e.g. {key}=[a,b] or a YAML list.")
    return [_coerce(item, item_hint, f"{key}[{i}]") for i, item in enumerate(value)]


def _coerce_scalar(value: Any, hint: Any, key: str) -> bool | int | float | str:
    """bool, int, float and str fields; YAML's near misses that are unambiguous are accepted (3.0 as an int)."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} must be true or false.")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}={value!r} must be an integer.")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} must be a number.")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads name: 2024-01-01 as a date
            return value.isoformat()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}={value!r} must be a string.")
    raise TypeError(f"config field {key} has an unsupported annotation {hint!r}")  # a bug in this module


def _coerce_duration(value: Any, key: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{key}={value!r} must be an int count (epochs or steps) or a float fraction of training in [0, 1], "
            "e.g. 12 or 0.25."
        )
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key}={value} must not be negative.")
        return value
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{key}={value!r}: a float is a fraction of training and must be in [0, 1]; "
            f"write an int ({int(value) if math.isfinite(value) else 12}) for a count of epochs or steps."
        )
    return value


def _with_preset(value: Any, key: str) -> Any:
    """A preset name, or a mapping whose ``name`` is a preset (``{name: paper-a, steps: 20}``: the preset with the
    mapping's other keys over it), as the mapping of fields it stands for; anything else unchanged."""
    if isinstance(value, str):
        return _expand_preset(value, key)
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and value["name"] in PRESETS[key]:
        return {**_expand_preset(value["name"], key), **{k: v for k, v in value.items() if k != "name"}}
    return value


def _expand_preset(name: str, key: str) -> dict[str, Any]:
    presets = PRESETS[key]
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{key}={name!r} is not a preset.{hint} Presets: {', '.join(presets)}; or give a mapping of fields."
        )
    return copy.deepcopy(presets[name])


def plain(value: Any, hint: Any, text: bool = True) -> Any:
    """``value`` of a field annotated ``hint`` as plain data: epsilons and step sizes as text (``text``: for YAML
    and JSON) or kept as the numbers / RelativeStep they are (a tree to apply overrides to and build again)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if origin is Annotated:
        if not text:
            return value
        if args[1] == EPS:
            return format_eps_exact(value)
        if args[1] == STEP:
            return str(value) if isinstance(value, RelativeStep) else format_eps_exact(value)
        return value
    if origin in (Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            if _matches(value, arg):
                return plain(value, arg, text)
        return copy.deepcopy(value)
    if origin is list:
        return [plain(item, args[0], text) for item in value]
    if dataclasses.is_dataclass(value):
        return plain_dataclass(value, text)
    return copy.deepcopy(value)


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return isinstance(value, (int, float, RelativeStep))
    if origin is list:
        return isinstance(value, list)
    if origin is Literal:
        return value in args
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)



def plain_dataclass(instance: Any, text: bool = True) -> dict[str, Any]:
    """A dataclass instance as a plain dict of YAML types (epsilons as ``k/255`` when exact); with ``text=False``
    epsilons and step sizes stay the values they are (see :func:`plain`)."""
    hints = hints_of(type(instance))
    return {item.name: plain(getattr(instance, item.name), hints[item.name], text)
            for item in dataclasses.fields(instance)}
