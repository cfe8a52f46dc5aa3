"""Adapting a model with a strategy: ``apply`` (and the ``peft:<type>`` names), ``merge`` (and unload), ``layout_of``.

Its own module so that the package's modules (the ``robustft list strategies`` table) can apply strategies
without importing the package front, which imports them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from robustft.errors import ConfigError
from robustft.models.layout import Layout, detect_layout
from robustft.models.wrapper import RobustModel
from robustft.strategies import peft_tuner
from robustft.strategies.base import Strategy, StrategyInfo, StrategyNotApplicableError, set_trainable
from robustft.strategies.hooks import attached, detach
from robustft.strategies.registry import STRATEGIES


def resolve_name(name: str, options: dict[str, Any]) -> tuple[Strategy, dict[str, Any]]:
    """Splits ``peft:<type>`` into the registered ``peft`` strategy and its ``type`` option.

    Raises:
        UnknownNameError: unknown strategy (lists the valid names).
        ConfigError: ``name`` carries a variant the strategy has no ``type`` option for, or a conflicting one.
    """
    base, sep, variant = name.partition(":")
    strategy: Strategy = STRATEGIES.get(base)()
    options = dict(options)
    if sep:
        if "type" not in strategy.defaults:
            raise ConfigError(f"strategy {base!r} takes no variant; use {base!r} without ':{variant}'.")
        if options.get("type", variant) != variant:
            raise ConfigError(f"strategy {name!r} conflicts with option type={options['type']!r}; give one.")
        options["type"] = variant
    return strategy, options


def apply(model: RobustModel, name: str, **options: Any) -> StrategyInfo:
    """Adapts ``model`` in place with the strategy ``name``.

    Args:
        model: a ``RobustModel``; after the call, exactly the strategy's current trainable parameters have
            ``requires_grad=True``; the head (``model.info.head``) always trains.
        name: a registered strategy (``robustft list strategies``) or ``peft:<type>``.
        **options: strategy options (unknown ones raise an error listing the valid ones).

    Returns:
        The ``StrategyInfo``; its ``options`` rebuild the same structure on a fresh model.

    Raises:
        UnknownNameError: unknown strategy or option.
        StrategyNotApplicableError: the strategy cannot adapt this architecture (the message says why).
        ConfigError: a bad option value, or a model that already has a strategy applied.
    """
    previous = getattr(model, "robustft_strategy", None)
    if previous is not None:
        raise ConfigError(f"this model already has strategy {previous.name!r} applied; build a fresh model "
                          f"(robustft.models.build) before applying {name!r}.")
    strategy, options = resolve_name(name, options)
    layout = detect_layout(model)
    if layout.family not in strategy.families:
        raise StrategyNotApplicableError(
            f"strategy {name!r} needs a {' or '.join(strategy.families)} model, but {model.info.name!r} is a "
            f"{layout.family}. Choose another strategy (robustft list strategies) or backbone."
        )
    if layout.opaque_attention and strategy.mechanism != "back-propagation":
        raise StrategyNotApplicableError(
            f"strategy {name!r} places modules on attention and MLP layers, but {model.info.name!r} computes "
            f"attention with nn.MultiheadAttention ({layout.opaque_attention[0]}, ...), whose fused q/k/v weight "
            "cannot be adapted per projection. Use the timm equivalent of this backbone (e.g. "
            "timm:vit_base_patch32_224 for tv:vit_b_32), or a strategy that selects existing parameters "
            "(full, linear, bitfit, partial, lp-ft)."
        )
    resolved = strategy.resolve(options, layout)
    plan = strategy.adapt(model, layout, resolved)
    head = [n for n, _ in model.named_parameters() if n.startswith(model.info.head + ".")]
    for phase in plan.phases:  # the head always trains, whatever a strategy selected
        phase.trainable = _ordered(model, set(phase.trainable) | set(head))
    ever = _ordered(model, {n for phase in plan.phases for n in phase.trainable})
    params = dict(model.named_parameters())
    trainable_count = sum(params[n].numel() for n in ever)
    total_count = sum(p.numel() for p in params.values())
    info = StrategyInfo(name, resolved, ever, trainable_count, total_count, trainable_count / max(total_count, 1),
                        plan.information, strategy.mechanism, plan.phases)
    set_trainable(model, info.active_phase(0.0).trainable)
    model.robustft_strategy = info  # a plain attribute: not a parameter, not in the state dict
    return info


def _ordered(model: nn.Module, names: set[str]) -> list[str]:
    return [n for n, _ in model.named_parameters() if n in names]


def merge(model: nn.Module, *, strict: bool = False) -> nn.Module:
    """Folds mergeable adaptations (LoRA, IA3, peft tuners) into the base weights and removes their modules, in place.

    The merged model computes the same logits (up to float rounding) and no longer has the adapter modules or
    parameters: a peft tuner layer is replaced by its base layer (peft's ``merge_and_unload``), so save checkpoints
    before merging. Adapters that cannot be folded but are exact identities (``is_identity()``: bottleneck adapters
    and Compacter blocks whose up-projection is still zero) are removed too, with any shared module that only they
    used (``unused_in(model)``): at step 0 an adapted model's copy is then the plain backbone's, which lets a study
    share its step-0 evaluation (``training.evaluation_reuse``). ``attacks.prepare_for_attack`` merges its copy
    for fast evaluation; ``robustft export --merged`` merges with ``strict=True`` to write the plain network.

    Args:
        model: a model with a strategy applied (or none: then nothing changes).
        strict: refuse a model whose strategy adds modules that cannot be folded into existing weights (bottleneck
            adapters, Compacter, visual prompts); without it, those are left as they are.

    Returns:
        ``model``.

    Raises:
        ConfigError: ``strict`` and modules remain after merging (the message names the strategy and the way out).
    """
    for target, attr, child in attached(model):
        if hasattr(child, "merge_into"):
            child.merge_into(target)
            detach(target, attr)
        elif hasattr(child, "is_identity") and child.is_identity():
            detach(target, attr)  # an adapter still at its zero init computes h exactly: nothing to keep
    for name, module in list(model.named_children()):
        if hasattr(module, "unused_in") and module.unused_in(model):
            delattr(model, name)  # shared state (Compacter's rules) of adapters that were all dropped
    peft_tuner.merge_peft_layers(model)
    left = sorted({attr for _, attr, _ in attached(model)}) if strict else []
    if left:
        applied = getattr(model, "robustft_strategy", None)
        who = f"strategy {applied.name!r}" if applied is not None else "this model's strategy"
        raise ConfigError(
            f"{who} adds modules ({', '.join(left)}) that cannot be merged into the backbone's "
            "weights, so no plain model can hold it; export without --merged (the adapter weights keep their own "
            "keys; robustft.load(RUN) gives the model itself), or fine-tune with a mergeable strategy (full, linear, "
            "bitfit, partial, lora, ia3, peft:lora).")
    return model


def plain_projections(model: nn.Module) -> int:
    """Replaces, in place, every module of ``model`` that has an ``as_plain()`` form (Compacter's PHM projections: a
    Kronecker-factored weight rebuilt at every call) by that plain frozen layer, for a copy that never trains
    (``attacks.prepare_for_attack``). Returns how many were replaced; parameter names change, so never on a model
    that trains or saves checkpoints."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if hasattr(child, "as_plain"):
                setattr(parent, name, child.as_plain())
                replaced += 1
    return replaced


def layout_of(model: RobustModel) -> Layout:
    """The layout strategies see (re-exported for convenience)."""
    return detect_layout(model)
