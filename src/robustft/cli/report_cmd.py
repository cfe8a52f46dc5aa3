"""``robustft report RUN_DIR|GLOB ... [--output-dir DIR] [--group-by strategy]``: one HTML page over many runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustft.cli.options import add_output_dir_option

GROUPS = ("run", "strategy", "objective", "eps", "model", "data")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write an HTML report (Pareto frontiers, robust curves, OOD) over run directories")
    parser.add_argument("runs", nargs="+", help="run directories, their parent (e.g. runs/) or globs ('runs/*')")
    add_output_dir_option(parser, "default: RUN/report for one run, else ./report")
    parser.add_argument("--group-by", default="run", choices=GROUPS,
                        help="how evaluation points are grouped into Pareto frontiers (paper A: strategy)")
    parser.add_argument("--title", default="robustft report")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.report import build_report
    from robustft.runs import load_runs

    records = load_runs(args.runs)
    default = records[0].path / "report" if len(records) == 1 else Path("report")
    out = Path(args.output_dir) if args.output_dir else default
    page = build_report(records, out, title=args.title, group_by=args.group_by)
    print(f"report: {page} ({len(records)} run(s))")
    return 0
