"""robustft.attacks: white- and black-box attacks in [0, 1] pixel space, robust evaluation and masking checks.

Attacks are plain functions ``attack(model, images, labels, eps, **options) -> x_adv``; ``build_attack(name,
**options)`` binds options to a registered one (``build_attack("pgd", steps=15, step_size=0.25/255)`` is paper
A's evaluation at eps 1/255, ``build_attack("apgd-ce", steps=10)`` paper B's, ``steps=7`` its training attack).

    name        what it is
    fgsm        one signed-gradient step (random start optional)
    pgd         PGD, linf or l2, ce / dlr / margin loss, random start, restarts
    apgd-ce     APGD with cross-entropy (Croce & Hein 2020)
    apgd-dlr    APGD with the DLR loss
    apgd-t      targeted APGD (targeted DLR) over the top other classes
    square      L-inf Square Attack (score-based black box)
    cascade     apgd-ce -> apgd-t -> square on still-robust samples (AutoAttack's standard suite minus FAB-T)
    autoattack  the official AutoAttack package (if installed) and then the cascade
"""

from __future__ import annotations

from functools import partial
from typing import Any

from robustft.attacks.apgd import apgd, apgd_checkpoints
from robustft.attacks.base import Attack
from robustft.attacks.cascade import autoattack, cascade
from robustft.attacks.checks import CheckWarning, run_checks
from robustft.attacks.pgd import fgsm, pgd
from robustft.attacks.prepare import PreparedModel, fold_conv_bn, prepare_for_attack
from robustft.attacks.robust_evaluation import RobustAccuracy, expected_robustness, robust_accuracy, robust_curve
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
        import inspect

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


__all__ = [
    "ATTACKS", "Attack", "CheckWarning", "PreparedModel", "RobustAccuracy", "apgd", "apgd_checkpoints", "autoattack",
    "build_attack", "cascade", "expected_robustness", "fgsm", "fold_conv_bn", "pgd", "prepare_for_attack",
    "robust_accuracy", "robust_curve", "run_checks", "square",
]
