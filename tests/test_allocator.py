"""``import robustft`` keeps freed memory in the process (robustft/allocator.py): a freed 20 MB block is reused
without new page faults; ``ROBUSTFT_MALLOC=keep`` leaves glibc's malloc as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
if sys.argv[1] == "import":
    import robustft  # noqa: F401
def faults(size=20 << 20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(size)
    block[::4096] = bytes(len(block[::4096]))  # touch every page
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[faults() for _ in range(3)])
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings (Linux only)")


def _faults(mode: str, **env: str) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "ROBUSTFT_MALLOC"))}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout
    return [int(n) for n in out.split()]


def test_a_freed_block_is_reused_without_page_faults_after_import():
    # kills: keep_freed_memory() not called at import, or either mallopt removed (the second block then faults)
    first, second, third = _faults("import")
    assert first > 4000  # 20 MB of fresh pages: ~5,120 faults
    assert second < 200 and third < 200


def test_without_robustft_or_with_keep_glibc_faults_the_second_block_again():
    # the probe measures what the settings change: glibc's own behaviour faults the second 20 MB block anew
    assert _faults("plain")[1] > 4000
    # kills: the ROBUSTFT_MALLOC=keep check removed
    assert _faults("import", ROBUSTFT_MALLOC="keep")[1] > 4000
