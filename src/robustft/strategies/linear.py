"""``linear``: linear probing, only the classification head trains.

The frozen backbone builds no autograd graph (its parameters do not require grad and the input does not), so
backward stops at the head by itself; BatchNorm statistics stay frozen through ``StrategyInfo.train_mode``.
"""

from __future__ import annotations

from typing import Any

from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.strategies.base import Phase, Plan, Strategy, names_under
from robustft.strategies.registry import STRATEGIES


@STRATEGIES.register("linear")
class Linear(Strategy):
    """Linear probing: only the head trains."""

    name = "linear"
    mechanism = "back-propagation"

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        return Plan([Phase(0.0, names_under(model, layout.head))], ["head"])
