"""Checking every sweep point completely before any runs, and the rule for strategy options across strategies.

``robustft.config`` validates the config tree but leaves names owned by registries (model, strategy, objective)
to the components that build them, i.e. to run time. A sweep cannot wait for that: a point that fails after an
hour of other points wastes the hour, and a grid that is wrong everywhere (an option of one strategy sent to
another) should fail before anything starts. So each point is also checked the way the trainer builds it: the
objective by name, the model's structure (built once per distinct model with ``pretrained=False``: no weights are
read, nothing is downloaded for timm, torchvision or the embedded models) and the strategy applied to a copy of
that structure (unknown options, wrong types, an architecture the strategy does not apply to, adapt-time checks).
A model whose structure itself needs the internet (``hf:`` offline) falls back to checking the option names and
types, which needs no model.

Strategy options belong to a strategy. The options in the base config file were written for the file's
``strategy.name``: a point whose grid or ``--set`` values choose another strategy drops them (with a note),
keeping only options that the grid or ``--set`` name explicitly (``strategy.options.r=4``), which are checked
against the point's strategy like any other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from robustft.config.files import apply_overrides
from robustft.config.schema import from_dict
from robustft.errors import MissingAssetError, OfflineError, RobustftError

# Errors that mean "this model's structure cannot be built here", not "this point is wrong".
_UNAVAILABLE = (MissingAssetError, OfflineError)


def explicit_strategy_options(overrides: Sequence[str]) -> dict[str, Any]:
    """The ``strategy.options`` that ``key=value`` overrides set explicitly (``strategy.options.r=4``, or
    ``strategy.options={r: 4}``, or ``strategy={name: lora, options: {...}}``)."""
    layer = apply_overrides({}, list(overrides))
    strategy = layer.get("strategy")
    options = strategy.get("options") if isinstance(strategy, dict) else None
    return dict(options) if isinstance(options, dict) else {}


def carry_strategy_options(tree: dict[str, Any], base_strategy: str, base_options: dict[str, Any],
                           overrides: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """Drops the base file's strategy options from a point that chose another strategy.

    Args:
        tree: the point's resolved config as a plain dict (``robustft.config.to_dict``); not modified.
        base_strategy: ``strategy.name`` of the base config file (before ``--set`` and the grid).
        base_options: ``strategy.options`` of the base config file.
        overrides: the point's ``--set`` and grid overrides (what the user named explicitly).

    Returns:
        (the tree to run, a note saying what was dropped, or None when nothing was).
    """
    strategy = tree.get("strategy") or {}
    if strategy.get("name") == base_strategy or not base_options:
        return tree, None
    explicit = explicit_strategy_options(overrides)
    dropped = sorted(k for k in base_options if k not in explicit)
    if not dropped:
        return tree, None
    out = copy.deepcopy(tree)
    options = out["strategy"].get("options") or {}
    out["strategy"]["options"] = {k: v for k, v in options.items() if k not in dropped}
    shown = ", ".join(f"{k}={base_options[k]!r}" for k in dropped)
    note = (f"strategy option(s) {shown} of the base config belong to {base_strategy!r} and are not used with "
            f"{strategy.get('name')!r}; give strategy.options.<key>=... in --grid or --set to set them for it")
    return out, note


class PointChecker:
    """Checks resolved point configs as the trainer would build them; caches model structures and verdicts."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._verdicts: dict[str, RobustftError | None] = {}

    def __call__(self, tree: dict[str, Any]) -> None:
        """Raises the RobustftError the run would raise while building its objective, model or strategy.

        Args:
            tree: a resolved point config (``robustft.config.to_dict``).
        """
        from robustft.training.objectives import get_objective  # torch: only once a point is checked

        cfg = from_dict(tree)
        get_objective(cfg.objective.name)
        model_key = json.dumps([cfg.model.name, cfg.model.image_size, cfg.model.options], sort_keys=True,
                               default=str)
        key = json.dumps([model_key, cfg.strategy.name, cfg.strategy.options], sort_keys=True, default=str)
        if key not in self._verdicts:
            try:
                self._check_strategy(cfg, model_key)
                self._verdicts[key] = None
            except RobustftError as error:
                self._verdicts[key] = error
                raise
        verdict = self._verdicts[key]
        if verdict is not None:  # the same model and strategy failed for an earlier point
            raise verdict

    def _structure(self, cfg: Any, model_key: str) -> Any:
        if model_key not in self._models:
            from robustft import models  # torch and the model sources: only once a point is checked

            try:
                self._models[model_key] = models.build(cfg.model.name, 10, pretrained=False,
                                                       image_size=cfg.model.image_size, seed=0,
                                                       **(cfg.model.options or {}))
            except _UNAVAILABLE:
                self._models[model_key] = None
        return self._models[model_key]

    def _check_strategy(self, cfg: Any, model_key: str) -> None:
        from robustft import strategies  # torch: only once a point is checked
        from robustft.strategies.base import Strategy

        options = dict(cfg.strategy.options or {})
        strategy, options = strategies.resolve_name(cfg.strategy.name, options)
        structure = self._structure(cfg, model_key)
        if structure is not None:
            strategies.apply(copy.deepcopy(structure), cfg.strategy.name, **(cfg.strategy.options or {}))
        elif "type" not in strategy.defaults:  # no model here: names and types of the options still checked
            Strategy.resolve(strategy, options, None)  # the base resolve reads no layout
