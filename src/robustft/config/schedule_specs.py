"""What the config's schedule fields may say: eps schedule names (and paper B's aliases), ``eval.schedule`` grammar.

The schedules themselves are pure functions of the step in ``robustft.training.schedules``, registered there under
:data:`EPS_SCHEDULE_NAMES` (tests/test_schedules.py checks that the two agree). The names and the grammar live here,
in the config package, so that validating a config imports no trainer and the schedules import no config tree.
"""

from __future__ import annotations

import math
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


# Schedules whose ramp is set by eps.t1 / eps.t2 (``linear`` reads only t2: its T1 is 0).
RAMP_SCHEDULES: tuple[str, ...] = ("scheduled", "linear")


def check_ramp_within_run(schedule: str, t1: int | float, t2: int | float, per: str, total: int,
                          length: str) -> None:
    """Refuses a ramp that a whole-count T1 or T2 puts beyond the run (fractions alone always fit: they scale).

    With ``eps.t1: 12, eps.t2: 37`` (paper B's epochs of 50) and ``train.epochs=10``, eps would be 0 in every epoch:
    standard fine-tuning under the name ``scheduled``; with ``train.epochs=20`` it would stop at 7/25 of eps_g.
    eps(t) > 0 from t = T1 + 1 (alpha(T1) = 0), or from T2 for a jump (T1 = T2); eps_g is reached at T2, and
    T2 = the run's length (the end of training) is accepted.

    Args:
        schedule: the schedule name; only ``scheduled`` and ``linear`` (T1 = 0) have a ramp.
        t1, t2: the config's durations (int counts in the unit of ``per``, or float fractions of ``total``).
        per: ``epoch`` or ``step``, the unit of int durations.
        total: the run's length in that unit (t = 0 .. total - 1 are trained), >= 1.
        length: how the run's length was given, for the message (``train.epochs=10``).

    Raises:
        ConfigError: eps would be 0 at every trained t, or T2 is after the run's end (eps_g never reached).
    """
    schedule = canonical_eps_schedule(schedule)
    if schedule not in RAMP_SCHEDULES:
        return
    t1 = 0 if schedule == "linear" else t1
    counts = [isinstance(v, int) and not isinstance(v, bool) for v in (t1, t2)]
    if not any(counts):
        return
    first, second = (v if count else math.floor(v * total + 1e-9) for v, count in zip((t1, t2), counts, strict=True))
    last = total - 1
    never = first >= last and second > last  # alpha(t) = 0 for every trained t (alpha(T1) = 0, then T2 is too late)
    late_end = counts[1] and second > total
    if not (never or late_end):
        return
    where = f"the run trains {per}s 0-{last} ({length})"
    if never:
        what = (f"eps.t1={t1} and eps.t2={t2} keep eps at 0 through {per} {last}, and {where}, so eps would be 0 "
                f"throughout: standard fine-tuning under the name {schedule!r}")
    else:
        reached = (last - first) / (second - first)
        what = (f"eps.t2={t2} reaches eps.value at {per} {second}, but {where}, so eps would never reach eps.value "
                f"(it would stop at {max(0.0, reached):.0%} of it)")
    within = f"eps.t2 <= {total}" if schedule == "linear" else f"eps.t1 < {last} and eps.t2 <= {total}" \
        if last > 0 else "a single epoch holds none: eps.t1=0 eps.t2=0 is constant eps"
    raise ConfigError(
        f"{what}. Give T1 and T2 as fractions of training, which scale with its length: eps.t1=0.25 eps.t2=0.75 "
        f"(paper B's 12 and 37 of 50 epochs), or counts within the run ({within})."
    )


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
