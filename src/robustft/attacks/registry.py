"""The attack registry and ``build_attack``: every attack by name, with its options checked.

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
from robustft.config.units import parse_eps, relative_step
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
    # "0.25/255", as configs and the command line write it, becomes a number now; "0.25eps" stays as written and
    # is resolved at each eps the attack runs at (robustft.config.units.step_in_pixels).
    if isinstance(step_size, str) and relative_step(step_size) is None:
        options["step_size"] = parse_eps(step_size, name="step_size")
    return Attack(name, fn, dict(options))
