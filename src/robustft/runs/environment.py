"""What a run records of where it ran (env.json): package versions, git sha, device, seed, host, start time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def environment(config: dict[str, Any], device: str | None) -> dict[str, Any]:
    # Package metadata, not imports: importing transformers just to record its version costs seconds.
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("robustft", "torch", "torchvision", "timm", "numpy", "peft", "transformers"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    torch = sys.modules.get("torch")  # the trainer has imported it; analysis tools need not
    return {
        "versions": versions,
        "git_sha": git_sha(),
        "device": device or config.get("device"),
        "cuda_available": bool(torch.cuda.is_available()) if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,  # numbers move with it
        "seed": config.get("seed"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def git_sha() -> str | None:
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
