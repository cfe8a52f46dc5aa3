"""``robustft reproduce paper-a|paper-b [key=value ...] [--set key=value] [--scale embedded|full]
[--models M,...] [--datasets D,...] [--eps E,...] [--strategies S,...] [--schedules S,...] [--plan [--calibrate]]
[--tune [--tune-trials N]] [--executor local|ray [--storage URI]] [--output-dir DIR]``.

Embedded scale runs the grid of ``robustft.sweep.embedded_grid`` (both embedded backbones x two tasks x paper A's
strategies, or paper B's eps_g and schedules plus its standard fine-tuning reference), each strategy or schedule with
its own settings; full scale runs the paper's grid (``robustft.sweep.paper_grid``); either, or the part of it the
axis flags select; then the report with the findings.
``--plan`` prints the runs and their estimated GPU-hours instead of running them; ``--tune`` runs an ASHA search
per run first (paper B's protocol). Resumable: the default study directory is fixed, so running the command again
skips finished runs (and searches) and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustft.cli.options import add_override_options
from robustft.errors import ConfigError

AXIS_HELP = {
    "models": "paper-b: vit-augreg, swin-b, convnext-b, resnet50-a1, clip-vit-b16, clip-convnext-b; "
              "embedded: mobilenet-v2, vit-s-dinov2",
    "datasets": "e.g. cifar10, cub200, stanford-dogs, domainnet-real (paper-a); fgvc-aircraft, imagenette (paper-b)",
    "eps": "paper-a: 1/255 or clean (DomainNet); paper-b: eps_g 4/255, 8/255 (and 1/255..9/255)",
    "strategies": "paper-a: full, linear, bitfit, lora, ia3, adapter, compacter",
    "schedules": "paper-b: standard, fix, scheduled, linear, uniform, auto",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="run a paper's study (its shipped configs, or its full grid), report and findings",
        description="paper-a: the seven strategies; paper-b: the schedules plus standard fine-tuning as the "
                    "reference. --scale embedded runs every claim's runs offline on a CPU (both embedded backbones x "
                    "two tasks x the strategies or the eps_g grid and schedules: robustft.sweep.embedded_grid); "
                    "--scale full runs the "
                    "paper's grid of backbones, datasets and eps (online, GPU), or the part the axis flags select "
                    "(comma lists; unknown values list the valid ones). --plan prints the runs and a GPU-hour "
                    "estimate without training.")
    parser.add_argument("paper", choices=("paper-a", "paper-b"))
    add_override_options(parser)  # key=value / --set KEY=VALUE: applied to every run, e.g. train.epochs=1
    parser.add_argument("--scale", choices=("embedded", "full"), default="embedded")
    for axis, text in AXIS_HELP.items():
        parser.add_argument(f"--{axis}", default=None, metavar="A,B,...",
                            help=f"only these {axis} of the grid ({text})")
    parser.add_argument("--plan", action="store_true",
                        help="print the runs, their count and estimated cost (full: GPU-hours; embedded: CPU-minutes "
                             "and wall time on 2 cores); train nothing")
    parser.add_argument("--calibrate", action="store_true",
                        help="with --plan: price runs by timing a few training steps of each backbone here (random "
                             "weights), not by the shipped reference table")
    parser.add_argument("--tune", action="store_true",
                        help="an ASHA search of lr / weight decay per run before training it (paper B's protocol; "
                             "`robustft tune`'s settings), on the same Ray cluster")
    parser.add_argument("--tune-trials", type=int, default=None, help="--tune: trials per search (default: tune's)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--output-dir", default=None,
                        help="study directory (default: runs/reproduce-<paper>-<scale>; re-running resumes it)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="local executor: runs at a time (default: one per CPU core)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs reserved per run (and per trial)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0,
                        help="Ray: GPUs reserved per run and per --tune trial (full scale: 1)")
    parser.add_argument("--storage", default=None, metavar="URI",
                        help="Ray: write the runs into this store every node reaches (s3://bucket/dir, gs://..., "
                             "file:///shared/dir); runs sync at each checkpoint and resume on another node if theirs "
                             "dies. Finished runs are copied into the study directory for its report")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.sweep.forked_runs import start_server

    if args.executor == "local" and not args.plan:
        start_server()  # its imports overlap this process's own (sweep/forked_runs.py)
    from robustft.cli.study_run import execute
    from robustft.sweep.paper_grid import AXES
    from robustft.sweep.study import paper_study

    if args.storage and args.executor != "ray":
        raise ConfigError(f"--storage {args.storage} is for runs spread over a Ray cluster; add --executor ray "
                          "(and --ray-address), or drop --storage to write the runs into the study directory.")
    if args.calibrate and not args.plan:
        raise ConfigError("--calibrate calibrates the cost estimate of --plan; add --plan.")
    if args.calibrate and args.scale != "full":
        raise ConfigError("--calibrate probes the papers' full-scale backbones; the embedded plan is priced with "
                          "speeds measured on the 2-core machine (robustft.sweep.embedded_cost). Drop --calibrate.")
    study = paper_study(args.paper, args.scale, {axis: getattr(args, axis) for axis in AXES})
    out = Path(args.output_dir) if args.output_dir else Path("runs") / f"reproduce-{study.name}"
    # Not overrides_of(args): --output-dir is the study directory here, not the runs' output_dir.
    fixed = [*args.overrides, *args.set_overrides]
    if args.plan:
        print(_plan(study, out, fixed, calibrate=args.calibrate, tune=args.tune, trials=args.tune_trials,
                    jobs=args.jobs))
        return 0
    if args.tune:
        from robustft.sweep.study import resolve_study
        from robustft.sweep.study_tune import tune_study

        resolve_study(study, out, fixed)  # every arm validated before the first search starts
        study = tune_study(study, out, fixed=fixed, ray_address=args.ray_address, cpus_per_trial=args.cpus_per_run,
                           gpus_per_trial=args.gpus_per_run, trials=args.tune_trials,
                           on_status=lambda line: print(line, file=sys.stderr, flush=True))
    return execute(study, out, fixed=fixed, executor=args.executor, jobs=args.jobs,
                   ray_address=args.ray_address, quiet=args.quiet, title=f"robustft reproduce {study.name}",
                   cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run, storage=args.storage)


def _plan(study: object, out: Path, fixed: list[str], *, calibrate: bool, tune: bool, trials: int | None,
          jobs: int | None = None) -> str:
    from robustft.sweep.cost_probe import measured_calibration, reference_calibration
    from robustft.sweep.cost_tables import architecture
    from robustft.sweep.plan import format_plan, plan_table, tune_budget
    from robustft.sweep.study import resolve_study

    _, configs = resolve_study(study, out, fixed)  # the configs the runs would have; no data, no weights
    if study.name.endswith("-embedded"):  # CPU minutes from this machine's measured speeds, not GPU-hours
        from robustft.sweep.embedded_cost import embedded_plan

        if jobs is not None and jobs < 1:
            raise ConfigError(f"--jobs {jobs} must be at least 1.")
        # --jobs as the run would use it; without it, the 2 cores the speeds were measured on
        return embedded_plan(study, configs) if jobs is None else embedded_plan(study, configs, jobs=jobs)
    archs = [architecture(str(c["model"]["name"])) for c in configs]
    if calibrate:
        print(f"robustft: probing {len(set(archs))} backbone(s) on this machine...", file=sys.stderr, flush=True)
    calibration = measured_calibration(archs) if calibrate else reference_calibration(archs)
    budget = tune_budget(trials) if tune else None
    return format_plan(study, configs, plan_table(study, configs, calibration, budget), calibration, budget)
