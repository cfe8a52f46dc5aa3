"""``robustft export RUN [--merged] OUT``: the fine-tuned weights for timm / torchvision / transformers users."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a run's fine-tuned weights as a plain state dict (LoRA / (IA)3 merged with --merged)",
        description="Writes the fine-tuned network of RUN to OUT (.safetensors, or a torch .pt/.pth state dict) and "
                    "OUT with suffix .json (mean/std, input size, how to create the plain model). With --merged, "
                    "LoRA, (IA)3 and peft tuners are folded into the weights: OUT then loads with "
                    "load_state_dict(strict=True) into timm / torchvision / transformers' own model, no robustft "
                    "needed. Strategies that add no modules (full, linear, bitfit, partial, lp-ft) give such a file "
                    "with or without --merged; the sidecar's create_plain_model is set whenever OUT loads into the "
                    "plain model, null otherwise. robustft eval --checkpoint OUT evaluates either kind.")
    parser.add_argument("run", metavar="RUN", help="run directory (or checkpoint .pt) written by robustft train")
    parser.add_argument("out", metavar="OUT", help="weights file: NAME.safetensors or NAME.pt")
    parser.add_argument("--merged", action="store_true",
                        help="merge LoRA / (IA)3 / peft tuners into the weights: a plain model's state dict")
    parser.add_argument("--which", default="last", help="checkpoint inside RUN/checkpoints (default last)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from robustft.strategies.export import export_run

    path = export_run(args.run, args.out, merged=args.merged, which=args.which)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    print(f"wrote {path} and {path.with_suffix('.json')}")
    if sidecar.get("create_plain_model"):
        print(f"load it without robustft:  model = {sidecar['create_plain_model']}; "
              f"model.load_state_dict(state_dict); inputs normalised with mean {sidecar['mean']}, std {sidecar['std']}")
    return 0
