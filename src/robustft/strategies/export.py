"""A fine-tuned run as weights other libraries load: ``robustft export RUN [--merged] OUT``.

Like peft's ``merge_and_unload`` + ``save_pretrained``: with ``merged=True`` LoRA, (IA)3 and peft tuners are folded
into the weights they adapt and their modules removed, so the file is the state dict of the *plain* network
(timm's, torchvision's, or the transformers model's own keys) and loads with ``load_state_dict(strict=True)``
into a freshly created model of the same architecture and class count, without robustft. Strategies that add
computation which cannot be folded into existing weights (bottleneck adapters, Compacter, visual prompts) are
refused with ``merged=True``; without it, the file holds the adapted network's state dict (adapter parameters
under their own keys; ``robustft.load(RUN)`` gives that model itself). Strategies that only select which existing
parameters train (full, linear, bitfit, partial, lp-ft) leave a plain network, so their export loads into the plain
model with or without ``merged``: the sidecar's ``create_plain_model`` is filled whenever the weights are plain.
``robustft eval --checkpoint OUT`` evaluates either kind (``robustft.strategies.exported``).

Normalisation is not part of the network (robustft applies it inside ``RobustModel.forward``), so the sidecar
``OUT.json`` states the mean / std to apply to [0, 1] images, the input size and the line of code that creates the
plain model. ``.safetensors`` files are written with safetensors; ``.pt`` / ``.pth`` with ``torch.save`` of a dict of
tensors (loads with ``torch.load(path, weights_only=True)``); other names are refused.

It lives with the strategies (the model is rebuilt by ``restore.load_model``, merged by ``adapt.merge``), not with
the run directory it reads, so that ``robustft.runs`` stays storage only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustft.errors import ConfigError
from robustft.models.hf_source import LogitsOnly
from robustft.runs.metrics_file import file_mode
from robustft.strategies.adapt import merge
from robustft.strategies.hooks import attached
from robustft.strategies.restore import load_model

# What export writes: safetensors, or a torch.save'd dict of tensors (torch.load(path, weights_only=True)).
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def export_run(run: str | Path, out: str | Path, *, merged: bool = True, which: str = "last") -> Path:
    """Writes the fine-tuned network of ``run`` to ``out`` (+ ``out`` with suffix ``.json``: how to load it).

    Args:
        run: a run directory (or checkpoint file) written by ``robustft train``.
        out: the weights file; ``.safetensors`` for safetensors, ``.pt`` or ``.pth`` for torch.
        merged: fold mergeable strategies into the weights and write the plain network's state dict.
        which: checkpoint inside ``RUN/checkpoints`` (last, best, step_N).

    Returns:
        The path of the weights file.

    Raises:
        ConfigError: ``out`` is not a ``.safetensors`` / ``.pt`` / ``.pth`` file name, or ``merged`` for a
            strategy that cannot be merged.
        CheckpointError: the run has no readable checkpoint.
    """
    out = check_target(out)
    model, payload = load_model(run, which=which)
    if merged:
        merge(model, strict=True)
    network = plain_network(model)
    state = {key: value.detach().cpu().clone().contiguous() for key, value in network.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out))
    else:
        torch.save(state, out)
    os.chmod(out, file_mode())  # safetensors writes 0o600; the weights are as readable as their sidecar
    sidecar = describe(model, payload, merged=merged, weights=out, plain=merged or holds_plain_weights(model))
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return out


def check_target(out: str | Path) -> Path:
    """``out`` as a weights file name: ``.safetensors`` or a torch ``.pt`` / ``.pth``, not a directory.

    Any other name used to be written with ``torch.save`` under it (``out.txt`` held a pickled state dict that
    nothing opens as text), and ``out.json`` would be overwritten by its own sidecar.

    Raises:
        ConfigError: the name and the fix (the same stem with a weights suffix).
    """
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"export target {out} is a directory; name the weights file inside it, e.g. "
                          f"{out / 'model.safetensors'} (the sidecar {out / 'model.json'} goes beside it).")
    if out.suffix not in WEIGHT_SUFFIXES:
        why = "the name of the sidecar file written beside the weights" if out.suffix == ".json" else \
            "not a weights format" if out.suffix else "no suffix to tell the format"
        raise ConfigError(
            f"export target {out} ends in {out.suffix or 'nothing'} ({why}). Name it {out.with_suffix('.safetensors')} "
            f"(safetensors) or {out.with_suffix('.pt')} (a torch state dict; .pth too).")
    return out


def plain_network(model: nn.Module) -> nn.Module:
    """The library's own network inside a ``RobustModel`` (a transformers model unwrapped from ``LogitsOnly``)."""
    backbone = model.backbone

    return backbone.model if isinstance(backbone, LogitsOnly) else backbone


