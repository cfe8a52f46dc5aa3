"""``robustft tune CONFIG [--protocol paper-b|clean-accuracy] [--search KEY=DIST ...] [--trials N] [--metric M]
[--epochs N | --steps N] [--address A]``."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", help="ASHA hyper-parameter search on Ray Tune (paper B's lr / weight decay); writes best.yaml",
        description="Ray Tune's ASHA; trials report at every evaluation so bad ones stop early. --protocol paper-b "
                    "(the default for adversarial configs; from the paper B authors' code): the backbone's and the "
                    "head's lr on loguniform(1e-6, 1e-1) and weight decay on loguniform(1e-6, 1e-2), cosine "
                    "schedule on or off, validation adversarial loss minimised, reduction factor 2. --protocol "
                    "clean-accuracy (the default for standard fine-tuning): optim.lr and optim.weight_decay on "
                    "loguniform(1e-5, 1e-1), validation clean accuracy maximised, reduction factor 3. Writes "
                    "best.json and a ready best.yaml; re-running the same command resumes the search (after Ctrl-C "
                    "or a crash), a different one in the same --output-dir is refused.")
    parser.add_argument("config", help="base YAML config")
    # the names are checked by robustft.sweep.tune_protocol (importing it here would load robustft.sweep for
    # every command's parser)
    parser.add_argument("--protocol", default=None, metavar="paper-b|clean-accuracy",
                        help="what is searched and tuned (default: paper-b for an adversarial or TRADES objective, "
                             "else clean-accuracy); --search, --metric, --mode, --reduction-factor replace its parts")
    parser.add_argument("--search", action="append", default=[], metavar="KEY=DIST",
                        help="a searched key: loguniform:a:b, uniform:a:b or choice:x,y,z (repeatable; default: "
                             "the protocol's space)")
    parser.add_argument("--trials", type=int, default=8, help="trials in all, the config's own values first")
    parser.add_argument("--metric", default=None,
                        help="record key to optimise (default: the protocol's, val/<attack>/loss@<eps_g> or "
                             "val/clean/accuracy)")
    parser.add_argument("--mode", choices=("max", "min"), default=None,
                        help="default: the protocol's; for a --metric, min for a loss, else max")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="per-trial budget in epochs (default: the config's)")
    budget.add_argument("--steps", type=int, default=None, help="per-trial budget in optimiser steps")
    parser.add_argument("--grace-period", type=int, default=None,
                        help="ASHA's first rung in the budget's unit (default 1 epoch, or an eighth of the steps)")
    parser.add_argument("--reduction-factor", type=int, default=None,
                        help="ASHA keeps 1/N of the trials per rung (default: the protocol's, 2 or 3)")
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
    from robustft.sweep.tune import SearchInterrupted, run_tune
    from robustft.sweep.tune_space import parse_search

    search = parse_search(args.search) if args.search else None
    try:
        result = run_tune(args.config, search, fixed=args.fixed, output_dir=args.output_dir, trials=args.trials,
                          metric=args.metric, mode=args.mode, epochs=args.epochs, steps=args.steps,
                          grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                          address=args.address, cpus=args.cpus, cpus_per_trial=args.cpus_per_trial,
                          gpus_per_trial=args.gpus_per_trial, seed=args.seed,
                          on_status=lambda line: print(line, file=sys.stderr, flush=True), protocol_name=args.protocol)
    except SearchInterrupted as stopped:
        print(f"tune: {stopped}", file=sys.stderr)
        return 130  # as for any Ctrl-C (robustft.cli.main)
    print(result.trials.to_string(index=False), file=sys.stderr)
    values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_values.items())
    print(f"tune: best {result.metric} {result.best_metric:.4f} with {values} (trial {result.best_trial}); "
          f"{result.steps_run} steps run of {result.steps_full} without early stopping")
    print(f"tune: train it with `robustft train {result.best_yaml}`")
    return 0
