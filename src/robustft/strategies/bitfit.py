"""``bitfit``: every bias trains (convolution, linear, attention and norm biases) plus the head (Ben Zaken et al.).

Selecting parameters by name is all it takes; no library needed.
"""

from __future__ import annotations

from typing import Any

from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.strategies.base import Phase, Plan, Strategy, names_under
from robustft.strategies.registry import STRATEGIES


@STRATEGIES.register("bitfit")
class BitFit(Strategy):
    """BitFit: every bias (norm biases included) plus the head."""

    name = "bitfit"
    mechanism = "back-propagation"

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        head = set(names_under(model, layout.head))
        names = [n for n, _ in model.named_parameters() if n in head or n.rsplit(".", 1)[-1] == "bias"]
        return Plan([Phase(0.0, names)], ["biases", "head"])
