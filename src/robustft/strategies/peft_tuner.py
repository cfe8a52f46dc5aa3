"""``peft:<type>``: any Hugging Face peft tuner (``peft:lora``, ``peft:ia3``, ``peft:loha``, ``peft:oft``, ...).

Taken from peft rather than written here: peft maintains dozens of tuners; ``inject_adapter_in_model`` adds one to
any torch module. The options other than ``type``/``seed``/``bn_stats`` go to the tuner's config class
(``LoraConfig(r=16)``: ``peft:lora`` with ``r=16``). When ``target_modules`` is not given, robustft fills it from
the model layout: q/k/v (a fused qkv as one matrix: peft cannot split it), MLP in and MLP out on ViTs, pointwise
convolutions and linear layers on CNNs; IA3's ``feedforward_modules`` default to the MLP outputs. The head
always trains.
peft is an optional dependency (``pip install peft``); without it this strategy raises a clear error.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from torch import nn

from robustft.errors import ConfigError, UnknownNameError
from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel
from robustft.seeding import seeded
from robustft.strategies.base import BN_STATS, Phase, Plan, Strategy, StrategyNotApplicableError
from robustft.strategies.registry import STRATEGIES

MECHANISMS = {"lora": "low-rank", "adalora": "low-rank", "loha": "low-rank", "lokr": "low-rank",
              "vera": "low-rank", "randlora": "low-rank", "ia3": "scaling", "oft": "projection",
              "boft": "projection", "hra": "projection"}
# config fields that robustft sets itself or that make no sense on a vision backbone
_INTERNAL = {"peft_type", "task_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
             "inference_mode"}


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise ConfigError("strategy 'peft:<type>' needs Hugging Face peft: pip install peft (or robustft[dev]). "
                          "The built-in lora and ia3 strategies work without it.") from None
    return peft


def _config_class(kind: str) -> type:
    mapping = _peft().PEFT_TYPE_TO_CONFIG_MAPPING
    types = sorted(str(k.value if hasattr(k, "value") else k).lower() for k in mapping)
    key = next((k for k in mapping if str(k.value if hasattr(k, "value") else k).lower() == kind.lower()), None)
    if key is None:
        raise UnknownNameError(f"unknown peft tuner type {kind!r}. Valid types: {', '.join(types)} "
                               "(use the strategy name peft:<type>, e.g. peft:lora).")
    return mapping[key]


def _relative(name: str) -> str:
    return name.removeprefix("backbone.")


def default_targets(layout: Layout) -> list[str]:
    """Target module names relative to the backbone (peft matches them as exact names or dotted suffixes)."""
    if layout.family == "cnn":
        return [_relative(n) for n in layout.pointwise_convs + layout.linears]
    names = []
    for block in layout.blocks:
        attn = block.attention
        names += [attn.qkv] if attn.fused else [attn.q, attn.k, attn.v]
        names += [block.mlp_in, block.mlp_out]
    return [_relative(n) for n in names]


@STRATEGIES.register("peft")
class PeftTuner(Strategy):
    """Any Hugging Face peft tuner by name: peft:<type> (lora, ia3, loha, lokr, oft, ...) with its options."""

    name = "peft"
    mechanism = "low-rank"
    defaults = {"type": None, "seed": 0}
    example_options = {"type": "lora"}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        kind = options.get("type")
        if not kind:
            raise ConfigError("strategy 'peft' needs a tuner type: use peft:<type>, e.g. peft:lora or peft:loha.")
        config_class = _config_class(kind)
        fields = {f.name for f in dataclasses.fields(config_class)} - _INTERNAL
        tuner_options = {k: v for k, v in options.items() if k not in ("type", "seed", "bn_stats")}
        unknown = sorted(set(tuner_options) - fields)
        if unknown:
            raise UnknownNameError(f"unknown option(s) {', '.join(map(repr, unknown))} for strategy peft:{kind}. "
                                   f"Valid options: type, seed, bn_stats, {', '.join(sorted(fields))}.")
        if options.get("bn_stats", "auto") not in BN_STATS:
            raise ConfigError(f"strategy option bn_stats={options['bn_stats']!r}: use one of {', '.join(BN_STATS)}.")
        if tuner_options.get("target_modules") is None:
            tuner_options["target_modules"] = default_targets(layout)
        if "feedforward_modules" in fields and tuner_options.get("feedforward_modules") is None:
            ff = [_relative(b.mlp_out) for b in layout.blocks if b.mlp_out] if layout.family == "vit" else []
            tuner_options["feedforward_modules"] = ff
        return {"type": str(kind).lower(), "seed": int(options.get("seed", 0)),
                "bn_stats": options.get("bn_stats", "auto"), **tuner_options}

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        peft = _peft()
        tuner_options = {k: v for k, v in options.items() if k not in ("type", "seed", "bn_stats")}
        try:
            config = _config_class(options["type"])(**tuner_options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"peft:{options['type']} rejected its options: {error}") from None
        before = {n for n, _ in model.named_parameters()}
        try:
            with seeded(options["seed"]):
                peft.inject_adapter_in_model(config, model.backbone)
        except (ValueError, TypeError, NotImplementedError) as error:
            raise StrategyNotApplicableError(
                f"peft:{options['type']} cannot adapt {model.info.name!r}: {error}. Choose other target_modules "
                "or another strategy (robustft list strategies).") from None
        added = [n for n, p in model.named_parameters() if p.requires_grad and n not in before]
        if not added:
            added = [n for n, p in model.named_parameters() if p.requires_grad and not
                     n.startswith(layout.head + ".")]
        self.mechanism = MECHANISMS.get(options["type"], "low-rank")
        information = ["weights:conv"] if layout.family == "cnn" else ["weights:attention", "weights:mlp"]
        return Plan([Phase(0.0, added)], [*information, "head"])


def merge_peft_layers(model: nn.Module) -> None:
    """Merges every peft tuner layer in ``model`` into its base weights and puts the base layer back in its
    place (what peft's ``merge_and_unload`` does), in place; a no-op while peft is not imported.

    Unloading matters beyond the parameter names: a merged tuner layer still wraps its base layer, so a wrapped
    ``Conv2d`` is no plain conv and ``attacks.fold_conv_bn`` would leave its BatchNorm unfolded.
    """
    # No import here: a tuner layer exists only once its class's module is loaded, and importing peft (it pulls
    # in transformers) took 2.5 s of every run's first evaluation on the demo (prepare_for_attack merges first).
    tuners = sys.modules.get("peft.tuners.tuners_utils")
    if tuners is None:
        return
    BaseTunerLayer = tuners.BaseTunerLayer  # noqa: N806 (a class)
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            if not module.merged:
                module.merge()
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, module.get_base_layer())
