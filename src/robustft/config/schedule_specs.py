"""What the config's schedule fields may say: eps schedule names (and paper B's aliases), ``eval.schedule`` grammar.

The schedules themselves are pure functions of the step in ``robustft.training.schedules``, registered there under
:data:`EPS_SCHEDULE_NAMES` (tests/test_schedules.py checks that the two agree). The names and the grammar live here,
in the config package, so that validating a config imports no trainer and the schedules import no config tree.
"""

from __future__ import annotations

import re
from typing import Any

from robustft.errors import ConfigError

# The eps schedules robustft.training.schedules registers.
EPS_SCHEDULE_NAMES: tuple[str, ...] = ('auto', 'constant', 'linear', 'scheduled', 'uniform', 'zero')

# Paper B's names, accepted wherever a schedule is named (config, overrides, sweeps): its baseline is RFT-fix
# (constant eps_g), its method Epsilon-Scheduling, and T1 = 0 its linear warm-up.
EPS_SCHEDULE_ALIASES: dict[str, str] = {
    "fix": "constant",
    "rft-fix": "constant",
    "epsilon-scheduling": "scheduled",
    "linear-warmup": "linear",
}


def canonical_eps_schedule(name: str) -> str:
    """The schedule name ``name`` stands for (itself unless it is one of paper B's aliases)."""
    return EPS_SCHEDULE_ALIASES.get(name, name)


_EVERY = re.compile(r"^every:\s*(\d+)$")
_STEPS = re.compile(r"^steps:\s*\[([\d,\s]*)\]$")


def parse_evaluation_spec(spec: str) -> tuple[str, Any]:
    """Parses an evaluation-schedule spec into (kind, argument); raises ConfigError naming the valid forms."""
    text = str(spec).strip()
    if text in ("paper-a", "epoch"):
        return text, None
    match = _EVERY.match(text)
    if match:
        interval = int(match.group(1))
        if interval < 1:
            raise ConfigError(f"eval.schedule={spec!r}: the interval must be at least 1 step, e.g. every:100.")
        return "every", interval
    match = _STEPS.match(text)
    if match:
        steps = [int(s) for s in match.group(1).replace(" ", "").split(",") if s]
        return "steps", sorted(set(steps))
    raise ConfigError(
        f"eval.schedule={spec!r} is not a schedule. Valid: paper-a (paper A's log-like steps), every:N "
        "(every N steps), epoch (end of each epoch), steps:[0,10,50] (explicit steps)."
    )
