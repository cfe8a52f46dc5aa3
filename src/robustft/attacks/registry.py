"""The attack registry, ``build_attack`` (every attack by name, with its options checked) and ``make_attack``
(an attack from the config's typed :class:`~robustft.config.schema.AttackSpec`).

Its own module (as ``robustft.strategies.registry``) so that modules of this package, such as the robust
evaluation that accepts an attack by name, build attacks without importing the package front.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

from robustft.attacks.apgd import apgd
from robustft.attacks.base import Attack
from robustft.attacks.cascade import autoattack, cascade
from robustft.attacks.pgd import fgsm, pgd
from robustft.attacks.square import square
from robustft.config.schema import AttackSpec
from robustft.config.units import parse_step_size
from robustft.errors import ConfigError
from robustft.registry import Registry

ATTACKS: Registry = Registry("attack")
ATTACKS.add("fgsm", fgsm, "one signed-gradient step of size eps (FGSM; random_start=True for FGSM-RS)")
ATTACKS.add("pgd", pgd, "projected gradient descent, linf/l2, ce/dlr/margin loss, random start, restarts")
ATTACKS.add("apgd-ce", partial(apgd, loss="ce"), "APGD with cross-entropy (Croce & Hein 2020)")
ATTACKS.add("apgd-dlr", partial(apgd, loss="dlr"), "APGD with the scale-invariant DLR loss")
ATTACKS.add("apgd-t", partial(apgd, targeted=True), "targeted APGD (targeted DLR) over the top other classes")
ATTACKS.add("square", square, "L-inf Square Attack: score-based black box, catches gradient masking")
ATTACKS.add("cascade", cascade, "apgd-ce -> apgd-t -> square on still-robust samples (AutoAttack's standard "
            "suite without FAB-T)")
ATTACKS.add("autoattack", autoattack, "official AutoAttack package (pip install from GitHub), then the cascade")


def build_attack(name: str, **options: Any) -> Attack:
    """The registered attack ``name`` with ``options`` bound; call it as ``attack(model, images, labels, eps)``.

    Raises:
        UnknownNameError: unknown name (the message lists the attacks).
        ConfigError: an option the attack does not take (the message lists those it takes).
    """
    fn = ATTACKS.get(name)
    attack = Attack(name, fn, {})
    unknown = [key for key in options if not attack.accepts(key)]
    if unknown:
        valid = [p for p in inspect.signature(fn).parameters if p not in ("model", "images", "labels", "eps")]
        fixed = set(getattr(fn, "keywords", {}) or {})
        raise ConfigError(f"attack {name!r} has no option {', '.join(map(repr, unknown))}; its options are: "
                          f"{', '.join(p for p in valid if p not in fixed)}.")
    step_size = options.get("step_size")
    # Text ("0.25/255", "0.25eps") from a Python caller is parsed by the one step-size parser; the config's
    # AttackSpec holds a parsed value already (a float or a RelativeStep), which goes through as it is.
    if isinstance(step_size, str):
        options["step_size"] = parse_step_size(step_size)
    return Attack(name, fn, dict(options))


def make_attack(spec: AttackSpec) -> Attack:
    """The attack an :class:`AttackSpec` describes, built once from the config's parsed values.

    ``steps``, ``step_size`` (when set), ``random_start`` and ``restarts`` are passed to the attack when it takes
    them (FGSM has no ``steps``, APGD no fixed step size), so one spec type can name any attack; so are ``options``.
    An unknown name fails in :func:`build_attack` with the list of attacks.
    """
    settings = {"steps": spec.steps, "step_size": spec.step_size, "random_start": spec.random_start,
                "restarts": spec.restarts}
    options = {**{k: v for k, v in settings.items() if v is not None}, **spec.options}
    return build_attack(spec.name, **_accepted_options(spec.name, options))


def _accepted_options(name: str, options: dict[str, object]) -> dict[str, object]:
    """The settings ``name`` takes (the rest dropped); unknown names are left to ``build_attack``'s message."""
    if name not in ATTACKS:
        return options
    parameters = inspect.signature(ATTACKS.get(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    return {k: v for k, v in options.items() if k in parameters}
