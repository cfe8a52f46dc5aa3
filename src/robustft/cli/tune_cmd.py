"""``robustft tune CONFIG [--search KEY=DIST ...] [--trials N] [--metric M] [--epochs N | --steps N] [--address A]``."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", help="ASHA hyper-parameter search on Ray Tune (paper B's lr / weight decay); writes best.yaml",
        description="Paper B's protocol: Ray Tune's ASHA over optim.lr and optim.weight_decay log-uniform on "
                    "[1e-5, 1e-1] by default, maximising validation clean accuracy; trials report at every "
                    "evaluation so bad ones stop early. Writes best.json and a ready best.yaml; re-running the same "
                    "command resumes the search (after Ctrl-C or a crash), a different one in the same --output-dir "
                    "is refused.")
    parser.add_argument("config", help="base YAML config")
    parser.add_argument("--search", action="append", default=[], metavar="KEY=DIST",
                        help="a searched key: loguniform:a:b, uniform:a:b or choice:x,y,z (repeatable; default "
                             "optim.lr and optim.weight_decay loguniform:1e-5:1e-1)")
    parser.add_argument("--trials", type=int, default=8, help="trials in all, the config's own values first")
    parser.add_argument("--metric", default="val/clean/accuracy", help="record key to optimise")
    parser.add_argument("--mode", choices=("max", "min"), default="max")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="per-trial budget in epochs (default: the config's)")
    budget.add_argument("--steps", type=int, default=None, help="per-trial budget in optimiser steps")
    parser.add_argument("--grace-period", type=int, default=None,
                        help="ASHA's first rung in the budget's unit (default 1 epoch, or an eighth of the steps)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA keeps 1/N of the trials per rung")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="fixed",
                        help="an override applied to every trial and to best.yaml (repeatable)")
    parser.add_argument("--output-dir", default=None, help="where the search goes (default: output_dir/<name>-tune)")
    parser.add_argument("--executor", choices=("ray",), default="ray", help="searches always run on Ray Tune")
    parser.add_argument("--address", "--ray-address", dest="address", default=None,
                        help="Ray cluster address, e.g. auto (default: RAY_ADDRESS if set, else a new local Ray "
                             "instance)")
    parser.add_argument("--cpus", type=int, default=None, help="local Ray instance: CPUs it may use (default all)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.25")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.sweep.tune import SearchInterrupted, parse_search, run_tune

    search = parse_search(args.search)
    print(f"tune: {args.trials} trial(s) over {', '.join(search)}", file=sys.stderr)
    try:
        result = run_tune(args.config, search, fixed=args.fixed, output_dir=args.output_dir, trials=args.trials,
                          metric=args.metric, mode=args.mode, epochs=args.epochs, steps=args.steps,
                          grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                          address=args.address, cpus=args.cpus, cpus_per_trial=args.cpus_per_trial,
                          gpus_per_trial=args.gpus_per_trial, seed=args.seed,
                          on_status=lambda line: print(line, file=sys.stderr, flush=True))
    except SearchInterrupted as stopped:
        print(f"tune: {stopped}", file=sys.stderr)
        return 130  # as for any Ctrl-C (robustft.cli.main)
    print(result.trials.to_string(index=False), file=sys.stderr)
    values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_values.items())
    print(f"tune: best {args.metric} {result.best_metric:.4f} with {values} (trial {result.best_trial}); "
          f"{result.steps_run} steps run of {result.steps_full} without early stopping")
    print(f"tune: train it with `robustft train {result.best_yaml}`")
    return 0
