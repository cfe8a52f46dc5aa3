"""Device selection: ``auto`` picks CUDA when present, else CPU, so the same config runs on both."""

from __future__ import annotations

import torch

from robustft.errors import ConfigError


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turns ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a device, checking that it exists.

    Raises:
        ConfigError: when CUDA is asked for and not available, or the text is not a device.
    """
    if isinstance(spec, torch.device):
        return spec
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"device={spec!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={spec!r} asks for CUDA but none is available here; use --device auto or cpu.")
    return device
