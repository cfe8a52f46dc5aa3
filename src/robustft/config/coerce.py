"""Type coercion for the config tree: YAML values -> annotated dataclass fields, and back to plain YAML types.

Driven by the dataclasses' type hints (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``list[X]``,
``dict[str, Any]``, ``Literal[...]``, nested dataclasses) plus two annotated kinds: :data:`Eps` (an epsilon in
pixel units, written ``4/255``) and :data:`Duration` (an int count or a float fraction of training in [0, 1]).
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

from robustft.config.presets import PRESETS
from robustft.config.units import parse_eps
from robustft.errors import ConfigError

EPS = "eps"  # Annotated marker: an epsilon in pixel units, accepts "4/255"
DURATION = "duration"  # Annotated marker: int count or float fraction of training in [0, 1]

Eps = Annotated[float, EPS]
Duration = Annotated[Union[int, float], DURATION]  # noqa: UP007 (Annotated needs a runtime object)



def format_eps_exact(eps: float) -> str | float:
    """``k/255`` text when it parses back to exactly ``eps`` (k may be a short decimal like 0.25), else the float."""
    k = eps * 255
    for text in (f"{round(k)}", f"{round(k * 4) / 4:g}", f"{round(k * 100) / 100:g}"):
        candidate = "0" if text == "0" else f"{text}/255"
        if parse_eps_text(candidate, "eps") == eps:
            return candidate
    return eps


def parse_eps_text(value: Any, key: str) -> float:
    """An epsilon from ``"4/255"``, ``"0.25/255"``, ``0.0157`` or ``0``; ``8`` raises with "did you mean 8/255"."""
    if isinstance(value, str) and "/" in value:
        numerator, _, denominator = value.replace(" ", "").partition("/")
        try:
            value = float(Fraction(numerator) / Fraction(denominator))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"{key}={value!r} is not a number; write it like 4/255 or 0.0157.") from None
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
            raise ConfigError(unknown_key_message(str(key), names, path))
    kwargs = {key: _coerce(value, hints[key], _join(path, key)) for key, value in tree.items()}
    return cls(**kwargs)


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
        return {EPS: "an epsilon like 4/255", DURATION: "an int count or a fraction in [0, 1]"}[args[1]]
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
        return parse_eps_text(value, key) if args[1] == EPS else _coerce_duration(value, key)
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
        if isinstance(value, str) and key in PRESETS:
            value = _expand_preset(value, key)
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
    if dataclass_args and isinstance(value, str) and key in PRESETS:
        return _coerce(_expand_preset(value, key), dataclass_args[0], key)
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


def _expand_preset(name: str, key: str) -> dict[str, Any]:
    presets = PRESETS[key]
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{key}={name!r} is not a preset.{hint} Presets: {', '.join(presets)}; or give a mapping of fields."
        )
    return copy.deepcopy(presets[name])


def plain(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if origin is Annotated:
        return format_eps_exact(value) if args[1] == EPS else value
    if origin in (Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            if _matches(value, arg):
                return plain(value, arg)
        return copy.deepcopy(value)
    if origin is list:
        return [plain(item, args[0]) for item in value]
    if dataclasses.is_dataclass(value):
        return plain_dataclass(value)
    return copy.deepcopy(value)


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return isinstance(value, (int, float))
    if origin is list:
        return isinstance(value, list)
    if origin is Literal:
        return value in args
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)



def plain_dataclass(instance: Any) -> dict[str, Any]:
    """A dataclass instance as a plain dict of YAML types (epsilons as ``k/255`` when exact)."""
    hints = hints_of(type(instance))
    return {item.name: plain(getattr(instance, item.name), hints[item.name]) for item in dataclasses.fields(instance)}
