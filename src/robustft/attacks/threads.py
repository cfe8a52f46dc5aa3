"""How many CPU threads an attack uses: as many as there are CPUs actually free, not as many as exist.

Why (measured on 2 cores, torch 2.x, whose CPU intra-op pool is GNU OpenMP; bench/bench_attacks.py shows it):
an OpenMP thread that reaches the end of a parallel region waits for the others by spinning, and every
convolution, activation and reduction of a forward or backward pass is one such region, ending in a barrier.
On an idle machine that is what makes two threads fast. When other processes keep the cores busy, the spinning
thread burns the share of CPU the scheduler grants it while the thread holding the rest of the work waits in the
run queue behind the other processes, and every barrier waits for that slowest thread: a forward+backward pass
of the embedded MobileNetV2 (batch 256, 32 px) took 0.16-0.31 s with one thread and 1.8-6.0 s with two at load
7-9 (0.27-0.39 s with two under ``OMP_WAIT_POLICY=PASSIVE``, which cannot be changed once torch is loaded). The
time then depends on how often the threads meet, not on the work, so every speed-up robustft's fast paths give
(fewer layers after folding, channels_last convolutions, early stop) turned into noise: side by side with
torchattacks the ratio swung from above 2x to below 1x between runs.

So while an attack or a robust evaluation runs (``attack_threads``), torch's intra-op thread count is lowered to
the CPUs left free by everything else: idle time over a short window of the CPUs this process may run on
(``/proc/stat``, ``os.sched_getaffinity``), capped by a cgroup CPU quota; then restored. The number is measured
at most every ``REPROBE_SECONDS`` (about 0.5% of the time when attacks run back to back) and never raised above
torch's setting. ``ROBUSTFT_THREADS``: ``auto`` (default), ``keep`` (always torch's setting) or a count.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from robustft.errors import ConfigError

ENV = "ROBUSTFT_THREADS"
WINDOW_SECONDS = 0.05  # 5 clock ticks per CPU at 100 Hz: resolution 0.2 CPU on 2 cores
REPROBE_SECONDS = 10.0
# A thread needs most of a core: one that shares its core with a busy process is the straggler every barrier
# waits for. floor(free + SLACK) turns 1.7 free CPUs (an idle machine read coarsely) into 2 threads, 1.3 into 1.
SLACK = 0.3

Snapshot = dict[int, tuple[int, int]]  # cpu -> (idle ticks, total ticks)

_cache: dict[str, float] = {}


def read_proc_stat(text: str, cpus: set[int]) -> Snapshot:
    """Per-CPU (idle + iowait ticks, all ticks) from the text of ``/proc/stat``, for the CPUs in ``cpus``."""
    snapshot: Snapshot = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        snapshot[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return snapshot


def free_between(before: Snapshot, after: Snapshot, own_ticks: float = 0.0) -> float | None:
    """CPUs idle on average between two snapshots (0 .. number of CPUs), counting the ``own_ticks`` this process
    ran meanwhile as free (they are its own threads, not another process's); None when no tick passed."""
    idle = sum(after[c][0] - before[c][0] for c in after if c in before)
    total = sum(after[c][1] - before[c][1] for c in after if c in before)
    cpus = sum(1 for c in after if c in before)
    return min(cpus, (idle + max(own_ticks, 0.0)) / total * cpus) if total > 0 else None


def own_cpu_ticks() -> float:
    """CPU time this process (all its threads) has used, in the clock ticks ``/proc/stat`` counts in."""
    times = os.times()
    return (times.user + times.system) * os.sysconf("SC_CLK_TCK")


def parse_cpu_max(text: str) -> float | None:
    """CPUs a cgroup v2 ``cpu.max`` allows (``200000 100000`` means 2), None when unlimited (``max ...``)."""
    quota, period = text.split()[:2]
    return None if quota == "max" else int(quota) / int(period)


def _cgroup_quota() -> float | None:
    try:
        return parse_cpu_max(Path("/sys/fs/cgroup/cpu.max").read_text())
    except (OSError, ValueError):
        return None


def free_cpus(window: float = WINDOW_SECONDS, read: Callable[[], str] | None = None,
              own: Callable[[], float] = own_cpu_ticks) -> float | None:
    """CPUs left idle by every other process over ``window`` seconds (this one sleeps meanwhile); None if unknown.

    Counts only the CPUs this process may run on, and at most a cgroup CPU quota. ``read`` returns the text of
    ``/proc/stat`` (tests pass a fake); where it does not exist (macOS, Windows) the answer is None. ``own`` returns
    this process's CPU ticks so far: what its own threads use in the window counts as free. Right after a pass
    on two threads, torch's OpenMP workers keep spinning for a while; counted as busy, they made an idle 2-core
    machine read as 1.6-1.8 free CPUs, so the attack that followed ran on one thread (bench attacks, 2026-12-06:
    APGD-CE-10 at 30% and 60% robust on "2 idle threads" ran on one, 2.55x torchattacks against 3.47x on two).
    """
    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    if read is None:
        if not Path("/proc/stat").exists():
            return None
        read = Path("/proc/stat").read_text
    before, own_before = read_proc_stat(read(), cpus), own()
    time.sleep(window)
    free = free_between(before, read_proc_stat(read(), cpus), own() - own_before)
    quota = _cgroup_quota()
    return free if free is None or quota is None else min(free, quota)


def choose_threads(configured: int, free: float | None) -> int:
    """The thread count for ``free`` idle CPUs: at least 1, at most ``configured`` (torch's setting)."""
    if free is None:
        return configured
    return max(1, min(configured, math.floor(free + SLACK)))


def _requested(configured: int) -> int | None:
    """The count ``ROBUSTFT_THREADS`` fixes (None: measure)."""
    text = os.environ.get(ENV, "auto").strip().lower()
    if text in ("", "auto"):
        return None
    if text == "keep":
        return configured
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ConfigError(f"{ENV}={text!r} is not understood; use auto (threads = free CPUs, the default), keep "
                      "(torch's own setting) or a thread count such as 1.")


def planned_threads(probe: Callable[[], float | None] | None = None) -> int:
    """The intra-op thread count the next attack will use (measures at most every REPROBE_SECONDS)."""
    configured = torch.get_num_threads()
    requested = _requested(configured)
    if requested is not None:
        return requested
    if configured == 1:  # nothing to lower; no need to measure
        return 1
    now = time.monotonic()
    if now - _cache.get("at", -math.inf) > REPROBE_SECONDS or _cache.get("configured") != configured:
        free = (probe or free_cpus)()
        _cache.update(at=now, configured=configured, threads=choose_threads(configured, free))
    return int(_cache["threads"])


@contextmanager
def attack_threads(probe: Callable[[], float | None] | None = None) -> Iterator[int]:
    """Runs the block with torch's intra-op threads set to ``planned_threads()``; torch's setting restored after.

    ``probe`` returns the free CPUs (default ``free_cpus``, looked up at call time so tests can replace it). A
    nested block (an attack inside a robust evaluation) finds the count already lowered and keeps it, since the
    count is never raised above torch's setting. Yields the count used.
    """
    configured = torch.get_num_threads()
    threads = planned_threads(probe)
    try:
        if threads != configured:
            torch.set_num_threads(threads)
        yield threads
    finally:
        if torch.get_num_threads() != configured:
            torch.set_num_threads(configured)
