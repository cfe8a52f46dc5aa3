"""``robustft list KIND``: prints a registry, one line per entry.

A registry's package may define ``list_table() -> (header, rows)`` for a richer table (strategies show their
axes and trainable share); otherwise the table is name and one-line description, with the entry's aliases
(paper B's ``fix`` for the ``constant`` schedule, ...).
"""

from __future__ import annotations

import argparse
import importlib

# kind -> (module, registry attribute)
REGISTRIES: dict[str, tuple[str, str]] = {
    "models": ("robustft.models", "MODELS"),
    "datasets": ("robustft.data", "DATASETS"),
    "strategies": ("robustft.strategies", "STRATEGIES"),
    "attacks": ("robustft.attacks", "ATTACKS"),
    "schedules": ("robustft.training.schedules", "EPS_SCHEDULES"),
    "objectives": ("robustft.training.objectives", "OBJECTIVES"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list models, datasets, strategies, attacks, schedules, objectives")
    parser.add_argument("kind", choices=sorted(REGISTRIES), help="which registry to list")
    parser.set_defaults(func=run)


def table_for(kind: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows describing the registry ``kind``."""
    module_name, attribute = REGISTRIES[kind]
    module = importlib.import_module(module_name)
    if hasattr(module, "list_table"):
        return module.list_table()
    registry = getattr(module, attribute)
    rows = []
    for entry in registry.entries():
        aliases = registry.aliases_of(entry.name)
        rows.append([entry.name, entry.description + (f" (also: {', '.join(aliases)})" if aliases else "")])
    return ["name", "description"], rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    header, rows = table_for(args.kind)
    print(format_table(header, rows))
    return 0
