"""The measured complexity of the embedded tasks, read from the shipped table ``complexity.json``.

Each task has its class count and, per frozen backbone (``mobilenet_v2@32``: model at image size), the linear-probe
accuracy, balanced accuracy (mean per-class recall) and majority-class share on a fixed test subset, with the date
and settings that produced them. ``robustft.training.complexity`` measures them; ``scripts/measure_complexity.py``
rewrites the table. Reading never measures: a task missing from the table simply has no entry.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

TABLE_PATH = Path(__file__).with_name("complexity.json")


@functools.lru_cache(maxsize=4)
def read_complexity_table(path: str | None = None) -> dict:
    """The table (``{"measured", "method", "datasets": {name: {"classes", "probes": {key: {...}}}}}``).

    A missing or unreadable file reads as an empty table: the listing then shows no measurement rather than failing.
    """
    try:
        table = json.loads(Path(path or TABLE_PATH).read_text())
    except (OSError, ValueError):
        return {"datasets": {}}
    return table if isinstance(table.get("datasets"), dict) else {"datasets": {}}


def task_complexity(name: str, path: str | None = None) -> dict | None:
    """The table entry of dataset ``name`` (a corruption suffix ``@...`` is ignored: same task), or None."""
    return read_complexity_table(path)["datasets"].get(name.split("@", 1)[0])


def separability(balanced_accuracy: float, classes: int) -> float:
    """Balanced accuracy rescaled so chance (1/K) is 0 and perfect is 1: comparable across class counts."""
    chance = 1.0 / classes
    return (balanced_accuracy - chance) / (1.0 - chance)


def probe_keys(path: str | None = None) -> list[str]:
    """Every ``model@size`` measured for some task, in first-seen order (the listing's columns)."""
    keys: dict[str, None] = {}
    for entry in read_complexity_table(path)["datasets"].values():
        keys.update(dict.fromkeys(entry.get("probes", {})))
    return list(keys)


def probe_cell(name: str, key: str, path: str | None = None) -> str:
    """``"76.1% (bal. 76.1%)"``: accuracy and balanced accuracy of ``key`` on ``name``; "-" when not measured."""
    probe = (task_complexity(name, path) or {}).get("probes", {}).get(key)
    if not probe:
        return "-"
    return f"{probe['accuracy']:.1%} (bal. {probe['balanced_accuracy']:.1%})"


def complexity_note(name: str, path: str | None = None) -> str | None:
    """One sentence stating ``name``'s measured complexity for a report, or None when it was not measured:
    ``"Task complexity (measured 2026-12-06): 10 classes; frozen linear probe mobilenet_v2@32 76.1% (bal. 76.1%)."``
    """
    entry = task_complexity(name, path)
    if not entry:
        return None
    probes = "; ".join(f"{key} {probe_cell(name, key, path)}" for key in entry.get("probes", {}))
    measured = read_complexity_table(path).get("measured", "?")
    return (f"Task complexity (measured {measured}): {entry['classes']} classes"
            + (f"; frozen-backbone linear-probe accuracy {probes}" if probes else "") + ".")