def holds_plain_weights(model: nn.Module) -> bool:
    """Whether the network's state dict is a plain model's: no strategy module attached (LoRA, (IA)3, adapters,
    prompts) and no peft tuner layer (merging would rename or drop keys). True for full, linear, bitfit, partial and
    lp-ft, which only choose the parameters that train."""
    import copy

    if attached(model):
        return False
    before = set(plain_network(model).state_dict())
    return set(plain_network(merge(copy.deepcopy(model))).state_dict()) == before


def describe(model: nn.Module, payload: dict[str, Any], *, merged: bool, weights: Path,
             plain: bool | None = None) -> dict[str, Any]:
    """The sidecar: what the weights are and how to use them without robustft.

    ``plain`` (default: ``merged``) says the weights load into the plain model; ``create_plain_model`` is then the
    line creating it, else None (adapter keys of an unmerged export: ``robustft eval --checkpoint OUT`` or
    ``robustft.load(RUN)`` rebuild the adapted model from ``strategy`` and ``strategy_options``).
    """
    info = model.info
    spec = payload["model"]
    plain = merged if plain is None else plain
    return {
        "format": "robustft-export-v1", "weights": weights.name, "merged": merged, "plain": plain,
        "model": spec["name"], "num_classes": spec["num_classes"], "input_size": info.input_size,
        "model_options": dict(spec.get("options") or {}),
        "strategy": payload["strategy"]["name"], "strategy_options": dict(payload["strategy"].get("options") or {}),
        "step": payload.get("step"),
        "input": (f"float images in [0, 1], N x 3 x {info.input_size} x {info.input_size} (what robustft trained "
                  "and evaluated on: uint8 images resized with antialiased bilinear interpolation on their 0-255 "
                  "values, rounded back to uint8, then divided by 255; grey images repeated to 3 channels), "
                  "normalised as (x - mean) / std before the network"),
        "mean": list(info.mean), "std": list(info.std),
        "create_plain_model": create_code(spec["name"], spec["num_classes"], info) if plain else None,
    }


def create_code(name: str, num_classes: int, info: Any) -> str | None:
    """The line creating the plain network whose ``load_state_dict`` takes the exported weights.

    Args:
        name: the model name the run was built from (``mobilenet_v2``, ``vit_small_dinov2``, ``timm:...``, ...).
        num_classes: the head's outputs.
        info: the model's ``ModelInfo``; an embedded backbone states its library architecture in
            ``info.extra["architecture"]`` (``timm:vit_small_patch14_dinov2`` for ``vit_small_dinov2``).

    Returns:
        The Python expression (needs only timm, torchvision or transformers imported), or None for robustft's own
        test models (``tiny-cnn``, ``tiny-vit``), which no library creates.
    """
    source, _, rest = name.partition(":")
    architecture = str(getattr(info, "extra", {}).get("architecture", ""))
    if name == "mobilenet_v2":
        return f"torchvision.models.mobilenet_v2(num_classes={num_classes})"
    if source != "timm" and architecture.startswith("timm:"):  # an embedded backbone built with timm
        source, rest = architecture.split(":", 1)
    if source == "timm":
        # a ViT's position embeddings are sized for the run's input side (the embedded one resamples them to it)
        size = f", img_size={info.input_size}" if info.family == "vit" else ""
        return f"timm.create_model({rest!r}, num_classes={num_classes}{size})"
    if source == "tv":
        return f"torchvision.models.{rest}(num_classes={num_classes})"
    if source == "hf":
        return (f"transformers.AutoModelForImageClassification.from_pretrained({rest!r}, num_labels={num_classes}, "
                "ignore_mismatched_sizes=True)")
    return None
