"""Perturbation sizes as users write them.

Epsilons are in pixel units of images in [0, 1]. Users write ``4/255``, ``0.0157`` or ``0``; writing ``8``
(the 0-255 habit) is caught with a suggestion, because silently attacking at eps=8 on [0,1] images reports
every model as non-robust.
"""

from __future__ import annotations

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
        text = str(value).strip()
        try:
            eps = float(Fraction(text.replace(" ", "")))
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
    """Evenly spaced epsilons 0, step, ..., eps_max (inclusive; eps_max is appended if not on the grid)."""
    n = int(round(eps_max / step))
    grid = [i * step for i in range(n + 1)]
    if abs(grid[-1] - eps_max) > 1e-9:
        grid.append(eps_max)
    return grid
