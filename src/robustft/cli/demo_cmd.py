"""``robustft demo``: a few-minute fine-tuning run on the embedded data and backbone, then a result table.

The demo config ships inside the package (``DEMO_CONFIG`` below), so ``pip install`` users have it without
the repository's ``configs/``; ``configs/demo.yaml`` in a checkout, when present, is used instead so the two
cannot drift apart silently for repository users who edit it.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from pathlib import Path
from typing import Any

from robustft.cli.options import add_output_dir_option, add_override_options, overrides_of

# The same experiment as configs/demo.yaml (a test keeps them equal): embedded ImageNet MobileNetV2 fine-tuned on
# embedded Fashion-MNIST at 32 px with standard cross-entropy; clean, PGD-10 at 1/255 and two corrupted test sets
# evaluated every 25 steps on the same 256 seeded samples, with a PGD robust curve to 4/255 and a final
# APGD-CE-10 evaluation.
DEMO_CONFIG: dict[str, Any] = {
    "name": "demo",
    "output_dir": "runs",
    "seed": 0,
    "device": "auto",
    "model": {"name": "mobilenet_v2", "pretrained": True, "image_size": 32},
    "data": {"name": "fashion-mnist", "image_size": 32, "val_fraction": 0.1, "limit_train": 8000,
             "limit_val": 500, "limit_test": 2000,
             "ood": ["fashion-mnist@gaussian_noise:3", "fashion-mnist@contrast:3"]},
    "strategy": {"name": "full"},
    "objective": {"name": "standard"},
    "eps": {"schedule": "zero"},
    "optim": {"batch_size": 64, "lr": 1.0e-3, "weight_decay": 0.05, "lr_schedule": "cosine", "warmup": 0.1},
    "train": {"epochs": 2},
    "eval": {"schedule": "every:25", "subset": 256, "batch_size": 128, "splits": ["val", "test"],
             "attack": {"name": "pgd", "steps": 10, "step_size": "0.25eps", "random_start": True, "restarts": 1},
             "eps": ["1/255"], "curve": "4/255", "ood": True, "checks": False,
             "final": {"attack": "apgd-ce", "steps": 10}},
    "checkpoint": {"best_metric": "val/clean/accuracy", "every_eval": False},
    "logging": {"progress": True},
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="a few-minute fine-tuning run on embedded data, then a result table",
        description="Fine-tunes the embedded MobileNetV2 on embedded Fashion-MNIST (a few minutes on a CPU) and "
                    "prints clean, robust (1/255) and OOD accuracy.")
    add_override_options(parser)
    add_output_dir_option(parser, "default: runs")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=run)


def demo_config() -> Any:
    """The demo config: configs/demo.yaml of a repository checkout, else the packaged ``DEMO_CONFIG``."""
    shipped = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
    return shipped if shipped.is_file() else dict(DEMO_CONFIG)


def run(args: argparse.Namespace) -> int:
    from robustft.cli.train_cmd import format_result
    from robustft.report import build_report
    from robustft.report.collect import collect_runs
    from robustft.train import train

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="robustft: %(message)s")
    # A fresh run directory each time, so `make demo` can be run again without --resume or deleting anything.
    overrides = [f"name=demo-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}", *overrides_of(args)]
    result = train(demo_config(), overrides, quiet=True if args.quiet else None)
    page = build_report(collect_runs(result.path), result.path / "report", title=f"robustft demo: {result.path.name}")
    print(format_result(result))
    print(f"\nreport: {page}")
    print(f"The run directory holds metrics.jsonl, summary.json and checkpoints/. Re-evaluate the model with a "
          f"stronger attack and a robust curve (on the run's own dataset):\n  robustft eval --checkpoint {result.path} "
          "--limit 1000 --attack apgd-ce --steps 10 --curve 0:4/255")
    return 0
