"""The options every config-running command shares (``train``, ``demo``, ``sweep``, ``reproduce``): one vocabulary.

- overrides: positional ``key=value`` and ``--set key=value`` (repeatable) mean the same; positional first, then
  ``--set`` in order, so a later one wins;
- ``--output-dir DIR``: where run directories go (the config's ``output_dir``);
- ``--quiet``: no progress on stderr;
- overrides may also follow options (``train cfg.yaml --quiet optim.lr=1e-3``), see :func:`parse_command_line`;
- ``--x`` / ``--no-x`` flags refuse being given both ways (:class:`BooleanFlag`).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Sequence
from typing import Any

# A dotted config override as a command-line token: optim.lr=3e-4, eval.eps=[1/255], strategy.options.rank=4.
OVERRIDE_TOKEN = re.compile(r"[A-Za-z_][\w.]*=")


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


class BooleanFlag(argparse.BooleanOptionalAction):
    """``--x`` / ``--no-x`` (default None: "not said"), refusing both at once: argparse would let the last one win
    silently, so ``--random-start --no-random-start`` ran without a random start and said nothing."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault("_flags_given", {})  # dest -> the first spelling given
        first = given.setdefault(self.dest, option_string)
        if first.startswith("--no-") != (option_string or "").startswith("--no-"):
            positive = next(s for s in self.option_strings if not s.startswith("--no-"))
            raise argparse.ArgumentError(
                self, f"{first} and {option_string} contradict each other; give one of them (or neither: "
                      f"without {positive} or {positive.replace('--', '--no-', 1)} the default applies).")
        super().__call__(parser, namespace, values, option_string)


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that ``key=value`` overrides may come after options.

    argparse takes a command's positionals in one run, so in ``robustft train cfg.yaml --quiet optim.lr=1e-3``
    the override after ``--quiet`` was left over ("unrecognized arguments"). Left-over overrides are appended to
    the command's positional ``overrides`` in the order written (``--set`` ones still come after them). Anything
    else left over exits 2 (argparse's way) with a message naming the fix: an unknown ``--device cpu`` where
    ``device`` is a config key says to write ``device=cpu``; an override given to a command that takes none says
    where overrides go.
    """
    args, extra = parser.parse_known_args(list(argv))
    if not extra:
        return args
    command = _subcommand(parser, getattr(args, "command", None))
    overrides = getattr(args, "overrides", None)
    if isinstance(overrides, list) and all(OVERRIDE_TOKEN.match(token) for token in extra):
        overrides.extend(extra)
        return args
    (command or parser).error(_unrecognized(extra, command, isinstance(overrides, list)))
    raise AssertionError("argparse's error() exits")  # pragma: no cover


def _subcommand(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices.get(name) if actions and name else None


def _unrecognized(extra: list[str], command: argparse.ArgumentParser | None, takes_overrides: bool) -> str:
    """argparse's "unrecognized arguments" plus the fix, when robustft can tell what was meant."""
    unknown = [token for token in extra if not (takes_overrides and OVERRIDE_TOKEN.match(token))]
    message = f"unrecognized arguments: {' '.join(unknown)}"
    prog = command.prog if command is not None else "robustft"
    for index, token in enumerate(extra):
        if token.startswith("--") and takes_overrides:
            key, _, value = token[2:].partition("=")
            key = key.replace("-", "_")
            if not value and index + 1 < len(extra) and not extra[index + 1].startswith("-"):
                value = extra[index + 1]
            if is_config_key(key):
                return (f"{message}. {prog} has no option {token.partition('=')[0]}: {key} is a config key, set "
                        f"like any other with an override: {key}={value or 'VALUE'} (anywhere after the config "
                        f"file) or --set {key}={value or 'VALUE'}.")
        if OVERRIDE_TOKEN.match(token) and not takes_overrides:
            has_set = command is not None and any("--set" in a.option_strings for a in command._actions)
            where = f"write --set {token}" if has_set else "this command takes no config overrides"
            return f"{message}. {prog} takes no positional key=value ({token}); {where}."
    return message


def is_config_key(key: str) -> bool:
    """Whether ``key`` (``device``, ``optim.lr``) names a setting of ``robustft.config.Config``."""
    from robustft.config.schema import Config

    section: Any = Config
    for part in key.split("."):
        hints = typing.get_type_hints(section) if dataclasses.is_dataclass(section) else {}
        if part not in hints:
            return False
        nested = [t for t in (hints[part], *typing.get_args(hints[part])) if dataclasses.is_dataclass(t)]
        section = nested[0] if nested else None
    return True
