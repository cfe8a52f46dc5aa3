"""A trained model rebuilt from its checkpoint: ``robustft.load(RUN)`` and what ``robustft eval --checkpoint`` runs.

Rebuilding = ``models.build`` (pretrained=False: the state dict has every weight) + ``strategies.apply`` with the
checkpoint's strategy options (it creates the same adapter modules) + ``load_state_dict(strict=True)``. It lives with
the strategies, not with the checkpoint file (``robustft.runs.checkpoints``), so that storage imports neither models
nor strategies: ``runs`` reads and writes the file, this module turns it back into a network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustft.models import RobustModel, build
from robustft.runs.checkpoints import load_checkpoint, load_weights, resolve_checkpoint_path
from robustft.strategies.adapt import apply


def load_model(path: str | Path, which: str = "last",
               device: str | torch.device = "cpu") -> tuple[RobustModel, dict[str, Any]]:
    """Rebuilds the trained model from a checkpoint file or run directory.

    Args:
        path: a run directory (then ``checkpoints/{which}.pt``) or a checkpoint file.
        which: the checkpoint name inside a run directory ("last", "best", "step_<N>").
        device: where the model goes.

    Returns:
        (model, payload): the ``RobustModel`` in eval mode on ``device`` with the strategy applied and weights
        loaded, and the checkpoint dict (for its metadata: step, model and strategy headers).

    Raises:
        CheckpointError: no readable checkpoint, or weights that do not fit the model its header describes.
    """
    file = resolve_checkpoint_path(path, which)
    payload = load_checkpoint(file)
    spec = payload["model"]
    model = build(spec["name"], spec["num_classes"], pretrained=False, image_size=spec.get("image_size"),
                  **spec.get("options", {}))
    apply(model, payload["strategy"]["name"], **payload["strategy"].get("options", {}))
    load_weights(model, payload, file)
    return model.to(device).eval(), payload


def load(run: str | Path, which: str = "last", device: str | torch.device = "cpu") -> RobustModel:
    """The fine-tuned model of a run directory (or checkpoint file): ``robustft.load("runs/NAME")``.

    Args:
        run: a run directory written by ``robustft train`` or a checkpoint ``.pt`` file.
        which: checkpoint name inside ``RUN/checkpoints`` ("last", "best", "step_<N>").
        device: where the model goes.

    Returns:
        The ``RobustModel`` (takes float N x 3 x H x W images in [0, 1], returns N x num_classes logits) in eval
        mode, with the run's strategy applied and its weights loaded. ``robustft.strategies.export.export_run``
        writes it as a plain state dict for timm / torchvision without robustft.
    """
    return load_model(run, which=which, device=device)[0]
