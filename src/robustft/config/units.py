"""Perturbation sizes as users write them, and metric names as robustft prints them.

Epsilons are in pixel units of images in [0, 1]. Users write ``4/255``, ``0.25/255``, ``0.0157`` or ``0``; writing
``8`` (the 0-255 habit) is caught with a suggestion, because silently attacking at eps=8 on [0,1] images reports
every model as non-robust. :func:`parse_eps` is the one parser (command line, configs, ``robust_accuracy(...,
"0.25/255")``) and :func:`format_eps` the one formatter (printed tables, metric names, ``summary.json`` keys).
Attack step sizes are written the same way (``0.25/255``) or relative to the eps the attack runs at
(``0.25eps``), which is what an attack evaluated at several eps (a robust curve) needs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from robustft.errors import ConfigError

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_EPS_TEXT = re.compile(rf"^(?P<num>[-+]?{_NUMBER})(?:/(?P<den>{_NUMBER}))?$")


def parse_eps(value: str | float | int, *, name: str = "eps") -> float:
    """Parses an epsilon in pixel units of [0, 1] images.

    Args:
        value: ``"4/255"``, ``"0.25/255"``, ``"0.0157"``, ``"1e-3"``, ``0.0157``, ``0`` or ``"0"``.
        name: what the value is called in error messages (``--eps``, ``eval.eps``).

    Returns:
        The epsilon as a float in [0, 1].

    Raises:
        ConfigError: for text that is not a number or fraction, negative or non-finite values, or values above 1
            (with the ``N/255`` the user most likely meant).
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number like 4/255, not {value!r}.")
    if isinstance(value, (int, float)):
        return check_eps_value(value, name=name)
    else:
        text = str(value).replace(" ", "")
        match = _EPS_TEXT.match(text)
        if match is None:
            raise ConfigError(f"{name}={value!r} is not a number; write it like 4/255, 0.25/255 or 0.0157.")
        # Fractions, not floats, so "0.25/255" is exactly 0.25 / 255 (the same float as writing 0.25/255 in Python).
        numerator, denominator = Fraction(match["num"]), Fraction(match["den"] or 1)
        if denominator == 0:
            raise ConfigError(f"{name}={value!r} divides by zero; write it like 4/255.")
        eps = float(numerator / denominator)
    return _in_unit_range(eps, value, name)


