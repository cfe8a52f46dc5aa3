"""The strategy contract: ``Strategy`` subclasses adapt a model; ``StrategyInfo`` reports what they did.

A strategy inserts its modules (adapters, low-rank deltas, scales, prompts) and chooses which parameters train.
It returns a list of *phases* -- (progress at which the phase starts, parameter names trainable in it) -- so
schedules such as LP-FT (head first, then everything) need no special case in the trainer: ``on_progress``
switches ``requires_grad`` when a new phase starts.

Why written here: the bookkeeping (phases, BatchNorm statistics, counting) is specific to robustft's trainer
contract; the parameter-efficient modules themselves live in each strategy's module (``lora.py``, ``ia3.py``,
``adapter.py``, ``compacter.py``, ``vpt.py``) and in ``peft_tuner.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from robustft.errors import ConfigError, RobustftError, UnknownNameError
from robustft.models.layout import Layout
from robustft.models.wrapper import RobustModel

MECHANISMS = ("back-propagation", "low-rank", "scaling", "projection", "prompt")
BN_STATS = ("auto", "update", "freeze")


class StrategyNotApplicableError(RobustftError):
    """A strategy that cannot adapt this architecture (e.g. visual prompts on a CNN)."""


@dataclass
class Phase:
    """From ``start`` (fraction of training in [0, 1]) on, exactly ``trainable`` parameters train."""

    start: float
    trainable: list[str]


@dataclass
class Plan:
    """What ``Strategy.adapt`` did: the phases and the place on paper A's "type of information" axis."""

    phases: list[Phase]
    information: list[str]


