"""Keeps freed memory in the process instead of handing it back to the OS (glibc's malloc), set at import.

Why: an attack or a training step allocates and frees the same activations over and over (MobileNetV2 at 32 px
and a batch of 128: tensors of 0.1-12 MB). glibc serves blocks above its mmap threshold (128 KB, raised
dynamically up to 32 MB as blocks are freed) with fresh ``mmap`` pages and trims the heap's free top back to the
OS; either way the next pass touches new pages and pays a page fault for every 4 KB. How often that happens
depends on what the process ran before, so the same attack's speed moved with its history. Measured on the
embedded MobileNetV2 (PGD-10 through ``robust_accuracy`` at 60% robust accuracy, batch 256, 2 threads, idle,
2026-12-06): alone in a fresh process 777-779 ms per call with 62-69 thousand minor page faults per call; with
these settings 674-686 ms and 8-15 faults. torchattacks' PGD on the same model went from 1,342 ms (fresh) to
1,935 ms after robustft had run in the same process at one thread (page faults again), which made
``bench attacks`` flatter robustft by up to 1.45x; with these settings both sides stay at their fault-free speed
whatever ran before.

What: ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` (glibc's largest; blocks below it come from the heap and are reused;
setting it also stops the dynamic threshold) and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)`` (free heap is given back
only above 1 GiB). The cost: the process keeps its peak heap (a few hundred MB for an attack on 32 px images).
Written by hand because it is two ``mallopt`` calls through ``ctypes``; no library wraps them. Not glibc (macOS,
musl, Windows): nothing is done. ``ROBUSTFT_MALLOC=keep`` leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV = "ROBUSTFT_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc refuses larger values on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Applies the settings above once per process. Returns whether glibc accepted both (False: left as it was)."""
    if os.environ.get(ENV, "") == "keep" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
