"""``robustft reproduce paper-a|paper-b [key=value ...] [--set key=value] [--scale embedded|full]
[--executor local|ray] [--output-dir DIR]``.

Runs every shipped per-strategy (paper A) or per-schedule (paper B, plus its standard fine-tuning reference)
config of a paper, each with its own settings, then the report with the findings. Resumable: the default study
directory is fixed, so running the command again skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustft.cli.options import add_override_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="run a paper's study (every shipped strategy or schedule config), report and findings",
        description="paper-a: the seven strategies of configs/paper_a[_embedded]/; paper-b: the schedules of "
                    "configs/paper_b[_embedded]/ plus standard fine-tuning as the reference. --scale full uses "
                    "the papers' backbones and datasets (online, GPU); embedded runs offline on a CPU.")
    parser.add_argument("paper", choices=("paper-a", "paper-b"))
    add_override_options(parser)  # key=value / --set KEY=VALUE: applied to every run, e.g. train.epochs=1
    parser.add_argument("--scale", choices=("embedded", "full"), default="embedded")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--output-dir", default=None,
                        help="study directory (default: runs/reproduce-<paper>-<scale>; re-running resumes it)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="local executor: runs at a time (default: one per CPU core)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs reserved per run")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs reserved per run (full scale: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.cli.study_run import execute
    from robustft.sweep.study import paper_study

    study = paper_study(args.paper, args.scale)
    out = Path(args.output_dir) if args.output_dir else Path("runs") / f"reproduce-{study.name}"
    # Not overrides_of(args): --output-dir is the study directory here, not the runs' output_dir.
    fixed = [*args.overrides, *args.set_overrides]
    return execute(study, out, fixed=fixed, executor=args.executor, jobs=args.jobs,
                   ray_address=args.ray_address, quiet=args.quiet, title=f"robustft reproduce {study.name}",
                   cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
