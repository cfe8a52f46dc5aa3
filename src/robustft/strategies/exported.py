"""What ``robustft export`` wrote, loaded back for evaluation: the inverse of ``export.export_run``.

Two ways in, both with the trained classifier head (a fresh random head would make any accuracy meaningless, and
``models.build(..., pretrained_file=)`` deliberately starts a fresh head, for fine-tuning):

- ``load_exported(OUT)``: the export with its sidecar ``OUT.json`` (model, classes, input size, strategy and its
  options): the model is rebuilt as the sidecar describes (the strategy applied again when the weights are not a
  plain network's) and loaded strictly (``robustft eval --checkpoint OUT``);
- ``load_trained_weights(model, state)``: any state dict of the built model's plain network, head included, loaded
  strictly into it (``robustft eval --model NAME --num-classes N --pretrained-file FILE``); a file without the head,
  or with a head of another class count, is refused with the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from robustft.errors import ConfigError
from robustft.models import RobustModel, build
from robustft.models.torchvision_source import load_local_state
from robustft.strategies.adapt import apply
from robustft.strategies.export import WEIGHT_SUFFIXES, plain_network

SIDECAR_FORMAT = "robustft-export-v1"


def sidecar_of(path: str | Path) -> dict[str, Any] | None:
    """The export sidecar beside a weights file (``OUT.json`` for ``OUT.safetensors``), or None when there is none
    (or it is not one ``robustft export`` wrote)."""
    path = Path(path)
    side = path.with_suffix(".json")
    if path.suffix not in WEIGHT_SUFFIXES or not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def read_state(path: str | Path, flag: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` / ``.pt`` / ``.pth`` file; errors name ``flag`` (the option the user gave)."""
    return load_local_state(Path(path), name=flag)


def load_exported(path: str | Path, device: str | torch.device = "cpu",
                  flag: str = "--checkpoint") -> tuple[RobustModel, dict[str, Any]]:
    """Rebuilds the model ``robustft export`` wrote to ``path``, trained head included.

    Returns:
        (model in eval mode on ``device``, the sidecar dict).

    Raises:
        ConfigError: ``path`` missing; no sidecar beside ``path`` (the message names
            ``--model/--num-classes/--pretrained-file``), or
            weights that do not fit the model the sidecar describes.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{flag} {path} does not exist. Give a run directory, a checkpoint, or the weights file "
                          "`robustft export` wrote (its .json sidecar beside it).")
    sidecar = sidecar_of(path)
    if sidecar is None:
        raise ConfigError(
            f"{flag} {path} is a weights file without the sidecar {path.with_suffix('.json')} that robustft export "
            "writes beside it, so the model it belongs to is unknown. Evaluate it with --model NAME --num-classes N "
            f"--image-size S --pretrained-file {path} (the model and image size it was trained at, e.g. mobilenet_v2 "
            "at 32; --subset-of RUN takes the run's size), or put the sidecar back.")
    model = build(sidecar["model"], int(sidecar["num_classes"]), pretrained=False,
                  image_size=sidecar.get("input_size"), **dict(sidecar.get("model_options") or {}))
    plain = sidecar.get("plain", sidecar.get("merged"))
    if not plain and sidecar.get("strategy_options") is not None:
        # adapter keys (LoRA, (IA)3, adapters, prompts unmerged): the same modules are created first
        apply(model, sidecar["strategy"], **sidecar["strategy_options"])
    load_trained_weights(model, read_state(path, flag), f"{flag} {path}")
    return model.to(device).eval(), sidecar


def _head_prefix(model: RobustModel, network: torch.nn.Module) -> str:
    """The classifier's key prefix in ``network``'s state dict (``classifier.1.`` for MobileNetV2)."""
    head = model.head_module()
    found = next((f"{name}." for name, module in network.named_modules() if module is head), None)
    if found is None:  # a wrapper holding the head outside the library's network: no plain state dict fits it
        raise ConfigError(f"{model.info.name}'s classifier ({model.info.head}) is not part of its exported network; "
                          "evaluate the run itself with --checkpoint RUN.")
    return found


def load_trained_weights(model: RobustModel, state: dict[str, torch.Tensor], origin: str) -> None:
    """Loads ``state`` (the plain network's state dict, head included) into ``model`` strictly.

    Args:
        model: the built model (``pretrained=False`` is enough: every weight is replaced).
        state: tensors keyed as ``robustft export`` writes them (timm's / torchvision's / transformers' own keys).
        origin: how messages name the file (``--pretrained-file PATH``).

    Raises:
        ConfigError: no classifier weights in ``state``; a classifier of another class count; keys or shapes of
            another architecture, image size or an unmerged strategy (each message says what to pass instead).
    """
    network = plain_network(model)
    prefix = _head_prefix(model, network)
    expected = network.state_dict()
    head_keys = [key for key in expected if key.startswith(prefix)]
    if not any(key in state for key in head_keys):
        raise ConfigError(
            f"{origin} has no classifier weights ({', '.join(head_keys)}): evaluating it would put a fresh, random "
            "head on the model and measure nothing. Pass the file robustft export wrote for the run (it carries the "
            "trained head), or the run itself with --checkpoint RUN.")
    for key in head_keys:
        if key in state and state[key].shape != expected[key].shape:
            raise ConfigError(
                f"{origin} has a classifier with {state[key].shape[0]} outputs ({key}: {tuple(state[key].shape)}), "
                f"but the model is built with {model.info.num_classes} classes; pass --num-classes "
                f"{state[key].shape[0]} (the class count the file was trained for).")
    try:
        result = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even with strict=False
        detail = " ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise ConfigError(
            f"{origin} does not fit {model.info.name} at image size {model.info.input_size} ({detail[:300]}). Build "
            "the model the file was trained as: the same model name and the image size of its sidecar's "
            "input_size (--image-size S).") from None
    if result.missing_keys or result.unexpected_keys:
        adapters = [key for key in result.unexpected_keys if any(part in key for part in ("lora", "ia3", "adapter",
                                                                                          "vpt", "compacter"))]
        why = (" Its keys are an adapted network's (an export without --merged): pass it as --checkpoint FILE "
               "(its sidecar rebuilds the strategy), or export the run with --merged.") if adapters else \
            " Use weights of this architecture (robustft export writes them for a run)."
        raise ConfigError(f"{origin} does not fit {model.info.name}: missing {result.missing_keys[:5]}, unexpected "
                          f"{result.unexpected_keys[:5]}.{why}")
