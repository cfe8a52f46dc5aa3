"""``robustft query "SQL" RUN_DIR|GLOB ... [--csv FILE] [--json FILE]``: DuckDB SQL over run directories
(views ``metrics``, ``runs`` and, when named, ``outcomes``)."""

from __future__ import annotations

import argparse
import json

import pandas as pd

from robustft.cli.output import write_csv, write_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query", help="run DuckDB SQL over run directories (views: metrics, runs, outcomes)",
        description="Views: metrics (step, epoch, split, metric, attack, eps, value, n, ci_low, ci_high, time, "
                    "extra, run, path), runs (run, path, model, dataset, strategy, objective, eps_schedule, "
                    "eps_train, lr, seed) and outcomes (run, path, step, split, metric, attack, eps, image_id, "
                    "correct: one row per evaluated image, built only when the query names it). Example: robustft "
                    "query \"SELECT run, max(value) FROM metrics WHERE split='test' AND attack='pgd' GROUP BY "
                    "run\" runs/")
    parser.add_argument("sql", help="a DuckDB SELECT over the views metrics, runs and outcomes")
    parser.add_argument("runs", nargs="+", help="run directories, their parent (e.g. runs/) or globs")
    parser.add_argument("--csv", default=None, metavar="FILE",
                        help="also write the result as CSV to FILE (eps columns as numbers, as stored)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the result as JSON (a list of row objects) to FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.runs.query import query_runs

    frame = query_runs(args.runs, args.sql)
    # SQL's NULL as NULL (pandas would print NaN, and the README's queries test "attack IS NULL")
    print(readable(frame).to_string(index=False, na_rep="NULL") if len(frame) else "(no rows)")
    if args.csv:
        write_csv(args.csv, [str(c) for c in frame.columns], frame.itertuples(index=False, name=None))
        print(f"wrote {args.csv}")
    if args.json:
        write_json(args.json, json.loads(frame.to_json(orient="records")))
        print(f"wrote {args.json}")
    return 0


EPS_COLUMNS = ("eps", "eps_train")


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for the terminal: numeric ``eps`` / ``eps_train`` columns as users write them (``4/255``, not
    0.015686). The CSV and JSON files keep the stored numbers, which SQL and plotting code compare against."""
    from robustft.config.units import format_eps

    shown = frame.copy()
    for column in EPS_COLUMNS:
        if column in shown.columns and pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = [format_eps(value) if pd.notna(value) else None for value in shown[column]]
    return shown
