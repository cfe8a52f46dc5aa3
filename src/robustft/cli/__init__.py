"""The ``robustft`` command line: a thin layer over the library.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``, which registers the parser and
sets ``func(args) -> int``. Errors the user can fix (``RobustftError``) are printed as one paragraph on stderr
with exit status 2, never as a traceback.

The command modules import the library inside their ``run`` functions, not at the top: ``robustft --help`` and
``robustft list`` then start without torch, and a command loads only what it uses. These are the only
function-level imports of the package besides the torch-heavy ones a sweep's parent process avoids (robustft.sweep)
and ``robustft.train`` itself; none of them hides an import cycle (tests/test_layering.py).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence

from robustft.cli.options import parse_command_line
from robustft.errors import RobustftError

# Options whose value may be written with a leading minus (a negative eps is refused with robustft's message,
# not argparse's "expected one argument", which is what argparse says for "--eps -1/255").
SIGNED_VALUE_OPTIONS = frozenset({"--eps", "--curve", "--step-size"})

# Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = ("list_cmd", "train_cmd", "eval_cmd", "export_cmd", "report_cmd", "sweep_cmd", "tune_cmd",
                   "query_cmd", "demo_cmd", "reproduce_cmd")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="robustft",
        description="Fine-tune pretrained vision models and measure accuracy, adversarial and OOD robustness.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"robustft.cli.{module_name}")
        module.add_parser(subparsers)
    # Options are their full names only: with argparse's prefix matching, the removed ``report --out`` kept working
    # as ``--output-dir``, and a new option sharing a prefix would silently change what an old command line means.
    for command in subparsers.choices.values():
        command.allow_abbrev = False
    return parser


def _version() -> str:
    from robustft import __version__

    return __version__


def join_signed_values(argv: list[str]) -> list[str]:
    """``["--eps", "-1/255"]`` -> ``["--eps=-1/255"]`` for :data:`SIGNED_VALUE_OPTIONS`.

    argparse takes a token starting with "-" for an option unless it looks like a plain negative number, so
    ``--eps -1/255`` would fail inside argparse; joined, the value reaches robustft's eps parser, whose error
    says what an eps must be.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in SIGNED_VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and argv[i + 1][1:2] in tuple("0123456789.+"):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robustft`` console script. Returns the process exit status."""
    parser = build_parser()
    args = parse_command_line(parser, join_signed_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except RobustftError as error:
        print(f"robustft: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        # A sweep, demo or reproduce stopped by a signal (robustft.sweep.interrupt.SweepInterrupted) says how far
        # it got, and the same command resumes it (plus what the command adds, e.g. demo's --resume DIR).
        if hasattr(stop, "exit_status"):
            resume = ["robustft", *(sys.argv[1:] if argv is None else argv), *getattr(stop, "resume_args", [])]
            print(f"robustft: {stop}\nrobustft: to resume, run: {shlex.join(resume)}", file=sys.stderr)
            return int(stop.exit_status)
        print("robustft: interrupted", file=sys.stderr)
        return 130
