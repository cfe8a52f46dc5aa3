"""``lp-ft``: linear probing for the first ``lp_fraction`` of training, then full fine-tuning (Kumar et al. 2022).

Expressed as two phases; the trainer's ``on_progress`` call flips ``requires_grad`` once, at ``lp_fraction``.
The optimiser holds every parameter from the start, but frozen ones get no gradient, hence no AdamW state and no
weight decay, until the switch.
"""

from __future__ import annotations

from typing import Any

from robustft.errors import ConfigError
from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.strategies.base import Phase, Plan, Strategy, names_under
from robustft.strategies.information import describe_parameters
from robustft.strategies.registry import STRATEGIES


@STRATEGIES.register("lp-ft")
class LinearProbeThenFineTune(Strategy):
    """LP-FT: head only for lp_fraction of training, then every parameter."""

    name = "lp-ft"
    mechanism = "back-propagation"
    defaults = {"lp_fraction": 0.5}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        resolved = super().resolve(options, layout)
        if not 0.0 <= resolved["lp_fraction"] <= 1.0:
            raise ConfigError(f"lp-ft option lp_fraction={resolved['lp_fraction']} must be in [0, 1] "
                              "(the share of training spent linear probing, e.g. 0.5).")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        everything = [n for n, _ in model.named_parameters()]
        phases = [Phase(0.0, names_under(model, layout.head)), Phase(options["lp_fraction"], everything)]
        return Plan(phases, describe_parameters(everything, layout))
