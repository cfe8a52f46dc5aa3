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

from robustft.attacks.apgd import apgd, apgd_checkpoints
from robustft.attacks.base import Attack
from robustft.attacks.cascade import autoattack, cascade
from robustft.attacks.checks import CheckWarning, run_checks
from robustft.attacks.pgd import fgsm, pgd
from robustft.attacks.prepare import PreparedModel, fold_conv_bn, prepare_for_attack
from robustft.attacks.registry import ATTACKS, build_attack
from robustft.attacks.robust_evaluation import RobustAccuracy, expected_robustness, robust_accuracy, robust_curve
from robustft.attacks.square import square

__all__ = [
    "ATTACKS", "Attack", "CheckWarning", "PreparedModel", "RobustAccuracy", "apgd", "apgd_checkpoints", "autoattack",
    "build_attack", "cascade", "expected_robustness", "fgsm", "fold_conv_bn", "pgd", "prepare_for_attack",
    "robust_accuracy", "robust_curve", "run_checks", "square",
]
