"""The paper A / paper B attack presets, and config keys that were renamed.

``eval.attack: paper-a`` (or ``eval.final: paper-b``) in a config expands to the preset's settings, which a mapping
in a later layer can tune (``eval.attack.steps=20``; ``{name: paper-a, steps: 20}`` is the preset with 20 steps).
Both keys hold the same type, ``robustft.config.schema.AttackSpec``, so they take the same presets; the expansion
happens once, when the config is built. Epsilons are set by ``eval.eps`` / ``eval.curve``, not by the presets.
"""

from __future__ import annotations

from typing import Any

ATTACK_PRESETS: dict[str, dict[str, Any]] = {
    # Paper A: untargeted L-inf PGD, CE, eps 1/255 (eval.eps), step 0.25/255, 15 steps, random start.
    "paper-a": {"name": "pgd", "steps": 15, "step_size": "0.25/255", "random_start": True, "restarts": 1},
    # Paper B: APGD-CE with 10 iterations at eps_g (its step size is adaptive).
    "paper-b": {"name": "apgd-ce", "steps": 10, "step_size": None, "random_start": True, "restarts": 1},
}

# A string in place of a dict at these config keys expands to the dict.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {"eval.attack": ATTACK_PRESETS, "eval.final": ATTACK_PRESETS}

# Keys that have a new name: the old one is refused with a message naming the new one (no release has shipped
# the old names, so there is no silent fallback).
RENAMED_KEYS: dict[str, str] = {
    "eval.final.attack": "eval.final.name",  # eval.final is an AttackSpec like eval.attack since issue 21
}
