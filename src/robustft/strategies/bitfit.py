"""``bitfit``: every bias trains (convolution, linear, attention and norm biases) plus the head (Ben Zaken et al.).

Selecting parameters by name is all it takes; no library needed. Paper A's code (kyangl/robustness-finetuning,
``build.py``) trains every parameter whose name contains ``bias`` or ``head`` on a ViT: the attention, MLP,
patch-embedding and LayerNorm biases, not the LayerNorm weights. robustft selects the same set by the last name
component (``*.bias``) plus the head. On a CNN whose convolutions have no bias (MobileNetV2, ResNets) that is
the BatchNorm biases plus the head: 52 tensors, 17,056 + 12,810 = 29,866 elements on MobileNetV2.

BatchNorm running statistics stay the pretrained ones under the default ``bn_stats=auto`` (see
``StrategyInfo.train_mode``): they set each channel's scale at evaluation, and BitFit changes biases only, as
it does by construction on paper A's LayerNorm ViT. ``bn_stats=update`` re-estimates them on the new data.
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
