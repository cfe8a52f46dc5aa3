"""``import robustft`` enlarges oneDNN's kernel caches (an early-stopping attack's shrinking batch thrashes the
default 1,024 entries; see robustft/__init__.py) unless the user set them."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, robustft; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'], os.environ['LRU_CACHE_CAPACITY'])"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.split()


def test_import_sets_large_kernel_caches_before_torch_runs():
    # kills: the setdefault lines removed or moved after a torch import
    assert _probe() == ["16384", "16384"]


def test_a_users_own_cache_setting_wins():
    # kills: os.environ[...] = ... instead of setdefault
    assert _probe(ONEDNN_PRIMITIVE_CACHE_CAPACITY="64", LRU_CACHE_CAPACITY="32") == ["64", "32"]
