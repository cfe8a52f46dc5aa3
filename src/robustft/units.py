"""Perturbation sizes as users write them.

Epsilons are in pixel units of images in [0, 1]. Users write ``4/255``, ``0.0157`` or ``0``; writing ``8``
(the 0-255 habit) is caught with a suggestion, because silently attacking at eps=8 on [0,1] images reports
every model as non-robust. Attack step sizes are written the same way (``0.25/255``) or relative to the eps the
attack runs at (``0.25eps``), which is what an attack evaluated at several eps (a robust curve) needs.
"""

from __future__ import annotations

import re
from fractions import Fraction

from robustft.errors import ConfigError


def parse_eps(value: str | float | int, *, name: str = "eps") -> float:
    """Parses an epsilon in pixel units of [0, 1] images.

    Args:
        value: ``"4/255"``, ``"0.0157"``, ``0.0157``, ``0`` or ``"0"``.
        name: what the value is called in error messages.

    Returns:
        The epsilon as a float in [0, 1].

    Raises:
        ConfigError: for text that is not a number or fraction, negative values, or values above 1 (with the
            ``N/255`` the user most likely meant).
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number like 4/255, not {value!r}.")
    if isinstance(value, (int, float)):
        eps = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        try:  # Fraction("0.25/255") is refused, so the two sides are read separately
            numerator, _, denominator = text.partition("/")
            eps = float(Fraction(numerator) / Fraction(denominator or 1))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"{name}={value!r} is not a number; write it like 4/255 or 0.0157.") from None
    if eps != eps or eps < 0:
        raise ConfigError(f"{name}={value!r} must be a non-negative number like 4/255.")
    if eps > 1:
        shown = f"{value:g}" if isinstance(value, (int, float)) else str(value).strip()
        raise ConfigError(
            f"{name}={value!r} is larger than 1, but images are in [0, 1]. Did you mean {shown}/255 "
            f"(= {eps / 255:.5f})?"
        )
    return eps


def format_eps(eps: float) -> str:
    """Formats an epsilon as ``k/255`` when it is (nearly) a multiple of 1/255, else with 5 decimals."""
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255" if round(k) else "0"
    return f"{eps:.5f}"


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


def relative_step(value: object) -> float | None:
    """The ratio of a step size written relative to eps, or None when ``value`` is not written that way.

    ``"0.25eps"``, ``"0.25*eps"``, ``"1/4 eps"`` and ``"eps/4"`` all give 0.25; ``0.001`` and ``"0.25/255"`` give
    None (absolute step sizes).
    """
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


def step_in_pixels(step_size: float | str, eps: float, *, name: str = "step_size") -> float:
    """An attack step size in pixel units at radius ``eps``.

    Args:
        step_size: pixel units (``0.25/255``, ``0.001``) or relative to eps (``"0.25eps"``: 0.25 * eps).
        eps: the radius the attack runs at, pixel units.
        name: what the value is called in error messages.

    Returns:
        The step in pixel units, > 0.

    Raises:
        ConfigError: not a positive number, fraction or ``<ratio>eps``.
    """
    ratio = relative_step(step_size)
    hint = "write it in pixel units like 0.25/255 or relative to eps like 0.25eps"
    if ratio is None:
        try:
            step = parse_eps(step_size, name=name)
        except ConfigError as error:
            raise ConfigError(f"{error} A step size may also be relative to eps, like 0.25eps.") from None
    elif not 0 < ratio < float("inf"):
        raise ConfigError(f"{name}={step_size!r} is not a positive multiple of eps; {hint}.")
    else:
        step = ratio * eps
    if step <= 0:
        raise ConfigError(f"{name}={step_size!r} must be positive; {hint}.")
    return step
