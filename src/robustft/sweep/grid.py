"""A sweep's grid: ``--grid key=v1,v2,...`` items -> the named points of their cartesian product.

Run names: ``<config name>-<key>-<value>-...`` with ``.name`` suffixes dropped from keys and every character
outside letters, digits, ``.``, ``_``, ``+`` and ``-`` of a value replaced by ``_`` (so ``eps.value=1/255`` gives
``...-eps.value-1_255``); these are exactly the characters a run name may use (``robustft.config``). Points are
in the order the grid gives its keys and values; ``--seeds N`` adds a last ``seed`` axis.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from robustft.errors import ConfigError


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its name and the overrides that distinguish it from the base config."""

    name: str
    overrides: tuple[str, ...]
    note: str | None = None  # what resolving the point changed (strategy options dropped: robustft.sweep.check)


def split_values(text: str) -> list[str]:
    """Splits ``a,b,[c,d]`` on top-level commas (commas inside [] or {} belong to a YAML list or mapping)."""
    values, depth, current = [], 0, []
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    values.append("".join(current).strip())
    return [v for v in values if v]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """Parses ``key=v1,v2,...`` items into an ordered ``{key: [values]}``.

    Raises:
        ConfigError: an item without ``=``, without values, or a key given twice.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"grid item {item!r} is not key=v1,v2,...; e.g. --grid strategy.name=full,lora")
        values = split_values(rest)
        if not values:
            raise ConfigError(f"grid item {item!r} has no values; e.g. --grid eps.schedule=constant,scheduled")
        if key in grid:
            raise ConfigError(f"grid key {key!r} is given twice; list all its values in one --grid {key}=a,b")
        grid[key] = values
    return grid


def add_seed_axis(grid: dict[str, list[str]], seeds: int | None) -> dict[str, list[str]]:
    """``--seeds N``: the grid with a last ``seed`` axis 0..N-1 (None: the grid unchanged).

    Last, so a point's seeds sit next to each other and the run names read ``...-seed-0``, ``...-seed-1``;
    analysis groups runs by everything but the seed (``robustft.analysis.seed_stats``).

    Raises:
        ConfigError: N < 1, or a ``seed`` axis given with ``--grid`` as well.
    """
    if seeds is None:
        return dict(grid)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be a positive number of seeds, got {seeds!r}; e.g. --seeds 3.")
    if "seed" in grid:
        raise ConfigError("both --seeds and --grid seed=... are given; keep one (--grid seed=3,7,11 for chosen "
                          "seeds, --seeds N for 0..N-1).")
    return {**grid, "seed": [str(i) for i in range(seeds)]}


def _slug(key: str, value: str) -> str:
    key = key.removesuffix(".name")
    text = f"{key}-{value}"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")


def expand_grid(base_name: str, grid: dict[str, list[str]]) -> list[SweepPoint]:
    """Every combination of the grid's values, named ``base-key-value-...`` (``.name`` suffixes dropped).

    An empty grid gives the base config alone.
    """
    keys = list(grid)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        overrides = tuple(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        name = "-".join([base_name, *(_slug(k, v) for k, v in zip(keys, combo, strict=True))])
        points.append(SweepPoint(name, overrides))
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ConfigError("two grid points map to the same run name; use values that differ in letters or digits")
    return points
