"""Side-by-side timing: every figure is a ratio against a reference measured in the same run.

These machines are noisy (2 shared cores), so an absolute time means little. ``compare`` warms every
candidate up, then runs them in interleaved rounds (A B C, A B C, ...) so that a slow spell hits all of them,
and reports the median over rounds of each candidate's time divided by the reference's time in that round.
It also counts each call's minor page faults (``getrusage``; 0 where not available): a side that page-faults its
activations in anew on every call measures the allocator's state as much as its own work (robustft/allocator.py).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    """Median seconds per call, median ratio to the reference (time / reference time) and median minor page
    faults per call, over the rounds."""

    name: str
    seconds: float
    ratio_to_reference: float
    page_faults: float = 0.0


def compare(candidates: dict[str, Callable[[], object]], reference: str, rounds: int = 5,
            warmup: int = 1, max_seconds: float | None = None) -> dict[str, Timing]:
    """Times each callable ``rounds`` times, interleaved, after ``warmup`` untimed calls each.

    Args:
        candidates: name -> zero-argument callable doing one unit of work.
        reference: the name whose time is the denominator of every ratio.
        rounds: timed calls per candidate.
        warmup: untimed calls per candidate before timing.
        max_seconds: stop after the round that passes this much timed time (but never before 2 rounds), so
            a setting where one side is very slow does not dominate a benchmark's run time.

    Returns:
        name -> Timing (the reference's ratio is 1.0).
    """
    if reference not in candidates:
        raise KeyError(f"reference {reference!r} is not among the candidates {sorted(candidates)}")
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    faults: dict[str, list[int]] = {name: [] for name in candidates}
    for done in range(1, rounds + 1):
        for name, fn in candidates.items():
            _sync()
            before = _minor_faults()
            start = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - start)
            faults[name].append(_minor_faults() - before)
        if max_seconds is not None and done >= 2 and sum(map(sum, times.values())) > max_seconds:
            break
    ref = times[reference]
    return {
        name: Timing(name, statistics.median(ts), statistics.median(t / r for t, r in zip(ts, ref, strict=True)),
                     statistics.median(faults[name]))
        for name, ts in times.items()
    }


def _minor_faults() -> int:
    """Minor page faults of this process so far (all its threads); 0 where ``resource`` does not exist."""
    if sys.platform == "win32":
        return 0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def report_line(label: str, value: float, target: str, ok: bool) -> str:
    """One printed benchmark figure: ``label: value (target ...) PASS|MISS``."""
    return f"{label}: {value:.2f}x (target {target}) {'PASS' if ok else 'MISS'}"
