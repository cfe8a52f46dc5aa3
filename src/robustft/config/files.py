"""Reading configs: YAML files with ``base:`` includes, dotted ``key=value`` overrides, and the layer merge.

The layer merge itself is ``robustft.config.merge`` (the typed tree uses it too); ``robustft.config``
re-exports everything here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from robustft.config.coerce import hints_of, plain_dataclass
from robustft.config.merge import merge_trees
from robustft.config.schema import Config, from_dict
from robustft.errors import ConfigError


def load_config(source: Config | str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The validated :class:`Config` of a YAML file, of a Config, or of the defaults, with overrides applied.

    Args:
        source: a YAML file (``base: other.yaml`` inside it includes another file first); a :class:`Config`
            (built in Python, or resolved before), validated again with ``overrides`` over it; None: the defaults.
        overrides: ``"key.sub=value"`` strings, values parsed as YAML scalars.

    Returns:
        The validated :class:`Config`. A Config's epsilons and step sizes go through as the values they are
        (never written as text and parsed back).

    Raises:
        ConfigError: missing file, bad YAML, unknown key, wrong type or out-of-range value; the message names the
            key and the fix.
    """
    if isinstance(source, Config):
        return from_dict(apply_overrides(plain_dataclass(source, text=False), overrides))
    if source is not None and not isinstance(source, str | Path):
        kind = "a plain tree" if isinstance(source, Mapping) else f"a {type(source).__name__}"
        raise ConfigError(f"a config is a YAML path or a robustft.config.Config, not {kind}; build a Config from a "
                          "tree with robustft.config.from_dict(tree) and pass that.")
    tree = _read_yaml_tree(Path(source), ()) if source is not None else {}
    tree = apply_overrides(tree, overrides)
    try:
        return from_dict(tree)
    except ConfigError as error:
        if source is None:
            raise
        # Say where the bad value came from: the file (or one it includes) or the overrides.
        where = f"{source}" + (f" with overrides {' '.join(overrides)}" if overrides else "")
        raise ConfigError(f"{error} (loading {where})") from None


def apply_overrides(tree: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Returns a copy of the plain dict ``tree`` with the ``"a.b=c"`` overrides applied.

    The overrides form one layer (a later override of the same key wins), merged over ``tree`` like a file over
    its base: so ``train.steps=200`` alone clears ``train.epochs``, while both together are an error.
    """
    layer: dict[str, Any] = {}
    for override in overrides:
        if "=" not in override:
            raise ConfigError(
                f"override {override!r} is not of the form key=value; write it like optim.lr=3e-4 or "
                "eps.value=8/255."
            )
        key, _, text = override.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {override!r} has an empty key; write it like optim.lr=3e-4.")
        try:
            value = _parse_override_value(key, text)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or error
            raise ConfigError(
                f"override {override!r}: the value is not valid YAML ({problem}); quote strings with special "
                "characters, e.g. key='a: b'."
            ) from None
        node = layer
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return merge_trees(tree, layer)


def _parse_override_value(key: str, text: str) -> Any:
    """YAML scalar parsing, except that string fields keep the text as written.

    YAML would turn ``name=007`` into 7 and ``name=2024-01-01`` into a date; for a field typed ``str`` the text is
    the value (quoted text is unquoted; ``null`` stays null where the field allows it).
    """
    stripped = text.strip()
    hint = _field_hint(key.split("."))
    if hint in (str, str | None) and stripped and stripped[0] not in "'\"[{":
        return None if hint is not str and stripped in ("null", "~", "None") else stripped
    return yaml.safe_load(text) if stripped else ""


def _field_hint(parts: list[str]) -> Any:
    """The annotation of the config field at ``parts`` (None inside free-form options or for unknown keys)."""
    cls: Any = Config
    hint: Any = None
    for part in parts:
        if not dataclasses.is_dataclass(cls):
            return None
        hints = hints_of(cls)
        if part not in hints:
            return None
        hint = hints[part]
        candidates = [hint, *typing.get_args(hint)]
        cls = next((c for c in candidates if dataclasses.is_dataclass(c)), None)
    return hint


def _read_yaml_tree(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """Reads ``path`` and its ``base:`` chain into one plain dict."""
    resolved = path.expanduser().resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ConfigError(f"config files include each other in a cycle ({chain}); remove one of the base: keys.")
    if not resolved.is_file():
        hint = ""
        shipped = Path(__file__).resolve().parents[3] / "configs"
        if shipped.is_dir():
            hint = f" Shipped configs are in {shipped}."
        raise ConfigError(f"config file {path} does not exist; pass the path to a YAML file.{hint}")
    try:
        # A file object, not its text: PyYAML names the stream in error marks ('in "<unicode string>"' for text).
        with resolved.open(encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}. Fix the syntax at the position shown.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}. Check the path and its permissions.") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path} must hold a mapping of keys (name:, model:, ...), not a {type(loaded).__name__}."
        )
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    bases = base if isinstance(base, list) else [base]
    tree: dict[str, Any] = {}
    for entry in bases:
        if not isinstance(entry, str):
            raise ConfigError(f"{path}: base: must be a path (or a list of paths) to YAML files, not {entry!r}.")
        tree = merge_trees(tree, _read_yaml_tree(resolved.parent / entry, (*seen, resolved)))
    return merge_trees(tree, loaded)


