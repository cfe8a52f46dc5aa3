"""The one run loader: :func:`load_runs` finds the run directories under paths, a study's folder, ``runs/`` or globs,
names each readably and uniquely among them, and returns them as :class:`robustft.runs.Run` objects, which read their
config, summary, metrics and outcomes on first use. ``robustft report``, ``analysis.findings``, the seed statistics
and ``query_runs`` all load runs here, so they take the same arguments and name the runs the same way.

A run's folder name is what a reader knows it by (``a-full``), but two studies have runs of the same name (two
demos' ``a-full``): grouped by folder name, their metrics would merge. :func:`unique_names` keeps the folder name
where it is unique and prefixes as many parent folders as it takes to tell the others apart (``demo1/a-full``,
``demo2/a-full``); the resolved directory is the run's stable id.
"""

from __future__ import annotations

import glob as _glob
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from robustft.runs.run_dir import CONFIG_FILE, Run, RunNotFoundError

# What names runs on disk: a directory, its parent, a glob, or a Run already loaded (its directory is used).
RunSource = str | Path | Run


def load_runs(paths_or_glob: RunSource | Sequence[RunSource]) -> list[Run]:
    """Every run under the given run directories, parents (a study's folder, ``runs/``) or globs, in the order of
    :func:`find_run_dirs`, named by :func:`unique_names`. Nothing but the directory listing is read here: each run
    reads its files when first asked (``Run.config``, ``.summary``, ``.metrics``, ``.outcomes``).

    Raises:
        RunNotFoundError: nothing matched (the message says what to pass).
    """
    dirs = find_run_dirs(paths_or_glob)
    return [Run(path, name=name) for path, name in zip(dirs, unique_names(dirs), strict=True)]


def find_run_dirs(paths_or_glob: RunSource | Sequence[RunSource]) -> list[Path]:
    """Run directories named by paths, globs, parents of runs (searched recursively) or loaded ``Run``s (their
    ``path``), sorted, unique (one directory named twice, however spelt, is listed once, as first found).

    Raises:
        RunNotFoundError: nothing matched, or a Run held in memory (no directory to read).
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, Path, Run)) else list(paths_or_glob)
    found: dict[Path, Path] = {}  # resolved -> as found
    for item in items:
        if isinstance(item, Run):
            if item.path is None:
                raise RunNotFoundError(f"run {item.name!r} is held in memory, with no directory to read; pass runs "
                                       "loaded from disk (robustft.runs.load_runs) or their directories.")
            item = item.path
        text = str(item)
        candidates = [Path(p) for p in sorted(_glob.glob(text, recursive=True))] if _glob.has_magic(text) else [
            Path(text)
        ]
        for candidate in candidates:
            if (candidate / CONFIG_FILE).is_file():
                found.setdefault(candidate.resolve(), candidate)
            elif candidate.is_dir():
                for config in sorted(candidate.rglob(CONFIG_FILE)):
                    found.setdefault(config.parent.resolve(), config.parent)
    if not found:
        raise RunNotFoundError(
            f"no run directories (folders with {CONFIG_FILE}) match {paths_or_glob!r}; pass run directories, "
            "their parent (e.g. runs/) or a glob like 'runs/*'."
        )
    return list(found.values())


def unique_names(paths: Sequence[str | Path]) -> list[str]:
    """For run directories (distinct once resolved), the shortest trailing part of each resolved path, in whole
    folders joined by ``/``, that no other of them shares: the folder name when it is unique, else
    ``<parent>/<name>`` (and further up as needed). In the order given."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        counts = Counter(names)
        clashing = [i for i, name in enumerate(names) if counts[name] > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return names
        for i in clashing:
            depth[i] += 1
