"""The layer merge of config trees: a file over its ``base:``, overrides over the file, a tree over the defaults.

Its own module because both the typed tree (``from_dict`` layers a tree over the defaults) and the file reader use
it, and neither should import the other for it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from robustft.config.presets import PRESETS


def merge_trees(base: Mapping[str, Any], layer: Mapping[str, Any], _path: str = "") -> dict[str, Any]:
    """Deep merge: dicts merge key by key, everything else in ``layer`` replaces ``base``.

    A preset name in ``base`` (``eval.attack: paper-a``) is expanded before a mapping in ``layer`` is merged into
    it, so ``eval.attack.steps=20`` tunes the preset instead of replacing it. ``train`` is special: a layer that
    sets one of epochs/steps (non-null) and not the other clears the other.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in layer.items():
        path = f"{_path}.{key}" if _path else str(key)
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, str) and current in PRESETS.get(path, {}):
            current = copy.deepcopy(PRESETS[path][current])
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_trees(current, value, path)
        else:
            merged[key] = copy.deepcopy(value)
    train = layer.get("train")
    if isinstance(train, Mapping) and isinstance(merged.get("train"), dict):
        for own, other in (("steps", "epochs"), ("epochs", "steps")):
            if train.get(own) is not None and other not in train:
                merged["train"][other] = None
    return merged
