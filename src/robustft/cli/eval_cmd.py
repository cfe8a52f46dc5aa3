"""``robustft eval``: placeholder until its issue lands; it says so and exits non-zero."""

from __future__ import annotations

import argparse

from robustft.errors import RobustftError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="(not built yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise RobustftError("'robustft eval' is not built yet in this version.")
