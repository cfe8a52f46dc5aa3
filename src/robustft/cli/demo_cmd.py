"""``robustft demo [--output-dir DIR] [--quick] [--jobs N]``: both papers' comparative studies on the embedded default.

Paper A's seven fine-tuning strategies (each with its own learning rate, robust accuracy on paper A's evaluation
schedule, corrupted test sets as OOD splits) and paper B's standard fine-tuning reference, RFT-fix and
Epsilon-Scheduling, all on the embedded ImageNet MobileNetV2 and Fashion-MNIST at 32 px, run in parallel through
the sweep machinery; then the HTML report (Findings first) and a terminal summary. The configs are
``configs/demo/`` (their comments say why each setting was chosen); ``--quick`` is the same pipeline on less
data and fewer steps (CI runs it). Each invocation writes a new ``runs/demo-<time>/``; ``--resume DIR`` continues
an interrupted one instead (Ctrl-C prints that command: ``robustft.sweep.interrupt``).

Default ``--jobs``: one run per CPU core, one thread each, one run at a time on a GPU (``sweep.jobs.default_jobs``).
Measured on the 2-core machine, otherwise idle, side by side on 2026-12-01: the full demo took 5 min 09 s wall
(9.2 CPU-min) as 2 runs x 1 thread and 7 min 56 s (13.8 CPU-min) as 1 run x 2 threads (``--jobs 1``), so 2 x 1 is
1.5x faster. The runs are small (32 px images, batch 64): MobileNetV2's intra-op threading costs more CPU than it
saves at this size, and attacks on early-stopped, shrinking batches gain less still, while each run's serial parts
(Python start-up, data loading, checkpointing) overlap with the other run's compute. Larger images change this:
pass ``--jobs``. Thread counts also change floating-point summation order, so the two layouts' trajectories differ
slightly (the findings at these sample sizes can move between "holds" and "inconclusive"; their intervals say so).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
from pathlib import Path

from robustft.cli.options import add_output_dir_option, add_override_options, overrides_of
from robustft.errors import RobustftError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="both papers' studies on embedded data (minutes on a CPU): summary, findings, HTML report",
        description="Fine-tunes the embedded MobileNetV2 on embedded Fashion-MNIST with paper A's seven strategies "
                    "and paper B's reference, RFT-fix and Epsilon-Scheduling (10 runs, in parallel), then prints "
                    "one row per strategy and schedule, the papers' findings with verdicts, and the report's path.")
    add_override_options(parser)  # key=value / --set KEY=VALUE: applied to every run of the study
    add_output_dir_option(parser, "the study directory demo-<time>/ goes there; default: runs")
    parser.add_argument("--quick", action="store_true",
                        help="the same pipeline on less data and fewer steps (about 70 s on 2 idle cores; too noisy "
                             "to decide most findings)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at a time (default: one per CPU core, one thread each)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the interrupted study in DIR (runs/demo-<time>) instead of starting a new one")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robustft.sweep.forked_runs import start_server

    start_server()  # its imports overlap this process's own (the demo's runs are local: sweep/forked_runs.py)
    from robustft.cli.study_run import execute
    from robustft.sweep.embedded_grid import demo_leaves_line
    from robustft.sweep.interrupt import SweepInterrupted
    from robustft.sweep.study import demo_study

    study = demo_study(quick=args.quick)
    if args.resume:
        out = Path(args.resume)
        _check_resumable(out, study.name)
    else:
        # A fresh study directory each time, so `make demo` can be run again without deleting anything.
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(args.output_dir or "runs") / f"{study.name}-{stamp}"
    try:
        status = execute(study, out, fixed=overrides_of(args), executor="local", jobs=args.jobs, ray_address=None,
                         quiet=args.quiet, title=f"robustft demo: {out.name}")
    except SweepInterrupted as stop:
        if not args.resume:  # the same command would start a new study directory: name this one
            stop.resume_args = ["--resume", str(out)]
        raise
    print(demo_leaves_line(out / "findings.json"))  # what the demo cannot decide (robustft.sweep.embedded_grid)
    hint = closing_hint(out)
    if hint:
        print(hint)
    return status


def closing_hint(out: Path) -> str | None:
    """How to re-evaluate one of the demo's runs on the images it evaluated, with a stronger attack; None when no
    run of the demo finished.

    Paper B's RFT-fix run is the one named when it finished: paper B's APGD-CE-10 has not converged at the demo's
    eps_g (32/255), and 100 steps on the same images show it (README, "Paper B's attack has not converged").
    """
    run = next((out / name for name in ("b-fix", "a-full") if (out / name / "summary.json").is_file()), None)
    if run is None:
        return None
    attack = "--attack apgd-ce --steps 100 --curve 0:32/255" if run.name == "b-fix" else \
        "--attack apgd-ce --steps 10 --eps 1/255 --curve 0:4/255"
    why = " (paper B's APGD-CE-10 has not converged at 32/255 here; add --checks to see it flagged)" \
        if run.name == "b-fix" else ""
    return (f"Each run directory holds metrics.jsonl, summary.json and checkpoints/. Re-evaluate a run on the images "
            f"it evaluated, with a stronger attack and a robust curve{why}:\n  {command_name()} eval --checkpoint "
            f"{run} --subset-of {run} {attack}")


def command_name() -> str:
    """How to call robustft again from this shell: ``robustft`` when that is on the PATH and is this program, else
    the path it was called by (``make demo`` calls ``.venv/bin/robustft``, which a fresh shell does not find)."""
    script = Path(sys.argv[0])
    found = shutil.which("robustft")
    if script.name != "robustft" or not script.is_file():
        return "robustft"
    if found is not None and Path(found).resolve() == script.resolve():
        return "robustft"
    return str(script)


def _check_resumable(out: Path, study: str) -> None:
    """``--resume DIR``: DIR must be a demo study directory of the same kind (``--quick`` or not).

    Raises:
        RobustftError: DIR has no ``sweep.json``, or it holds the other study.
    """
    try:
        found = json.loads((out / "sweep.json").read_text(encoding="utf-8")).get("study")
    except (OSError, ValueError, AttributeError):
        raise RobustftError(f"--resume {out}: no readable sweep.json there; pass the study directory an interrupted "
                            "`robustft demo` printed (runs/demo-<time>).") from None
    if found != study:
        quick = "add --quick" if found == "demo-quick" else "drop --quick"
        raise RobustftError(f"--resume {out}: that directory holds the study {found!r}, not {study!r}; {quick} "
                            "(or start a new study without --resume).")
