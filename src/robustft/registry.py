"""One generic registry, used by every named family: models, datasets, strategies, attacks, schedules, objectives.

Entries register themselves with a decorator in their own module (``@STRATEGIES.register("lora")``), so adding
a strategy means adding one file. Unknown names raise ``UnknownNameError`` listing the closest matches.
Written here because it is twenty lines and every library's version drags in that library.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from robustft.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name and a one-line description."""

    name: str
    obj: T
    description: str


def _first_doc_line(obj: object) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry(Generic[T]):
    """A named collection of objects of one kind.

    Args:
        kind: what the entries are, in the singular ("strategy"), used in messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; the description defaults to its docstring's first line."""

        def decorate(obj: T) -> T:
            self.add(name, obj, description)
            return obj

        return decorate

    def add(self, name: str, obj: T, description: str | None = None) -> None:
        """Registers ``obj`` under ``name``. Registering a taken name is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, obj, description if description is not None else _first_doc_line(obj))

    def add_alias(self, alias: str, name: str) -> None:
        """Makes ``alias`` (e.g. a paper's name: ``fix`` for RFT-fix) another name of the registered ``name``.

        Aliases resolve in :meth:`get`, ``in`` and :meth:`canonical`; :meth:`names` lists canonical names only,
        so a registry-parametrised test does not run an entry twice.
        """
        if alias in self._entries or alias in self._aliases or name not in self._entries:
            raise ValueError(f"{self.kind} alias {alias!r} -> {name!r}: taken, or {name!r} is not registered")
        self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered name ``name`` stands for (itself unless it is an alias); unknown names unchanged."""
        return self._aliases.get(name, name)

    def aliases_of(self, name: str) -> list[str]:
        """The aliases of the registered ``name``, sorted."""
        return sorted(alias for alias, target in self._aliases.items() if target == name)

    def get(self, name: str) -> T:
        """Returns the object registered as ``name`` (or as the name the alias ``name`` stands for).

        Raises:
            UnknownNameError: with the close matches and the full list of names.
        """
        try:
            return self._entries[self.canonical(name)].obj
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The message for an unknown ``name``: close matches first, then every valid name."""
        close = difflib.get_close_matches(name, [*self.names(), *self._aliases], n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Valid {self.kind} names: {', '.join(self.names())}."

    def entry(self, name: str) -> Entry[T]:
        """Returns the full entry (name, object, description) for ``name``."""
        self.get(name)
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Registered entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
