"""``robustft tune``'s search space and metric: ``--search KEY=DIST`` parsed and checked against the config before Ray
starts, and the trial-only overrides under which the config records ``--metric``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from robustft.config.files import load_config
from robustft.config.presets import ATTACK_PRESETS
from robustft.config.units import format_eps, parse_eps
from robustft.errors import ConfigError, RobustftError
from robustft.sweep.grid import split_values

# The clean-accuracy protocol's space (robustft.sweep.tune_protocol; paper-b's is there)
DEFAULT_SEARCH = ("optim.lr=loguniform:1e-5:1e-1", "optim.weight_decay=loguniform:1e-5:1e-1")
KINDS = ("loguniform", "uniform", "choice")
_DATA_SPLITS = ("train", "val", "test")


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
    """``["optim.lr=loguniform:1e-5:1e-1", ...]`` -> ``{"optim.lr": Distribution}`` (empty: DEFAULT_SEARCH)."""
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
    here, before Ray starts, and checks that ``metric`` can be recorded (:func:`metric_overrides`). Returns the base
    Config (with ``fixed``)."""
    base = load_config(config, list(fixed))
    for key, dist in search.items():
        for value in dist.examples():
            try:
                load_config(config, [*fixed, f"{key}={value}"])
            except RobustftError as error:
                raise ConfigError(f"--search {key}: the value {value} does not make a valid config: {error}") from None
    metric_overrides(base, metric)
    return base


def eval_attack_name(cfg: Any) -> str:
    """The attack name the evaluator writes in its records (a preset such as ``paper-b`` resolved)."""
    name = str(cfg.eval.attack.name)
    return str(ATTACK_PRESETS[name]["name"]) if name in ATTACK_PRESETS else name


def _parse_metric(metric: str) -> tuple[str, str, str, float | None]:
    """``val/apgd-ce/loss@4/255`` -> ("val", "apgd-ce", "loss", 4/255)."""
    base, at, eps_text = metric.partition("@")
    parts = base.split("/")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"--metric {metric!r} is not a record key split/attack/metric[@eps]; e.g. "
                          "val/clean/accuracy or val/apgd-ce/loss@4/255.")
    try:
        eps = parse_eps(eps_text) if at else None
    except (RobustftError, ValueError):
        raise ConfigError(f"--metric {metric!r}: {eps_text!r} is not an eps; write it as 4/255.") from None
    return parts[0], parts[1], parts[2], eps


def metric_overrides(cfg: Any, metric: str) -> list[str]:
    """Overrides for the trials only (not written to best.yaml) under which ``cfg`` records ``metric``.

    The validation split is added to eval.splits when the data hold it out (``data.val_fraction > 0``: paper A's
    configs hold out 10% of train but evaluate train and test only), a loss's split to eval.loss, and a robust
    metric's eps to eval.eps. Anything else the config does not record is refused, naming an override that works.

    Raises:
        ConfigError: a metric no override can make recorded.
    """
    split, attack, name, eps = _parse_metric(metric)
    if split == "optim":
        return []
    splits = list(cfg.eval.splits)
    out: list[str] = []
    if split not in _DATA_SPLITS:
        raise ConfigError(f"--metric {metric!r}: tune reads a data split ({', '.join(_DATA_SPLITS)}) or optim; "
                          "tune on the validation split, e.g. --metric val/clean/accuracy.")
    if split not in splits:
        if split == "val" and float(cfg.data.val_fraction) <= 0:
            raise ConfigError(f"--metric {metric!r} reads the validation split, which this config does not hold out "
                              "(data.val_fraction=0); add --set data.val_fraction=0.1 (paper A holds out 10% of the "
                              "training data), and tune evaluates it in its trials.")
        if split != "val":
            raise ConfigError(f"--metric {metric!r}: eval.splits={splits} does not evaluate {split}; add --set "
                              f"eval.splits=[{','.join([*splits, split])}], or tune on the validation split (--metric "
                              f"val/{metric.split('/', 1)[1]}).")
        splits.append(split)
        out.append(f"eval.splits=[{','.join(splits)}]")
    if name == "loss" and split not in cfg.eval.loss:
        out.append(f"eval.loss=[{','.join([*cfg.eval.loss, split])}]")
    if attack != "clean" and name in ("loss", "accuracy"):
        out += _attack_overrides(cfg, metric, attack, eps)
    return out


def _attack_overrides(cfg: Any, metric: str, attack: str, eps: float | None) -> list[str]:
    """eval.eps with the metric's eps added when it is not there; a metric under another attack is refused."""
    evaluated = eval_attack_name(cfg)
    if attack != evaluated:
        raise ConfigError(f"--metric {metric!r}: this config evaluates with {evaluated} (eval.attack), not {attack}; "
                          f"use --metric {metric.replace(attack, evaluated, 1)}.")
    if eps is None or eps <= 0:
        raise ConfigError(f"--metric {metric!r} names an attack without its eps; e.g. --metric "
                          f"{metric}@{format_eps(float(cfg.eps.value))}.")
    known = [float(e) for e in cfg.eval.eps]
    if any(abs(e - eps) <= 1e-9 * max(1.0, eps) for e in known):
        return []
    return [f"eval.eps=[{','.join(format_eps(e) for e in sorted([*known, eps]))}]"]