@dataclass
class StrategyInfo:
    """What a strategy did to a model, and the two hooks the trainer calls.

    Attributes:
        name: the strategy name as given (``lora``, ``peft:loha``, ...).
        options: every option, resolved (defaults filled in), JSON-serialisable; ``apply(model, name, **options)``
            on a fresh model rebuilds the same structure.
        trainable_names: every parameter name (as in ``model.named_parameters()``) trained in any phase.
        trainable_count: elements in those parameters.
        total_count: elements in all parameters of the adapted model.
        share: ``trainable_count / total_count``.
        information: paper A's "type of information" (``weights:attention``, ``biases``, ``head``, ``input``, ...).
        mechanism: paper A's mechanism (back-propagation | low-rank | scaling | projection | prompt).
        phases: trainable names per phase of training (one phase for every strategy but LP-FT).
    """

    name: str
    options: dict[str, Any]
    trainable_names: list[str]
    trainable_count: int
    total_count: int
    share: float
    information: list[str]
    mechanism: str
    phases: list[Phase] = field(default_factory=list, repr=False)

    def __repr__(self) -> str:
        # Short on purpose: the dataclass default would print every trainable parameter name (~70 for LoRA).
        return (f"StrategyInfo(name={self.name!r}, trainable={self.trainable_count:,} of {self.total_count:,} "
                f"({self.share:.2%}), mechanism={self.mechanism!r}, information={self.information!r}, "
                f"phases={len(self.phases)})")

    def active_phase(self, progress: float) -> Phase:
        """The phase in force at ``progress`` (fraction of training done, in [0, 1])."""
        started = [p for p in self.phases if p.start <= progress]
        return started[-1] if started else self.phases[0]

    def on_progress(self, model: nn.Module, progress: float) -> bool:
        """Called before each optimisation step; sets ``requires_grad`` for the phase in force.

        Args:
            model: the adapted model.
            progress: fraction of the total steps done, in [0, 1].

        Returns:
            True when the set of parameters with ``requires_grad`` changed (then the trainer may log it).
        """
        return set_trainable(model, self.active_phase(progress).trainable)

    def train_mode(self, model: nn.Module) -> nn.Module:
        """Puts ``model`` in train mode, keeping BatchNorm layers with frozen parameters in eval mode.

        A BatchNorm layer updates its running statistics only when its scale (``weight``) currently trains (or,
        for one without affine parameters, when every parameter of the model trains), unless option
        ``bn_stats`` is ``update`` (always) or ``freeze`` (never). Why: at evaluation a BatchNorm channel computes
        ``weight / sqrt(running_var) * (x - running_mean) + bias``, so re-estimating the statistics changes the
        channel's scale as surely as training ``weight`` does. Linear probing a CNN in train mode would otherwise
        silently change the frozen backbone, and BitFit (biases only: the BatchNorm ``bias`` trains, its
        ``weight`` does not) would change every channel's scale too, which paper A's BitFit on a LayerNorm ViT
        (no running statistics) never does. Measured on the demo (MobileNetV2, Fashion-MNIST 32 px, PGD-15 at
        1/255, 150 steps, 256 test images): BitFit with re-estimated statistics 78.1% clean / 0.0% robust, with
        the pretrained ones 82.0% / 50.4%; linear probing with re-estimated statistics 68.4% / 0.0%.

        Returns:
            ``model``.
        """
        model.train()
        policy = self.options.get("bn_stats", "auto")
        if policy == "update":
            return model
        everything = all(p.requires_grad for p in model.parameters())
        for module in model.modules():
            if isinstance(module, _BatchNorm) and (policy == "freeze" or not statistics_follow(module, everything)):
                module.eval()
        return model

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (for run directories)."""
        summary = asdict(self)
        summary["phases"] = [{"start": p.start, "trainable_count": len(p.trainable)} for p in self.phases]
        return summary


def statistics_follow(module: _BatchNorm, everything: bool) -> bool:
    """Whether ``bn_stats=auto`` lets ``module`` re-estimate its running statistics: its scale trains.

    Args:
        module: a BatchNorm layer.
        everything: whether every parameter of the model trains (decides for a layer without affine parameters).
    """
    weight = module.weight
    return bool(weight.requires_grad) if weight is not None else everything


def set_trainable(model: nn.Module, names: list[str]) -> bool:
    """Sets ``requires_grad`` True exactly for ``names``. Returns True when anything changed."""
    wanted = set(names)
    changed = False
    for name, param in model.named_parameters():
        trains = name in wanted
        if param.requires_grad != trains:
            param.requires_grad_(trains)
            changed = True
    return changed


def names_under(model: nn.Module, module_name: str) -> list[str]:
    """Parameter names of ``module_name`` and its descendants, as in ``model.named_parameters()``."""
    return [n for n, _ in model.named_parameters() if n.startswith(module_name + ".")]


class Strategy:
    """Base class: subclasses set the class attributes and implement ``adapt``.

    Class attributes:
        name: registry name.
        mechanism: paper A's mechanism.
        defaults: option name -> default (JSON values); ``bn_stats`` and the checks come for free.
        families: model families the strategy applies to.
        identity_at_init: whether the adapted model computes the same logits as before (False for prompts).
        example_options: options for tests and ``list_table`` when the defaults alone are not enough.
    """

    name: ClassVar[str] = ""
    mechanism: ClassVar[str] = "back-propagation"
    defaults: ClassVar[dict[str, Any]] = {}
    families: ClassVar[tuple[str, ...]] = ("cnn", "vit")
    identity_at_init: ClassVar[bool] = True
    example_options: ClassVar[dict[str, Any]] = {}

    def resolve(self, options: dict[str, Any], layout: Layout) -> dict[str, Any]:
        """Fills defaults and checks names and types; subclasses extend for layout-dependent defaults."""
        valid = {"bn_stats": "auto", **self.defaults}
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise UnknownNameError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for strategy {self.name!r}. "
                f"Valid options: {', '.join(f'{k} (default {v!r})' for k, v in valid.items())}."
            )
        resolved = {**valid, **options}
        for key, default in valid.items():
            resolved[key] = _coerce(self.name, key, resolved[key], default)
        if resolved["bn_stats"] not in BN_STATS:
            raise ConfigError(f"strategy option bn_stats={resolved['bn_stats']!r}: use one of {', '.join(BN_STATS)}.")
        return resolved

    def adapt(self, model: RobustModel, layout: Layout, options: dict[str, Any]) -> Plan:
        """Inserts modules into ``model`` (in place) and returns the phases. ``options`` are resolved."""
        raise NotImplementedError


def _coerce(strategy: str, key: str, value: Any, default: Any) -> Any:
    """Checks ``value`` against the default's type (ints accepted for floats); None defaults accept anything."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):
            return [value]
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(
        f"strategy {strategy!r} option {key}={value!r} has the wrong type: expected "
        f"{type(default).__name__} like the default {default!r}."
    )


def check_positive(strategy: str, options: dict[str, Any], *keys: str) -> None:
    """Raises ConfigError unless every ``options[key]`` is > 0."""
    for key in keys:
        if options[key] <= 0:
            raise ConfigError(f"strategy {strategy!r} option {key}={options[key]!r} must be > 0.")
