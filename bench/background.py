"""A background load for the benchmarks: one busy process beside the measured one, for as long as a block runs.

The process is a pure-Python loop (one core kept busy, no threads of its own), the simplest stand-in for what
shares a laptop's or a node's cores with an evaluation: a data loader worker, another run, a browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def busy_process(enabled: bool = True) -> Iterator[int | None]:
    """Runs one CPU-bound process during the block (nothing when ``enabled`` is False); yields its pid or None.

    The process is stopped (terminate, then kill) when the block ends, also when it raises.
    """
    if not enabled:
        yield None
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_average() -> str:
    """The 1-minute load average and the CPU count, e.g. ``load 1.9 on 2 CPUs`` (``n/a`` where unknown)."""
    try:
        return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "load n/a"
