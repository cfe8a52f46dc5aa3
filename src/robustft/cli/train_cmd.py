"""``robustft train CONFIG.yaml [key=value ...] [--set key=value] [--output-dir DIR] [--resume RUN] [--quiet]``."""

from __future__ import annotations

import argparse
import logging
import sys

from robustft.cli.options import add_output_dir_option, add_override_options, overrides_of
from robustft.errors import RobustftError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model as a config says; evaluate continuously; resumable",
        description="Fine-tune a pretrained model (any strategy x objective x eps schedule), writing metrics.jsonl, "
                    "checkpoints and summary.json into OUTPUT_DIR/name.")
    parser.add_argument("config", nargs="?", help="YAML config file (omit with --resume: the run's config.yaml is "
                                                  "used; change it with key=value, recorded in the run)")
    add_override_options(parser)
    add_output_dir_option(parser, "default: the config's output_dir, runs")
    parser.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr (for sweeps)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.runs.interrupt import RunInterrupted
    from robustft.training.trainer import train

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="robustft: %(message)s")
    overrides = overrides_of(args)
    config = args.config
    if args.resume is None and config is None:
        raise RobustftError("robustft train needs a config file (robustft train configs/demo.yaml) or "
                            "--resume RUN to continue a run.")
    if args.resume is not None and config is not None and "=" in config:
        overrides.insert(0, config)  # `--resume RUN key=value`: the first positional is an override
        config = None
    if config is not None and "=" in config and args.resume is None:
        raise RobustftError(f"the first argument {config!r} looks like an override; put the config file first: "
                            "robustft train CONFIG.yaml key=value ...")
    if args.resume is not None and args.output_dir is not None:
        raise RobustftError("--output-dir does not apply to --resume: a resumed run stays in its directory.")
    try:
        result = train(config, overrides, resume=args.resume, quiet=True if args.quiet else None)
    except RunInterrupted as stop:  # SIGINT / SIGTERM: the trainer saved a checkpoint at the current step
        print(f"robustft: {stop}\nrobustft: to resume, run: {stop.resume_command}", file=sys.stderr, flush=True)
        return stop.exit_status
    print(format_result(result))
    return 0


def format_result(result) -> str:
    """The final accuracies like ``robustft eval`` prints them: metric, value, 95% CI, n; then the evaluation's share
    of the run's wall time (``evaluation_line``) and the run directory.

    Read from the run's ``metrics.jsonl`` (the last step's records; they carry n and the Wilson interval) and
    falling back to ``summary.json``'s ``final`` values when the file is missing.
    """
    rows = _final_rows(result)
    width = max([len("metric"), *(len(r[0]) for r in rows)]) + 2
    lines = [f"{'metric':<{width}}{'value':>7} {'95% CI':>16} {'n':>6}"]
    for key, value, low, high, n in rows:
        ci = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        lines.append(f"{key:<{width}}{value:>7.4f} {ci:>16} {n if n is not None else '':>6}")
    timing = evaluation_line(result.summary)
    if timing:
        lines.append(timing)
    lines.append(f"run directory: {result.path}")
    return "\n".join(lines)


def evaluation_line(summary: dict | None) -> str | None:
    """``evaluation: 11.5 s of 42.7 s wall (27%), 5 points`` from summary.json's timings; None without them."""
    summary = summary or {}
    seconds, wall, share = summary.get("eval_seconds"), summary.get("wall_seconds"), summary.get("eval_share")
    if seconds is None or not wall or share is None:
        return None
    points = summary.get("evaluation_points")
    reused = ", step 0 shared with an earlier run of the study" if summary.get("evaluation_reused") else ""
    return (f"evaluation: {seconds:.1f} s of {wall:.1f} s wall ({share:.0%})"
            f"{f', {points} points' if points else ''}{reused}")


def _shown(key: str) -> bool:
    return key.endswith("accuracy") or "accuracy@" in key or key.endswith("expected_robustness")


def _final_rows(result) -> list[tuple]:
    from robustft.runs.metrics_file import read_records
    from robustft.runs.records import record_key

    rows: dict[str, tuple] = {}
    records = read_records(result.path / "metrics.jsonl")  # complete lines only: a killed run's torn line is left out
    if records:
        last = max(r["step"] for r in records)
        for r in records:
            key = record_key(r)
            if r["step"] == last and r["split"] != "optim" and r.get("value") is not None and _shown(key):
                rows[key] = (key, r["value"], r.get("ci_low"), r.get("ci_high"), r.get("n"))
        return list(rows.values())
    final = result.summary.get("final", {})
    return [(key, value, None, None, None) for key, value in final.items() if value is not None and _shown(key)]
