"""The ``robustft`` command line: a thin layer over the library.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``, which registers the parser and
sets ``func(args) -> int``. Errors the user can fix (``RobustftError``) are printed as one paragraph on stderr
with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from robustft.errors import RobustftError

# Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = ("list_cmd", "train_cmd", "eval_cmd", "report_cmd", "sweep_cmd", "query_cmd", "demo_cmd",
                   "reproduce_cmd")


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
    return parser


def _version() -> str:
    from robustft import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robustft`` console script. Returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except RobustftError as error:
        print(f"robustft: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robustft: interrupted", file=sys.stderr)
        return 130
