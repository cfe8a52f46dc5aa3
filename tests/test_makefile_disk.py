"""`make` refuses to start the torch install where the disk cannot hold it, with a message that names the fix.

(A CI run once died half-way through pip with "No space left on device" when old clones had filled the disk.)
The install itself is replaced by ``PIP=true``: these tests run only the Makefile's check, in a scratch copy.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_torch_step(tmp_path: Path, needed_gb: int) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".stamp-venv").touch()
    return subprocess.run(["make", "-s", ".venv/.stamp-torch", f"TORCH_GB={needed_gb}", "PIP=true"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_too_little_disk_stops_before_pip_and_says_what_to_free(tmp_path: Path) -> None:
    result = run_torch_step(tmp_path, needed_gb=10**9)
    assert result.returncode != 0
    assert "needs about 1000000000 GB of free disk" in result.stderr and "Free some space" in result.stderr
    assert not (tmp_path / ".venv" / ".stamp-torch").exists()


def test_enough_disk_goes_on_to_the_install(tmp_path: Path) -> None:
    result = run_torch_step(tmp_path, needed_gb=0)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".venv" / ".stamp-torch").exists()
