"""``full``: every parameter trains (full fine-tuning). Nothing to borrow from a library: it freezes nothing."""

from __future__ import annotations

from typing import Any

from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.strategies.base import Phase, Plan, Strategy
from robustft.strategies.information import describe_parameters
from robustft.strategies.registry import STRATEGIES


@STRATEGIES.register("full")
class Full(Strategy):
    """Full fine-tuning: every parameter trains, every BatchNorm updates its statistics."""

    name = "full"
    mechanism = "back-propagation"

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        names = [n for n, _ in model.named_parameters()]
        return Plan([Phase(0.0, names)], describe_parameters(names, layout))
