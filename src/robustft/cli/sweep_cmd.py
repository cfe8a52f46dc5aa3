"""``robustft sweep CONFIG [key=value ...] --grid key=v1,v2 ... [--set key=value] [--output-dir DIR]
[--executor local|ray [--storage URI]] [--jobs N] [--report [--group-by strategy]]``;
``robustft sweep --status DIR``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from robustft.cli.options import OVERRIDE_TOKEN, add_output_dir_option, add_override_options
from robustft.cli.report_cmd import GROUPS
from robustft.errors import RobustftError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run a grid of configs (locally or on Ray); resumable; optional report",
        description="Expands --grid items into runs (cartesian product), checks them all, then runs each; "
                    "finished runs are skipped, interrupted ones resumed and runs another process is training "
                    "left to it, so re-running a sweep continues it. --status DIR shows where a sweep stands.")
    parser.add_argument("config", nargs="?", help="base YAML config (omit with --status)")
    parser.add_argument("--status", metavar="DIR", default=None,
                        help="print done / running / failed / pending per point of the sweep in DIR, run nothing")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a dotted key and its values, e.g. strategy.name=full,lora (repeatable)")
    add_override_options(parser)  # key=value / --set KEY=VALUE: applied to every run
    add_output_dir_option(parser, "default: the config's output_dir/name")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="run every grid point with seeds 0..N-1 (a last `seed` axis; analysis groups by the rest)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--jobs", type=int, default=None,
                        help="local executor: runs at a time (default: one per CPU core, one thread each; 1 on a GPU)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0)
    parser.add_argument("--gpus-per-run", type=float, default=0.0,
                        help="Ray: GPUs reserved per run, whole (1, 2) or a fraction of one shared GPU (0.5)")
    parser.add_argument("--storage", default=None, metavar="URI",
                        help="Ray: write the runs into this store every node reaches (s3://bucket/dir, gs://..., "
                             "file:///shared/dir) instead of --output-dir; runs sync at each checkpoint and resume "
                             "on another node if theirs dies. Finished runs are copied into --output-dir")
    parser.add_argument("--report", action="store_true", help="write an HTML report over the sweep's runs")
    parser.add_argument("--group-by", default="run", choices=GROUPS,
                        help="report: how evaluation points are grouped into Pareto frontiers (paper A: strategy)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.status is not None:
        refuse_run_options_with_status(args)
        return show_status(args.status)
    if args.config is None:
        raise RobustftError("robustft sweep needs a base config (robustft sweep configs/demo.yaml --grid "
                            "strategy.name=full,lora), or --status DIR to show a sweep's progress.")
    from robustft.sweep.forked_runs import start_server

    if args.executor == "local":
        start_server()  # its imports overlap this process's own (sweep/forked_runs.py)
    from robustft.sweep.grid import parse_grid
    from robustft.sweep.manifest import STATUS_FAILED, STATUS_RUNNING
    from robustft.sweep.study_pipeline import plan_study, run_plan

    fixed = [*args.overrides, *args.set_overrides]
    plan = plan_study(Path(args.config), args.output_dir, grid=parse_grid(args.grid), seeds=args.seeds,
                      overrides=fixed, jobs=args.jobs)
    out = plan.output_dir
    stored = f" (runs stored in {args.storage})" if args.storage else ""
    print(f"sweep: {len(plan.points)} run(s) into {out}{stored}", file=sys.stderr)
    for point in plan.points:
        if point.note:
            print(f"  note: {point.name}: {point.note}", file=sys.stderr)

    def show(event: str, result: Any) -> None:
        if event != "done":
            return
        line = f"  {result.status:<9} {result.name}"
        detail = result.error or result.extra.get("detail")
        print(line + (f"  ({detail})" if detail else ""), file=sys.stderr, flush=True)

    study = run_plan(plan, executor=args.executor, ray_address=args.ray_address, cpus_per_run=args.cpus_per_run,
                     gpus_per_run=args.gpus_per_run, storage=args.storage, progress=show, analyse=args.report,
                     title=_report_title(args.config, plan.grid, len(plan.points)), group_by=args.group_by)
    results = study.results
    failed = [r for r in results if r.status == STATUS_FAILED]
    running = [r for r in results if r.status == STATUS_RUNNING]
    elsewhere = f"{len(running)} running elsewhere (not started again), " if running else ""
    print(f"sweep: {len(results) - len(failed) - len(running)} finished or skipped, {elsewhere}{len(failed)} failed; "
          f"manifest {out / 'sweep.json'}" + (f"; `robustft sweep --status {out}` shows progress" if running else ""))
    if study.report is not None:
        print(f"report: {study.report} (findings: {study.findings_file})")
    return 1 if failed else 0


def refuse_run_options_with_status(args: argparse.Namespace) -> None:
    """``--status DIR`` runs nothing, so a config or run option beside it would be silently ignored: refused.

    Raises:
        RobustftError: naming what was given and the two commands the user may have meant.
    """
    config, overrides = args.config, list(args.overrides)
    if config is not None and OVERRIDE_TOKEN.match(config):  # `--status DIR key=value`: argparse's first positional
        config, overrides = None, [config, *overrides]
    given = [f"the config {config}"] if config is not None else []
    given += [f"--grid {g}" for g in args.grid] + overrides + [f"--set {o}" for o in args.set_overrides]
    given += [f"{flag} {value}" for flag, value in (("--output-dir", args.output_dir), ("--seeds", args.seeds))
              if value is not None] + (["--report"] if args.report else [])
    if given:
        run = shlex.join(["robustft", "sweep", config or "CONFIG", "..."])
        raise RobustftError(
            f"robustft sweep --status {args.status} only shows where that sweep stands and runs nothing, so "
            f"{', '.join(given)} would be ignored. Drop {'it' if len(given) == 1 else 'them'} to see the status "
            f"(robustft sweep --status {args.status}), or drop --status to run or continue the sweep ({run}).")


def show_status(directory: str) -> int:
    """Prints one line per point (status, name, detail) and a count per status; exit 0."""
    from robustft.sweep.status import sweep_status

    rows = sweep_status(directory)
    width = max([len(r.name) for r in rows] + [4])
    print(f"{'status':<8} {'point':<{width}}  detail")
    for row in rows:
        print(f"{row.status:<8} {row.name:<{width}}  {row.detail}".rstrip())
    counts = {s: sum(r.status == s for r in rows) for s in ("done", "running", "failed", "pending")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)} point(s)")
    return 0


def _report_title(config: str, grid: dict[str, list[str]], runs: int) -> str:
    """``robustft sweep configs/x.yaml over strategy.name x seed (12 runs)``: what was swept, not the folder name."""
    axes = " x ".join(grid) if grid else "no grid"
    return f"robustft sweep {config} over {axes} ({runs} runs)"

