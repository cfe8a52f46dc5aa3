"""Fine-tuning strategies: which parameters train and which modules are added to a pretrained model.

``apply(model, name, **options)`` adapts a ``RobustModel`` in place and returns a ``StrategyInfo`` (trainable
names, count, share, paper A's axes, and the trainer hooks ``train_mode`` / ``on_progress``). Each strategy is
one module registering itself in ``STRATEGIES``; ``peft:<type>`` reaches any Hugging Face peft tuner.
``merge`` folds mergeable adaptations into the weights (and unloads peft tuners); ``restore.load`` rebuilds a
trained model from its checkpoint (``robustft.load``), ``export.export_run`` writes it as plain weights.

Example:
    >>> info = apply(model, "lora", r=8)
    >>> optimizer = torch.optim.AdamW([p for n, p in model.named_parameters() if n in set(info.trainable_names)])
"""

from __future__ import annotations

from robustft.strategies import (
    adapter,
    bitfit,
    compacter,
    export,
    full,
    ia3,
    linear,
    lora,
    lpft,
    partial,
    peft_tuner,
    restore,
    vpt,
)
from robustft.strategies.adapt import apply, layout_of, merge, plain_projections, resolve_name
from robustft.strategies.base import Phase, Strategy, StrategyInfo, StrategyNotApplicableError, set_trainable
from robustft.strategies.registry import STRATEGIES
from robustft.strategies.table import list_table

__all__ = ["STRATEGIES", "Phase", "Strategy", "StrategyInfo", "StrategyNotApplicableError", "apply", "layout_of",
           "list_table", "merge", "plain_projections", "resolve_name", "set_trainable"]

_STRATEGY_MODULES = (adapter, bitfit, compacter, full, ia3, linear, lora, lpft, partial, peft_tuner, vpt)
# A trained model rebuilt from its checkpoint, and exported: attributes after ``import robustft`` alone
# (``robustft.strategies.export.export_run``, the README's line), like every other submodule of this package.
_RUN_MODULES = (export, restore)
