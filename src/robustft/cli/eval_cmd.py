"""``robustft eval``: robust accuracy (or a nested robust curve and expected robustness) of a trained model.

    robustft eval --checkpoint RUN_DIR_OR_FILE --data NAME [--split test] [--limit N] [--image-size S]
                  --attack apgd-ce --eps 4/255 --steps 10 [--curve 0:8/255] [--batch-size B] [--device auto]
                  [--checks] [--json OUT] [--model NAME --num-classes N]

Prints a table (attack, eps, accuracy, 95% CI, n) and, with ``--curve``, paper B's expected robustness; writes
the same as JSON with ``--json`` (atomically: a crash never leaves half a file).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from robustft.errors import ConfigError, RobustftError
from robustft.units import eps_grid, format_eps, parse_eps


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="robust accuracy / nested robust curve of a checkpoint under an attack",
        description="Evaluate a trained model (a run directory or checkpoint file) under an attack at one eps, or "
                    "along a nested eps curve with expected robustness; per-sample worst case, Wilson 95% CIs.")
    parser.add_argument("--checkpoint", metavar="RUN_DIR_OR_FILE", help="run directory or checkpoint .pt")
    parser.add_argument("--which", default="last", help="checkpoint name inside RUN_DIR/checkpoints (default last)")
    parser.add_argument("--model", help="model name to build instead of loading a checkpoint (pretrained weights)")
    parser.add_argument("--num-classes", type=int, help="classes of --model's fresh head")
    parser.add_argument("--data", required=True, help="dataset name (robustft list datasets)")
    parser.add_argument("--split", default="test", help="dataset split (default test)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N samples")
    parser.add_argument("--image-size", type=int, help="image side (default: the checkpoint's / model's)")
    parser.add_argument("--attack", default="apgd-ce", help="attack name (robustft list attacks); default apgd-ce")
    parser.add_argument("--eps", default="4/255", help="L-inf radius in pixel units, e.g. 4/255 (default 4/255)")
    parser.add_argument("--steps", type=int, help="attack steps (default: the attack's own)")
    parser.add_argument("--curve", metavar="LOW:HIGH[:STEP]",
                        help="nested curve over an eps range on a 1/255 grid (e.g. 0:8/255); adds E.adv")
    parser.add_argument("--batch-size", type=int, help="attack batch size (default: tuned on CPU, largest on CUDA)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (default 0)")
    parser.add_argument("--checks", action="store_true", help="run the gradient-masking checks first")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    parser.set_defaults(func=run)


def parse_curve(text: str) -> list[float]:
    """``LOW:HIGH`` (1/255 grid) or ``LOW:HIGH:STEP`` -> ascending eps list including both ends."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"--curve {text!r} must look like 0:8/255 or 0:8/255:2/255.")
    low, high = parse_eps(parts[0], name="--curve low"), parse_eps(parts[1], name="--curve high")
    step = parse_eps(parts[2], name="--curve step") if len(parts) == 3 else 1 / 255
    if high <= low or step <= 0:
        raise ConfigError(f"--curve {text!r} needs LOW < HIGH and a positive STEP, e.g. 0:8/255.")
    return [e for e in eps_grid(high, step) if e >= low - 1e-12] if low > 0 else eps_grid(high, step)


def _load_model(args: argparse.Namespace, device):
    if args.checkpoint:
        from robustft.checkpoint import load_model

        model, payload = load_model(args.checkpoint, which=args.which, device=device)
        return model, {"checkpoint": str(args.checkpoint), "step": payload.get("step"),
                       "image_size": payload["model"].get("image_size")}
    if not args.model or not args.num_classes:
        raise ConfigError("robustft eval needs --checkpoint RUN_DIR_OR_FILE, or --model NAME --num-classes N to "
                          "evaluate a freshly built model.")
    from robustft.models import build

    return build(args.model, args.num_classes).to(device).eval(), {"model": args.model, "image_size": None}


def _load_data(args: argparse.Namespace, image_size: int | None, batch_size: int):
    import robustft.data as data

    if not hasattr(data, "load"):
        raise RobustftError("dataset loading (robustft.data.load) is not available in this build of robustft.")
    dataset = data.load(args.data, args.split, image_size=image_size, limit=args.limit)
    if hasattr(data, "make_loader"):
        return data.make_loader(dataset, batch_size)
    import torch

    return torch.utils.data.DataLoader(dataset, batch_size=batch_size)


def _build(args: argparse.Namespace):
    import torch

    from robustft.attacks import build_attack

    attack = build_attack(args.attack)  # unknown name -> the list of attacks
    options: dict[str, Any] = {}
    if args.steps is not None:
        if not attack.accepts("steps"):
            raise ConfigError(f"attack {args.attack!r} has no steps; drop --steps (square uses queries).")
        options["steps"] = args.steps
    if attack.accepts("generator"):
        options["generator"] = torch.Generator().manual_seed(args.seed)
    return attack.with_options(**options)


def format_results(results, e_adv: float | None) -> str:
    """The printed table: attack, eps, accuracy, 95% CI, n (+ E.adv)."""
    lines = [f"{'attack':<12} {'eps':>8} {'accuracy':>9} {'95% CI':>17} {'n':>6}"]
    for r in results:
        ci = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        lines.append(f"{r.attack.split('(')[0]:<12} {format_eps(r.eps):>8} {r.accuracy:>9.4f} {ci:>17} {r.n:>6}")
    if results and "(" in results[0].attack:
        lines.append(f"attack settings: {results[0].attack}")
    if e_adv is not None:
        lines.append(f"expected robustness E.adv over [0, {format_eps(results[-1].eps)}]: {e_adv:.4f}")
    return "\n".join(lines)


def _write_json(path: str, payload: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from robustft.attacks import expected_robustness, robust_curve, run_checks
    from robustft.attacks.evaluate import _default_batch_size
    from robustft.device import resolve_device

    eps_list = parse_curve(args.curve) if args.curve else [parse_eps(args.eps, name="--eps")]
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}.")
    attack = _build(args)
    device = resolve_device(args.device)
    model, source = _load_model(args, device)
    image_size = args.image_size or source.get("image_size") or model.info.input_size
    batch_size = _default_batch_size(device, args.batch_size)
    loader = _load_data(args, image_size, batch_size)
    batches = [(images, labels) for images, labels in _pairs(loader)]
    warnings = []
    if args.checks:
        warnings = run_checks(model, batches, max(e for e in eps_list), device=device)
        for warning in warnings:
            print(f"warning: {warning}")
    results = robust_curve(model, batches, eps_list, attack=attack, device=device, batch_size=args.batch_size)
    e_adv = expected_robustness(eps_list, results) if args.curve and eps_list[0] == 0 else None
    print(format_results(results, e_adv))
    if args.json:
        _write_json(args.json, {
            **source, "data": args.data, "split": args.split, "limit": args.limit, "image_size": image_size,
            "attack": attack.describe(), "device": str(device), "results": [r.as_dict() for r in results],
            "expected_robustness": e_adv, "warnings": [{"check": w.check, "message": w.message} for w in warnings],
        })
        print(f"wrote {args.json}")
    return 0


def _pairs(loader):
    for item in loader:
        if isinstance(item, dict):
            yield item["image"], item["label"]
        else:
            yield item[0], item[1]
