"""``robustft query "SQL" RUN_DIR|GLOB ...``: DuckDB SQL over run directories (views ``metrics`` and ``runs``)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query", help="run DuckDB SQL over run directories (views: metrics, runs)",
        description="Views: metrics (step, epoch, split, metric, attack, eps, value, n, ci_low, ci_high, time, "
                    "extra, run, path) and runs (run, path, model, dataset, strategy, objective, eps_schedule, "
                    "eps_train, lr, seed). Example: robustft query \"SELECT run, max(value) FROM metrics WHERE "
                    "split='test' AND attack='pgd' GROUP BY run\" runs/")
    parser.add_argument("sql", help="a DuckDB SELECT over the views metrics and runs")
    parser.add_argument("runs", nargs="+", help="run directories, their parent (e.g. runs/) or globs")
    parser.add_argument("--csv", default=None, metavar="OUT", help="also write the result as CSV to OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.runs import query_runs

    frame = query_runs(args.runs, args.sql)
    print(frame.to_string(index=False) if len(frame) else "(no rows)")
    if args.csv:
        frame.to_csv(args.csv, index=False)
    return 0
