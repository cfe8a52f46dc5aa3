"""What ``robustft eval`` evaluates: the model (a run's checkpoint or a freshly built ``--model``) and the data
(``--data``, or the dataset the run trained on, read from its ``config.yaml``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robustft.errors import ConfigError


def load_model(args: argparse.Namespace, device) -> tuple[Any, dict[str, Any]]:
    """The model to evaluate and a description of where it came from (``checkpoint``/``model``, ``image_size``).

    Raises:
        ConfigError: both or neither of --checkpoint and --model, or --model options without --model.
    """
    if args.checkpoint and args.model:
        raise ConfigError("robustft eval got both --checkpoint and --model: --checkpoint evaluates the run's own "
                          "fine-tuned model, --model builds a fresh one; pass only one.")
    if args.checkpoint:
        if args.pretrained_file or args.num_classes:
            flag = "--pretrained-file" if args.pretrained_file else "--num-classes"
            raise ConfigError(f"{flag} belongs to --model; a --checkpoint carries its own weights and classes.")
        from robustft.strategies.exported import load_exported, sidecar_of

        if Path(args.checkpoint).suffix == ".safetensors" or sidecar_of(args.checkpoint) is not None:
            # what robustft export wrote: its sidecar says which model (and strategy) the weights belong to
            model, sidecar = load_exported(args.checkpoint, device=device)
            return model, {"checkpoint": str(args.checkpoint), "step": sidecar.get("step"),
                           "image_size": sidecar.get("input_size"), "run_config": None}
        from robustft.strategies.restore import load_model as load_checkpoint_model

        model, payload = load_checkpoint_model(args.checkpoint, which=args.which, device=device)
        return model, {"checkpoint": str(args.checkpoint), "step": payload.get("step"),
                       "image_size": payload["model"].get("image_size"), "run_config": run_config(args.checkpoint)}
    if not args.model or not args.num_classes:
        raise ConfigError("robustft eval needs --checkpoint RUN (a run directory or checkpoint file), or --model NAME "
                          "--num-classes N to evaluate a freshly built model.")
    from robustft.models import build

    if not args.pretrained_file:
        model = build(args.model, args.num_classes, image_size=args.image_size)
        return model.to(device).eval(), {"model": args.model, "image_size": args.image_size}
    from robustft.strategies.exported import load_trained_weights, read_state, sidecar_of

    # The file is the model to evaluate, head included: built without pretrained weights (every tensor comes from
    # the file), for any model name; an export's sidecar gives the image size its weights were trained at.
    state = read_state(args.pretrained_file, "--pretrained-file")
    image_size = args.image_size or (sidecar_of(args.pretrained_file) or {}).get("input_size")
    model = build(args.model, args.num_classes, pretrained=False, image_size=image_size)
    load_trained_weights(model, state, f"--pretrained-file {args.pretrained_file}")
    return model.to(device).eval(), {"model": args.model, "pretrained_file": str(args.pretrained_file),
                                     "image_size": image_size}


def run_config(checkpoint: str | Path) -> dict[str, Any] | None:
    """The resolved ``config.yaml`` of the run a checkpoint belongs to (RUN or RUN/checkpoints/X.pt), if any."""
    from robustft.runs.run_dir import CONFIG_FILE, Run, RunNotFoundError

    path = Path(checkpoint)
    run_dir = path if path.is_dir() else path.parent.parent
    if not (run_dir / CONFIG_FILE).is_file():
        return None
    try:  # the one run loader: read as analysis and the report read it
        return Run(run_dir).config or None
    except (RunNotFoundError, UnicodeDecodeError):  # not YAML: evaluate without the run's data settings
        return None


def data_source(args: argparse.Namespace, source: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The dataset name and ``data.load`` options: ``--data``, else the run's ``data.name`` with its root,
    validation fraction and seed (so ``--split val`` is the run's own hold-out)."""
    config = source.pop("run_config", None) or {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    options: dict[str, Any] = {}
    if data:
        options = {key: data[key] for key in ("root", "val_fraction") if data.get(key) is not None}
        if isinstance(config.get("seed"), int):
            options["seed"] = config["seed"]
        if isinstance(data.get("options"), dict):
            options.update(data["options"])
    if args.data:
        if data.get("name") and args.data != data["name"]:
            options = {}  # another dataset: the run's root and hold-out do not apply
        return args.data, options
    if data.get("name"):
        return str(data["name"]), options
    from robustft.strategies.exported import sidecar_of

    where = "a --model" if args.model else f"{args.checkpoint} (an exported file: it carries no dataset)" if \
        sidecar_of(args.checkpoint) is not None else f"{args.checkpoint} (no config.yaml beside its checkpoints/)"
    raise ConfigError(f"robustft eval needs --data NAME for {where}: name the dataset to evaluate on "
                      "(robustft list datasets), or --subset-of RUN to evaluate on the images RUN evaluated.")


def run_image_size(config: dict[str, Any] | None) -> int | None:
    """The image side a run trained and evaluated at (its ``data.image_size``, else ``model.image_size``)."""
    for section in ("data", "model"):
        part = (config or {}).get(section)
        if isinstance(part, dict) and isinstance(part.get("image_size"), int):
            return int(part["image_size"])
    return None


def image_size_notes(args: argparse.Namespace, source: dict[str, Any], image_size: int,
                     subset_config: dict[str, Any] | None) -> list[str]:
    """Warnings when the evaluated image size is not the one the weights were trained at, or is unknown.

    What is known of the training size: ``--subset-of RUN``'s config, the config of the run a ``--checkpoint``
    belongs to, an export's sidecar (``input_size``). A model evaluated at another size computes another function
    (a 32 px MobileNetV2 at 224 px scored 16.4% where it had recorded 85.2%), and nothing else would say so.
    """
    from robustft.strategies.exported import sidecar_of

    weights = args.checkpoint or args.pretrained_file
    sidecar = sidecar_of(weights) if weights else None
    known = [(f"--subset-of {args.subset_of}", run_image_size(subset_config)),
             (f"the run of {args.checkpoint}", run_image_size(source.get("run_config"))),
             (f"the sidecar of {weights}", (sidecar or {}).get("input_size"))]
    notes = [f"evaluating at {image_size} px, but {what} says the model was trained at {size} px: accuracy at another "
             f"image size is not the number it recorded; pass --image-size {size}"
             for what, size in known if isinstance(size, int) and size != image_size]
    if args.pretrained_file and args.image_size is None and not any(size for _, size in known):
        notes.append(f"{args.pretrained_file} says nothing of the image size it was trained at (no sidecar, no run): "
                     f"evaluating at {image_size} px, the model's default; pass --image-size S if it was trained at "
                     "another size (robustft export writes the size in its sidecar)")
    return notes
