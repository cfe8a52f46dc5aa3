"""The one attack spec type: ``eval.attack``, ``eval.final`` and the training attack (``objective.*``) are each an
:class:`AttackSpec`; ``robustft.attacks.registry.make_attack(spec)`` builds the attack it describes.

Its own module so that validation (``robustft.config.validate``) can name the type without importing the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robustft.config.coerce import Step


@dataclass
class AttackSpec:
    """An attack and its settings: ``eval.attack``, ``eval.final``, and (from ``objective.*``) the training attack.

    ``name`` is a registered attack (``robustft list attacks``); a preset name in its place (``paper-a``) is
    expanded when the config is built. ``step_size``: pixel units (0.25/255), relative to eps (0.25eps, a
    RelativeStep), or null for the attack's own default. ``options`` are attack-specific extras, passed through.
    Settings an attack has no use for (``steps`` of FGSM) are dropped when it is built.
    """

    name: str = "pgd"
    steps: int = 15
    step_size: Step | None = 0.25 / 255
    random_start: bool = True
    restarts: int = 1
    options: dict[str, Any] = field(default_factory=dict)


def final_attack() -> AttackSpec:
    """``eval.final``'s default: paper B's strong final evaluation, APGD-CE with 10 iterations (adaptive step)."""
    return AttackSpec(name="apgd-ce", steps=10, step_size=None)
