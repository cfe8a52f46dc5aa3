"""What ``robustft eval`` says about its attack: the settings it actually runs (defaults included) and a warning for a
step size no PGD user means.

``attack.describe()`` lists only the options given on the command line, so ``--attack pgd`` printed "pgd" and hid
the ten steps and the 2.5 eps / steps step size it ran with; a reader could not tell PGD-10 from PGD-100.
"""

from __future__ import annotations

import inspect
from typing import Any

from robustft.config.units import RelativeStep, format_eps, step_in_pixels

# The settings a reader needs to tell attacks apart, in this order (those the attack takes).
SHOWN = ("norm", "steps", "n_queries", "step_size", "restarts", "random_start")
# A fixed pixel step at most this many times the smallest eps evaluated: beyond it every step overshoots the ball
# and is projected back onto its surface, a sign walk along the corners, no longer PGD (2.5 eps / steps, Madry et
# al., is at most 2.5 eps for a one-step attack).
STEP_OVER_EPS = 2.5
# An L-inf eps from this value up lets the attack move every pixel by half the range or more, which no robustness
# study uses (paper B goes to 32/255 = 0.125 on natural images; MNIST studies to 0.3-0.4), while "--eps 1" meant as
# 1/255 lands here.
LARGE_LINF_EPS = 0.5


def settings_of(attack: Any) -> dict[str, Any]:
    """The values the attack runs with: its options over its function's defaults, for the ``SHOWN`` settings.

    A step size left to the attack is spelled as the attack computes it: ``2.5eps/steps`` for pgd (with the ratio),
    ``adaptive from 2eps`` for apgd, ``eps`` for fgsm (``1.25eps`` from a random start).
    """
    parameters = inspect.signature(attack.fn).parameters
    values = {name: attack.options.get(name, parameters[name].default) for name in SHOWN if name in parameters}
    step = values.get("step_size", "absent")
    if step is None and "steps" in values:
        values["step_size"] = f"2.5eps/steps = {2.5 / int(values['steps']):g}eps"
    elif isinstance(step, RelativeStep):
        values["step_size"] = str(step)
    elif isinstance(step, float):
        values["step_size"] = format_eps(step)
    elif step == "absent" and attack.name.startswith("apgd"):
        values["step_size"] = "adaptive from 2eps"
    elif step == "absent" and attack.name == "fgsm":
        values["step_size"] = "1.25eps" if values.get("random_start") else "eps"
    return {name: values[name] for name in SHOWN if name in values}


def describe_settings(attack: Any) -> str:
    """``pgd: norm=linf, steps=10, step_size=2.5eps/steps = 0.25eps, restarts=1, random_start=True``."""
    values = settings_of(attack)
    return f"{attack.name}: " + ", ".join(f"{k}={v}" for k, v in values.items()) if values else attack.name


def check_step_size(attack: Any, eps_list: list[float]) -> list[str]:
    """Warnings (one line each) for a step size larger than ``STEP_OVER_EPS`` x the smallest positive eps evaluated.

    A step outside (0, 1] never gets here: ``parse_step_size`` refuses it (``--step-size 2``: "did you mean 2/255").
    """
    step = attack.options.get("step_size")
    positive = [eps for eps in eps_list if eps > 0]
    if step is None or not positive:
        return []
    smallest = min(positive)
    pixels = step_in_pixels(step, smallest)
    if pixels <= STEP_OVER_EPS * smallest:
        return []
    shown = str(step) if isinstance(step, RelativeStep) else format_eps(step)
    return [f"--step-size {shown} is {pixels / smallest:.3g} x eps={format_eps(smallest)}: every step overshoots the "
            "eps-ball and is projected back onto its surface, which is a weaker attack than PGD, so robust accuracy "
            "is overestimated. Did you mean 0.25/255 (pixel units are [0, 1]: 1/255 is one grey level), or a step "
            "relative to eps such as 0.25eps?"]


def check_eps_scale(attack: Any, eps_list: list[float]) -> list[str]:
    """Warnings for an L-inf eps of ``LARGE_LINF_EPS`` or more (``--eps 1``: the whole [0, 1] range, 0% robust)."""
    if attack.options.get("norm", "linf") != "linf":
        return []
    return [f"eps={format_eps(eps)} is {eps * 255:g}/255: the attack may move every pixel by {eps:.0%} of the range "
            f"or more, so robust accuracy measures little (eps=1: any image is reachable). Did you mean "
            f"{format_eps(eps)}/255?" for eps in eps_list if eps >= LARGE_LINF_EPS]
