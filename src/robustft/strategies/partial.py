"""``partial``: train the parameters whose names match any of the regexes ``patterns`` (plus the head).

big_vision-style selection by name; ``re.search`` over names as in ``model.named_parameters()``
(``backbone.blocks.11.mlp.fc2.weight``). A pattern matching nothing is an error: it is almost always a typo.
"""

from __future__ import annotations

import re
from typing import Any

from robustft.errors import ConfigError
from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.strategies.base import Phase, Plan, Strategy, names_under
from robustft.strategies.information import describe_parameters
from robustft.strategies.registry import STRATEGIES


@STRATEGIES.register("partial")
class Partial(Strategy):
    """Train parameters whose names match regexes (option patterns=[...]), plus the head."""

    name = "partial"
    mechanism = "back-propagation"
    defaults = {"patterns": []}
    example_options = {"patterns": [r"norm|bn|\.1\.weight$"]}

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        names = [n for n, _ in model.named_parameters()]
        if not options["patterns"]:
            raise ConfigError("strategy 'partial' needs option patterns=[regex, ...] naming the parameters to "
                              f"train, e.g. patterns=['norm', 'blocks\\.11\\.']. Parameter names look like "
                              f"{', '.join(names[:3])}.")
        selected = set(names_under(model, layout.head))
        for pattern in options["patterns"]:
            try:
                regex = re.compile(pattern)
            except re.error as error:
                raise ConfigError(f"partial pattern {pattern!r} is not a valid regex ({error}).") from None
            matched = {n for n in names if regex.search(n)}
            if not matched:
                raise ConfigError(f"partial pattern {pattern!r} matches no parameter. Parameter names look like "
                                  f"{', '.join(names[:3])}, ..., {names[-1]}.")
            selected |= matched
        trainable = [n for n in names if n in selected]
        return Plan([Phase(0.0, trainable)], describe_parameters(trainable, layout))
