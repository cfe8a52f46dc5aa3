"""The paper A / paper B attack presets: one definition, for the config and for the evaluator.

``eval.attack: paper-a`` (or ``eval.final: paper-b``) in a config expands to the preset's settings, which a mapping
in a later layer can tune (``eval.attack.steps=20``); ``robustft.training.evaluator.attack_spec("paper-a")`` reads
the same table. Epsilons are set by ``eval.eps`` / ``eval.curve``, not by the presets.
"""

from __future__ import annotations

from typing import Any

ATTACK_PRESETS: dict[str, dict[str, Any]] = {
    # Paper A: untargeted L-inf PGD, CE, eps 1/255 (eval.eps), step 0.25/255, 15 steps, random start.
    "paper-a": {"name": "pgd", "steps": 15, "step_size": "0.25/255", "random_start": True, "restarts": 1},
    # Paper B: APGD-CE with 10 iterations at eps_g (its step size is adaptive).
    "paper-b": {"name": "apgd-ce", "steps": 10, "step_size": None, "random_start": True, "restarts": 1},
}


def _as_final(preset: dict[str, Any]) -> dict[str, Any]:
    """The preset as the ``eval.final`` section writes it (the attack's name under ``attack``)."""
    return {"attack": preset["name"], **{k: v for k, v in preset.items() if k != "name"}}


# A string in place of a dict at these config keys expands to the dict.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "eval.attack": ATTACK_PRESETS,
    "eval.final": {name: _as_final(preset) for name, preset in ATTACK_PRESETS.items()},
}
