"""The options every config-running command shares (``train``, ``demo``, ``sweep``, ``reproduce``): one vocabulary.

- overrides: positional ``key=value`` and ``--set key=value`` (repeatable) mean the same; positional first, then
  ``--set`` in order, so a later one wins;
- ``--output-dir DIR``: where run directories go (the config's ``output_dir``);
- ``--quiet``: no progress on stderr;
- old spellings (``report --out``) stay for one release as :class:`DeprecatedAlias` options: hidden from
  ``--help``, they store into the new option and print one deprecation line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_override_options(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """Adds ``key=value ...`` (positional, unless ``positional`` is False) and ``--set KEY=VALUE``."""
    if positional:
        parser.add_argument("overrides", nargs="*", metavar="key=value",
                            help="dotted config overrides, e.g. optim.lr=3e-4 eps.value=0.25/255")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_overrides",
                        help="the same as a positional key=value (repeatable)")


def add_output_dir_option(parser: argparse.ArgumentParser, default_text: str) -> None:
    parser.add_argument("--output-dir", default=None, metavar="DIR", help=f"where the output goes ({default_text})")


def overrides_of(args: argparse.Namespace) -> list[str]:
    """Positional overrides, then ``--set`` ones, then ``output_dir=`` from ``--output-dir`` (it wins)."""
    overrides = [*getattr(args, "overrides", []), *getattr(args, "set_overrides", [])]
    if getattr(args, "output_dir", None) is not None:
        overrides.append(f"output_dir={args.output_dir}")
    return overrides


class DeprecatedAlias(argparse.Action):
    """An old option name that stores into the new option's ``dest`` and says, once, what to write instead."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"robustft: warning: {option_string} is deprecated and will be removed in the next release; "
              f"write {self.new} (the same name in every command).", file=sys.stderr)
        setattr(namespace, self.dest, values)
