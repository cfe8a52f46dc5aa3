"""Confidence intervals for accuracies measured on a sample.

Robust accuracy during training is often measured on a few hundred images; the Wilson score interval keeps
that honest (it stays inside [0, 1] and behaves at 0 and n, unlike the normal approximation). Written here
because it is five lines; scipy/statsmodels would be a heavy dependency for it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from robustft.errors import ConfigError


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n.

    Args:
        k: successes (e.g. robust samples), 0 <= k <= n.
        n: trials (samples evaluated).
        confidence: two-sided confidence level in (0, 1).

    Returns:
        (low, high) within [0, 1]. With n == 0 nothing is known: (0.0, 1.0).

    Raises:
        ConfigError: k or n negative, k > n, or confidence outside (0, 1).
    """
    if n < 0 or k < 0 or k > n:
        raise ConfigError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}.")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), like 0.95; got {confidence}.")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp float round-off; at k == 0 (k == n) the exact bound is 0 (1).
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high
