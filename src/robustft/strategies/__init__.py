"""Fine-tuning strategies: which parameters train and which modules are added to a pretrained model.

``apply(model, name, **options)`` adapts a ``RobustModel`` in place and returns a ``StrategyInfo`` (trainable
names, count, share, paper A's axes, and the trainer hooks ``train_mode`` / ``on_progress``). Each strategy is
one module registering itself in ``STRATEGIES``; ``peft:<type>`` reaches any Hugging Face peft tuner.

Example:
    >>> info = apply(model, "lora", r=8)
    >>> optimizer = torch.optim.AdamW([p for n, p in model.named_parameters() if n in set(info.trainable_names)])
"""

from __future__ import annotations

from robustft.strategies import adapter, bitfit, compacter, full, ia3, linear, lora, lpft, partial, peft_tuner, vpt
from robustft.strategies.adapt import apply, layout_of, merge, resolve_name
from robustft.strategies.base import Phase, Strategy, StrategyInfo, StrategyNotApplicableError, set_trainable
from robustft.strategies.registry import STRATEGIES
from robustft.strategies.table import list_table

__all__ = ["STRATEGIES", "Phase", "Strategy", "StrategyInfo", "StrategyNotApplicableError", "apply", "layout_of",
           "list_table", "merge", "resolve_name", "set_trainable"]

_STRATEGY_MODULES = (adapter, bitfit, compacter, full, ia3, linear, lora, lpft, partial, peft_tuner, vpt)
