"""``robustft tune``'s search space: ``--search KEY=DIST`` parsed and checked against the config before Ray starts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from robustft.config.files import load_config
from robustft.errors import ConfigError, RobustftError
from robustft.sweep.grid import split_values

DEFAULT_SEARCH = ("optim.lr=loguniform:1e-5:1e-1", "optim.weight_decay=loguniform:1e-5:1e-1")
KINDS = ("loguniform", "uniform", "choice")


@dataclass(frozen=True)
class Distribution:
    """One searched key: ``loguniform:a:b`` (0 < a < b), ``uniform:a:b`` (a < b) or ``choice:x,y,z``."""

    kind: str
    low: float = math.nan
    high: float = math.nan
    choices: tuple[str, ...] = ()

    def to_ray(self) -> Any:
        from ray import tune

        if self.kind == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.kind == "uniform":
            return tune.uniform(self.low, self.high)
        return tune.choice(list(self.choices))

    def describe(self) -> str:
        """The distribution as written: ``loguniform:1e-05:0.1``, ``choice:full,lora``."""
        if self.kind == "choice":
            return "choice:" + ",".join(self.choices)
        return f"{self.kind}:{self.low!r}:{self.high!r}"

    def examples(self) -> list[str]:
        """Values validated against the config before anything runs: both ends, or every choice."""
        return list(self.choices) if self.kind == "choice" else [repr(self.low), repr(self.high)]


def _number(text: str, item: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--search {item!r}: {text!r} is not a number; write e.g. optim.lr=loguniform:1e-5:1e-1."
                          ) from None


def parse_distribution(text: str, item: str = "") -> Distribution:
    """``loguniform:1e-5:1e-1`` / ``uniform:0:0.3`` / ``choice:full,lora`` -> a Distribution.

    Raises:
        ConfigError: an unknown kind, a missing or non-numeric bound, low >= high, a non-positive log-uniform
            bound, or an empty choice.
    """
    item = item or text
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise ConfigError(f"--search {item!r}: unknown distribution {kind!r}; use loguniform:a:b, uniform:a:b or "
                          "choice:x,y,z.")
    if kind == "choice":
        choices = tuple(split_values(rest))
        if not choices:
            raise ConfigError(f"--search {item!r}: choice needs values, e.g. strategy.name=choice:full,lora.")
        return Distribution(kind, choices=choices)
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise ConfigError(f"--search {item!r}: {kind} needs two bounds, e.g. {kind}:1e-5:1e-1.")
    low, high = (_number(b, item) for b in bounds)
    if not low < high:
        raise ConfigError(f"--search {item!r}: the lower bound must be below the upper one ({low} >= {high}).")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"--search {item!r}: loguniform bounds must be positive; use uniform for a range from 0.")
    return Distribution(kind, low, high)


def parse_search(items: Sequence[str]) -> dict[str, Distribution]:
    """``["optim.lr=loguniform:1e-5:1e-1", ...]`` -> ``{"optim.lr": Distribution}`` (empty: paper B's default)."""
    search: dict[str, Distribution] = {}
    for item in items or DEFAULT_SEARCH:
        key, sep, dist = item.partition("=")
        key = key.strip()
        if not sep or not key or not dist.strip():
            raise ConfigError(f"--search {item!r} is not KEY=DIST; e.g. --search optim.lr=loguniform:1e-5:1e-1.")
        if key in search:
            raise ConfigError(f"--search key {key!r} is given twice.")
        search[key] = parse_distribution(dist.strip(), item)
    return search


def check_search(config: str | Path, search: Mapping[str, Distribution], fixed: Sequence[str], metric: str) -> Any:
    """Loads the base config with every example value of every searched key, so that a bad key or bound fails
    here, before Ray starts. Returns the base Config (with ``fixed``)."""
    base = load_config(config, list(fixed))
    for key, dist in search.items():
        for value in dist.examples():
            try:
                load_config(config, [*fixed, f"{key}={value}"])
            except RobustftError as error:
                raise ConfigError(f"--search {key}: the value {value} does not make a valid config: {error}") from None
    split = metric.split("/")[0]
    if metric.count("/") < 2 or (split not in base.eval.splits and split != "optim"):
        raise ConfigError(f"--metric {metric!r} is not recorded by this config (splits {base.eval.splits}); use a "
                          "record key such as val/clean/accuracy, with its split in eval.splits.")
    return base
