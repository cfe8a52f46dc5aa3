"""Model checkpoints: one self-describing file that ``robustft eval`` can rebuild a model from.

A checkpoint is a ``torch.save``d dict of tensors and plain values only, so it loads with
``weights_only=True`` (no pickle code execution):

    {"format": "robustft-checkpoint-v1",
     "model": {"name": str, "num_classes": int, "image_size": int | None, "options": dict},
     "strategy": {"name": str, "options": dict},
     "model_state": state_dict,            # of the RobustModel after the strategy was applied
     "step": int, "epoch": int,
     ...}                                  # the trainer adds optimiser / scheduler / RNG state for resume

This module reads and writes the file only; rebuilding the model from it (``models.build`` + ``strategies.apply``
with the header's options + ``load_state_dict(strict=True)``) is ``robustft.strategies.restore.load_model``, so
that storage imports neither models nor strategies.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from robustft.errors import RobustftError
from robustft.runs.metrics_file import file_mode

FORMAT = "robustft-checkpoint-v1"
HEADER_KEYS = ("model", "strategy", "model_state")
# What the trainer reads back on resume, besides the header (training/state.py ``resume_from_last``): a checkpoint
# written without them (by hand, or by another tool) holds weights only.
RESUME_KEYS = ("step", "optimizer", "rng", "best", "val_history", "sums", "eval_seconds", "wall_seconds")


class CheckpointError(RobustftError):
    """A checkpoint file that is missing, truncated, or not a robustft checkpoint."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes ``payload`` (must hold "model", "strategy", "model_state") atomically: temp file, fsync, rename.

    A crash mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    missing = {"model", "strategy", "model_state"} - set(payload)
    if missing:
        raise ValueError(f"checkpoint payload lacks {sorted(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())  # mkstemp's 0o600 -> the mode of the run directory's other files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_checkpoint_path(path: str | Path, which: str = "last") -> Path:
    """A checkpoint file, or ``RUN_DIR/checkpoints/{which}.pt`` when ``path`` is a run directory."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            available = sorted(p.stem for p in (path / "checkpoints").glob("*.pt"))
            raise CheckpointError(
                f"{path} is a directory without checkpoints/{which}.pt. Available: {available or 'none'}. "
                "Pass a run directory written by `robustft train`, or a checkpoint file."
            )
        return candidate
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run directory or a .pt file.")
    return path


def load_checkpoint(path: str | Path, which: str = "last", map_location: str | torch.device = "cpu",
                    require: Sequence[str] = ()) -> dict[str, Any]:
    """Loads a checkpoint dict safely (``weights_only=True``) and checks it has what its reader needs.

    Args:
        path: a checkpoint file, or a run directory (then ``checkpoints/{which}.pt``).
        which: the checkpoint name inside a run directory.
        map_location: where tensors are loaded.
        require: keys needed besides the header (model, strategy, model_state); the trainer passes
            ``RESUME_KEYS``.

    Raises:
        CheckpointError: missing, truncated/corrupt, not in robustft's format, or lacking a required key.
    """
    file = resolve_checkpoint_path(path, which)
    try:
        payload = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several types for truncated / foreign files
        reason = str(error).splitlines()[0] if str(error) else ""
        raise CheckpointError(
            f"cannot read checkpoint {file} ({type(error).__name__}: {reason}). The file is corrupt or truncated, "
            "or not a checkpoint; re-run training or point to another checkpoint (e.g. checkpoints/best.pt)."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{file} is not a robustft checkpoint (no format={FORMAT!r}). For a plain state dict, build the model "
            "yourself with robustft.models.build and load_state_dict."
        )
    missing = [key for key in HEADER_KEYS if key not in payload]
    spec = payload.get("model")
    if not missing and not (isinstance(spec, dict) and "name" in spec and "num_classes" in spec
                            and isinstance(payload["strategy"], dict) and "name" in payload["strategy"]
                            and isinstance(payload["model_state"], dict)):
        missing = ["model.name / model.num_classes / strategy.name"]
    if missing:
        raise CheckpointError(
            f"{file} is marked as a robustft checkpoint but lacks {', '.join(missing)}: it was edited or written by "
            "another tool. Point to a checkpoint written by `robustft train`, or re-run training."
        )
    lacking = [key for key in require if key not in payload]
    if lacking:
        raise CheckpointError(
            f"{file} holds model weights but not the training state a run resumes from ({', '.join(lacking)} "
            "missing). Evaluate it with `robustft eval --checkpoint`, or start a new run instead of resuming."
        )
    return payload


def load_weights(model: torch.nn.Module, payload: dict[str, Any], path: str | Path) -> None:
    """``model.load_state_dict(payload["model_state"], strict=True)``, a mismatch raised as a ``CheckpointError``.

    Raises:
        CheckpointError: the weights are of another model, strategy or number of classes than ``model``.
    """
    try:
        model.load_state_dict(payload["model_state"], strict=True)
    except RuntimeError as error:
        detail = " ".join(line.strip() for line in str(error).splitlines()[:3])
        spec, strategy = payload["model"], payload["strategy"]
        raise CheckpointError(
            f"checkpoint {path} does not fit the model it is loaded into ({detail}). Its header describes "
            f"{spec['name']} with {spec['num_classes']} classes and strategy {strategy['name']}: a checkpoint of "
            "another run, another robustft version, or an edited file. Point to this run's own checkpoint, or "
            "start a new run."
        ) from None