def check_eps_value(eps: float, *, name: str = "eps") -> float:
    """An epsilon that is a number already (parsed by the config, or given as a float): checked, not parsed.

    Returns ``float(eps)`` when it is finite and in [0, 1]; raises the same ConfigError as :func:`parse_eps`
    otherwise. Attacks call this on every eps they are handed, so a value parsed once by the config is never
    parsed again on its way to the attack.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise ConfigError(f"{name} must be a number like 4/255 (parsed with robustft.config.units.parse_eps), "
                          f"not {eps!r}.")
    return _in_unit_range(float(eps), eps, name)


def _in_unit_range(eps: float, value: object, name: str) -> float:
    if not math.isfinite(eps) or eps < 0:
        raise ConfigError(f"{name}={value!r} must be a finite non-negative number like 4/255 (0 means no attack).")
    if eps > 1:
        shown = f"{value:g}" if isinstance(value, (int, float)) else str(value).strip()
        raise ConfigError(
            f"{name}={value!r} is larger than 1, but images are in [0, 1]. Did you mean {shown}/255 "
            f"(= {eps / 255:.5f})?"
        )
    return eps


def format_eps(eps: float) -> str:
    """An epsilon as users write it: ``1/255``, ``0.25/255``, ``0.0157``, ``0``.

    Multiples of 1/255 print as ``k/255``; a value with a short decimal form (``0.0157``, ``0.1``, an L2 radius
    ``1.5``) prints as that decimal; other multiples of 0.01/255 print as ``0.25/255``; anything else with 5
    significant digits. ``parse_eps(format_eps(e))`` equals ``e`` up to float rounding (1e-9 relative) in all
    but the last case.
    """
    eps = float(eps)
    if eps == 0 or not math.isfinite(eps):
        return f"{eps:g}"
    k = eps * 255
    if eps < 1 and abs(k - round(k)) <= 1e-9 * k:
        return f"{round(k)}/255"
    short = f"{eps:.4g}"
    if float(short) == eps or eps >= 1:
        return short if float(short) == eps else f"{eps:.5g}"
    for digits in (1, 2):
        rounded = round(k, digits)
        if abs(k - rounded) <= 1e-9 * k:
            return f"{rounded:.{digits}f}/255"
    return f"{eps:.5g}"


def canonical_metric_key(key: str) -> str:
    """``key`` with its ``@eps`` part rewritten by :func:`format_eps`.

    Keys written before robustft printed ``@1/255`` used ``@0.003922`` (or ``@0.0039``); this maps either form
    (and ``@1/255`` itself) to today's key, so configs naming an old key (``checkpoint.best_metric``) and code
    reading old ``summary.json`` files keep working. A key whose eps part does not parse is returned unchanged.
    """
    base, sep, eps_text = key.partition("@")
    if not sep:
        return key
    try:
        eps = parse_eps(eps_text)
    except ConfigError:
        return key
    # Old keys kept 4-7 significant digits: snap to the k/255 (two decimals of k) they were rounded from.
    k = eps * 255
    snapped = round(k, 2)
    if snapped > 0 and abs(k - snapped) <= 5e-4 * max(1.0, k):
        eps = snapped / 255
    return f"{base}@{format_eps(eps)}"


def eps_grid(eps_max: float, step: float = 1 / 255) -> list[float]:
    """The multiples of ``step`` below ``eps_max``, then ``eps_max`` itself: ascending, never above eps_max.

    ``eps_grid(4/255)`` is 0, 1, 2, 3, 4 (/255); ``eps_grid(3.6/255)`` is 0, 1, 2, 3 (/255), 3.6/255. The last
    point is ``eps_max`` exactly (not ``k * step``, which may differ in the last bit), so a curve ends at the
    radius that was asked for.
    """
    if eps_max < 0 or step <= 0:
        raise ConfigError(f"eps_grid needs eps_max >= 0 and step > 0, got eps_max={eps_max}, step={step}.")
    # Floor, with a relative tolerance so 4/255 / (1/255) = 3.9999999... still counts as on the grid.
    below = int(eps_max / step * (1 + 1e-9))
    grid = [i * step for i in range(below + 1) if i * step < eps_max * (1 - 1e-9)]
    return [*grid, eps_max] if grid or eps_max > 0 else [0.0]


_RELATIVE_STEP = re.compile(r"^\s*(?:(?P<ratio>\d+(?:\.\d*)?(?:/\d+(?:\.\d*)?)?|\.\d+)\s*\*?\s*)?eps"
                            r"(?:\s*/\s*(?P<divisor>\d+(?:\.\d*)?))?\s*$")


@dataclass(frozen=True)
class RelativeStep:
    """A step size relative to the eps the attack runs at: ``ratio * eps`` (``"0.25eps"`` -> ratio 0.25).

    Attributes:
        ratio: the multiple of eps, > 0.
        written: how the user wrote it (``"eps/4"``), kept for config.yaml and messages; not compared.
    """

    ratio: float
    written: str = field(default="", compare=False)

    def at(self, eps: float) -> float:
        """The step in pixel units at radius ``eps``."""
        return self.ratio * eps

    def __str__(self) -> str:
        return self.written or f"{self.ratio:g}eps"


# A step size as the config holds it: pixel units (a float) or relative to eps. Parsed once, by parse_step_size.
StepSize = float | RelativeStep


def relative_step(value: object) -> float | None:
    """The ratio of a step size written relative to eps, or None when ``value`` is not written that way.

    ``"0.25eps"``, ``"0.25*eps"``, ``"1/4 eps"`` and ``"eps/4"`` all give 0.25; ``0.001`` and ``"0.25/255"`` give
    None (absolute step sizes). A :class:`RelativeStep` gives its ratio.
    """
    if isinstance(value, RelativeStep):
        return value.ratio
    if not isinstance(value, str):
        return None
    match = _RELATIVE_STEP.match(value)
    if match is None:
        return None
    ratio = float(Fraction(match["ratio"])) if match["ratio"] else 1.0
    if match["divisor"]:
        divisor = float(match["divisor"])
        ratio = ratio / divisor if divisor else float("inf")
    return ratio


def parse_step_size(value: str | float | RelativeStep, *, name: str = "step_size") -> StepSize:
    """The one parser of attack step sizes: ``"0.25/255"``/``0.001`` -> a float in pixel units, ``"0.25eps"`` ->
    :class:`RelativeStep`. A float or RelativeStep is checked and returned as it is.

    Raises:
        ConfigError: not a positive number, fraction or ``<ratio>eps``; the message says how to write one.
    """
    hint = "write it in pixel units like 0.25/255 or relative to eps like 0.25eps"
    ratio = relative_step(value)
    if ratio is None:
        try:
            step = parse_eps(value, name=name)  # type: ignore[arg-type]  # a float or its text
        except ConfigError as error:
            raise ConfigError(f"{error} A step size may also be relative to eps, like 0.25eps.") from None
        if step <= 0:
            raise ConfigError(f"{name}={value!r} must be positive; {hint}.")
        return step
    if not 0 < ratio < float("inf"):
        raise ConfigError(f"{name}={value!r} is not a positive multiple of eps; {hint}.")
    if isinstance(value, RelativeStep):
        return value
    return RelativeStep(ratio, str(value).strip())


def step_in_pixels(step_size: StepSize | str, eps: float, *, name: str = "step_size") -> float:
    """An attack step size in pixel units at radius ``eps``.

    Args:
        step_size: pixel units (``0.25/255``, ``0.001``) or relative to eps (a :class:`RelativeStep`, or its text
            ``"0.25eps"`` from a Python caller: 0.25 * eps). Text is parsed by :func:`parse_step_size`.
        eps: the radius the attack runs at, pixel units.
        name: what the value is called in error messages.

    Returns:
        The step in pixel units, > 0 (for a relative step, at eps > 0).

    Raises:
        ConfigError: not a positive number, fraction or ``<ratio>eps``.
    """
    if isinstance(step_size, str):
        step_size = parse_step_size(step_size, name=name)
    step = step_size.at(eps) if isinstance(step_size, RelativeStep) else check_eps_value(step_size, name=name)
    if step <= 0:
        raise ConfigError(f"{name}={step_size!s} must be positive; write it in pixel units like 0.25/255 or "
                          "relative to eps like 0.25eps.")
    return step
