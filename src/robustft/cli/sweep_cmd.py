"""``robustft sweep CONFIG --grid key=v1,v2 ... [--executor local|ray] [--jobs N] [--report]``."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run a grid of configs (locally or on Ray); resumable; optional report",
        description="Expands --grid items into runs (cartesian product), validates them all, then runs each; "
                    "finished runs are skipped and interrupted ones resumed, so re-running a sweep continues it.")
    parser.add_argument("config", help="base YAML config")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a dotted key and its values, e.g. strategy.name=full,lora (repeatable)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="run every grid point with seeds 0..N-1 (a last `seed` axis; analysis groups by the rest)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="fixed",
                        help="an override applied to every run (repeatable)")
    parser.add_argument("--output-dir", default=None, help="where the runs go (default: output_dir/name of the config)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--jobs", type=int, default=1, help="local executor: runs at a time")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local instance)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0)
    parser.add_argument("--gpus-per-run", type=float, default=0.0)
    parser.add_argument("--report", action="store_true", help="write an HTML report over the sweep's runs")
    parser.add_argument("--group-by", default="run", help="report: group Pareto frontiers by this label")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.sweep import STATUS_FAILED, add_seed_axis, parse_grid, resolve_points, run_sweep

    grid = add_seed_axis(parse_grid(args.grid), args.seeds)
    points, _, out = resolve_points(args.config, grid, args.fixed, args.output_dir)
    print(f"sweep: {len(points)} run(s) into {out}", file=sys.stderr)

    def show(result) -> None:
        line = f"  {result.status:<9} {result.name}"
        print(line + (f"  ({result.error})" if result.error else ""), file=sys.stderr, flush=True)

    results = run_sweep(args.config, grid, fixed=args.fixed, output_dir=out, executor=args.executor, jobs=args.jobs,
                        ray_address=args.ray_address, cpus_per_run=args.cpus_per_run,
                        gpus_per_run=args.gpus_per_run, on_result=show)
    failed = [r for r in results if r.status == STATUS_FAILED]
    print(f"sweep: {len(results) - len(failed)} finished or skipped, {len(failed)} failed; "
          f"manifest {out / 'sweep.json'}")
    if args.report:
        from robustft.report import build_report
        from robustft.report.collect import collect_runs

        done = [r.path for r in results if r.status != STATUS_FAILED]
        if done:
            page = build_report(collect_runs(done), out / "report", title=f"sweep {out.name}", group_by=args.group_by)
            print(f"report: {page}")
    return 1 if failed else 0
