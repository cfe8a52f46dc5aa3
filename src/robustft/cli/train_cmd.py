"""``robustft train CONFIG.yaml [key=value ...] [--resume RUN_DIR] [--quiet]``: one fine-tuning run."""

from __future__ import annotations

import argparse
import logging
import sys

from robustft.errors import RobustftError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model as a config says; evaluate continuously; resumable",
        description="Fine-tune a pretrained model (any strategy x objective x eps schedule), writing metrics.jsonl, "
                    "checkpoints and summary.json into output_dir/name.")
    parser.add_argument("config", nargs="?", help="YAML config file (omit with --resume: the run's config.yaml is "
                                                  "used; change it with key=value, recorded in the run)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=3e-4")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (for sweeps)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.train import train

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="robustft: %(message)s")
    overrides = list(args.overrides)
    config = args.config
    if args.resume is None and config is None:
        raise RobustftError("robustft train needs a config file (robustft train configs/demo.yaml) or "
                            "--resume RUN_DIR to continue a run.")
    if args.resume is not None and config is not None and "=" in config:
        overrides.insert(0, config)  # `--resume RUN key=value`: the first positional is an override
        config = None
    if config is not None and "=" in config and args.resume is None:
        raise RobustftError(f"the first argument {config!r} looks like an override; put the config file first: "
                            "robustft train CONFIG.yaml key=value ...")
    result = train(config, overrides, resume=args.resume, quiet=True if args.quiet else None)
    print(format_result(result))
    return 0


def format_result(result) -> str:
    """A short table of the final clean/robust/OOD accuracies and where the run directory is."""
    final = result.summary.get("final", {})
    shown = {key: value for key, value in final.items() if value is not None and (
        key.endswith("accuracy") or "accuracy@" in key or key.endswith("expected_robustness"))}
    width = max([len("metric"), *map(len, shown)]) + 2
    lines = [f"{'metric':<{width}}value"]
    lines += [f"{key:<{width}}{value:.4f}" for key, value in shown.items()]
    lines.append(f"run directory: {result.path}")
    return "\n".join(lines)
