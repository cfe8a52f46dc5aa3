"""The typed configuration tree: YAML files plus dotted ``key=value`` overrides, validated with clear messages.

An experiment is a :class:`Config`: nested dataclasses whose defaults are the components' defaults, so a YAML
file only states what differs. Loading is ``yaml.safe_load`` (never arbitrary objects), then

1. ``base:`` includes (a path relative to the including file, applied first, recursively; cycles are errors),
2. the file's own keys, deep-merged over the base (dicts merge, lists and scalars replace),
3. ``key.sub=value`` overrides, values parsed as YAML scalars (``optim.lr=3e-4``, ``data.ood=[a,b]``,
   ``eps.value=8/255``, ``eval.curve=null``),
4. presets expanded (``eval.attack: paper-a``), types coerced and ranges checked.

Conventions: epsilons are pixel units of [0, 1] images written ``4/255`` (or ``0.25/255``, or a float);
durations (``eps.t1``, ``eps.t2``, ``optim.warmup``) are an int count (epochs or steps) or a float fraction of
training in [0, 1]. ``train.epochs`` and ``train.steps``: exactly one is set; a layer (file or override) that
sets one of them and not the other clears the other, so ``train.steps=200`` on top of a file with
``epochs: 3`` trains for 200 steps.

``to_dict`` gives a plain, YAML/JSON-serialisable dict (epsilons written back as ``k/255`` when exact) and
``from_dict(to_dict(cfg)) == cfg``. Names of models, datasets, strategies, objectives and attacks are checked
later by their registries (they may not be importable here); eps schedule names and evaluation schedules are
checked here. The coercion is written by hand (about a hundred lines) because pydantic/omegaconf would be a
new dependency for one module and neither gives the ``4/255`` epsilon type or these messages for free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from robustft.config.attack_spec import AttackSpec, final_attack
from robustft.config.coerce import (
    Duration,
    Eps,
    build,
    hints_of,
    plain_dataclass,
)
from robustft.config.merge import merge_trees
from robustft.config.validate import validate_config
from robustft.errors import ConfigError

# ----------------------------------------------------------------------------------------------------------------
# The tree. Defaults are the components' defaults; the README's schema is this file.


@dataclass
class ModelConfig:
    """Backbone to fine-tune; ``options`` go to ``models.build(**options)``."""

    name: str = "mobilenet_v2"
    pretrained: bool = True
    image_size: int | None = 32
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Dataset, its splits, augmentation and OOD splits; ``options`` go to the dataset's builder."""

    name: str = "fashion-mnist"
    image_size: int | None = 32
    val_fraction: float = 0.1
    limit_train: int | None = None
    limit_val: int | None = None
    limit_test: int | None = None
    augment: list[str] | None = None
    ood: Literal["auto"] | list[str] = field(default_factory=list)  # "auto": the dataset's suggested splits
    download: bool = False
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StrategyConfig:
    """Fine-tuning strategy; ``options`` go to ``strategies.apply(model, name, **options)``."""

    name: str = "full"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObjectiveConfig:
    """Training objective and, for adversarial/trades, its inner attack."""

    name: str = "standard"
    attack: str = "pgd"
    steps: int = 7
    step_size: Eps | None = None
    random_start: bool = True
    beta: float = 6.0
    trades_fused: bool = False  # one forward pass over [x; x'] (pooled BatchNorm statistics), not the reference's two

    @property
    def attack_spec(self) -> AttackSpec:
        """The training attack (``attack``, ``steps``, ``step_size``, ``random_start``) as an :class:`AttackSpec`,
        the type the evaluation attacks have; null step_size: the attack's default."""
        return AttackSpec(name=self.attack, steps=self.steps, step_size=self.step_size,
                          random_start=self.random_start, restarts=1)


@dataclass
class EpsConfig:
    """Training-perturbation schedule (paper B): eps(t) = alpha(t) * value.

    ``schedule`` left unset (null) means ``zero`` under the standard objective and ``constant`` under the others;
    validation writes the resolved name back. The standard objective with any other schedule is refused: it
    trains on clean images whatever eps says.
    """

    schedule: str | None = None
    value: Eps = 4 / 255
    t1: Duration = 0.25
    t2: Duration = 0.75
    per: Literal["epoch", "step"] = "epoch"
    patience: int = 5
    tolerance: float = 0.02


@dataclass
class OptimConfig:
    """AdamW (no decay on biases and norms) and the learning-rate schedule."""

    batch_size: int = 128
    lr: float = 1.0e-3
    head_lr: float | None = None  # the new head's lr (None: lr); paper B's authors tune the two apart
    weight_decay: float = 0.05
    head_weight_decay: float | None = None  # the head's decay (None: weight_decay)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup: Duration = 0.05
    grad_clip: float | None = None
    accumulate: int = 1
    amp: bool | Literal["auto"] = "auto"


@dataclass
class TrainConfig:
    """Training length: exactly one of epochs and steps."""

    epochs: int | None = 3
    steps: int | None = None
    # On the CPU: a convolutional model trains in channels_last and its trained depthwise convolutions on maps of
    # <= 2 x 2 pixels run as a product (robustft.training.small_map_depthwise); false: the library kernels as they
    # are (what tests/test_fast_paths.py and `bench train` compare the fast paths with). Same function either way.
    cpu_fast_paths: bool = True


@dataclass
class EvalConfig:
    """What is evaluated, when, and on how many samples."""

    schedule: str = "epoch"
    subset: int | None = 512
    batch_size: int = 256
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    attack: AttackSpec = field(default_factory=AttackSpec)
    eps: list[Eps] = field(default_factory=lambda: [1 / 255])
    curve: Eps | None = None
    curve_at: Literal["every", "final"] = "every"  # final: the robust curve of the final model only (paper B)
    # splits whose mean cross-entropy is recorded, clean and under eval.attack at each eval.eps (every sample
    # attacked): paper B's authors tune on the validation adversarial loss (robustft tune --protocol paper-b)
    loss: list[str] = field(default_factory=list)
    ood: bool = True
    checks: bool = False
    final: AttackSpec | None = field(default_factory=final_attack)  # the strong evaluation at the end


@dataclass
class CheckpointConfig:
    """Which checkpoints are kept: always ``last``; ``best`` by ``best_metric``; optionally one per evaluation."""

    best_metric: str = "val/clean/accuracy"
    every_eval: bool = False


@dataclass
class DetectConfig:
    """Thresholds of the detections written to summary.json (see robustft.analysis.diagnostics)."""

    onset_threshold: float | None = None
    reference_run: str | None = None
    failure_threshold: float | None = None
    suboptimal_gap: float = 0.15


@dataclass
class LoggingConfig:
    """Progress bar and optional experiment trackers."""

    progress: bool = True
    tensorboard: bool = False
    mlflow: bool = False


@dataclass
class Config:
    """One experiment: what to fine-tune, how, how long, and what to measure."""

    name: str = "demo"
    output_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    eps: EpsConfig = field(default_factory=EpsConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def run_dir(self) -> Path:
        """``output_dir / name``: where this run writes."""
        return Path(self.output_dir) / self.name


# ----------------------------------------------------------------------------------------------------------------
# dict <-> dataclasses


def from_dict(tree: Mapping[str, Any]) -> Config:
    """Builds and validates a :class:`Config` from a plain dict (the parsed YAML, or ``to_dict`` output)."""
    if not isinstance(tree, Mapping):
        raise ConfigError(f"a config must be a mapping of keys, not {type(tree).__name__}.")
    tree = dict(tree)
    tree.pop("base", None)
    # The tree is a layer over the built-in defaults (train.epochs=3): like any layer, setting only one of
    # epochs/steps clears the other, so a file with just `train: {steps: 500}` means 500 steps.
    if isinstance(tree.get("train"), Mapping):
        tree = merge_trees({"train": {}}, tree)
    config = build(Config, tree, "")
    validate_config(config)
    return config


def section_from_dict(name: str, tree: Mapping[str, Any]) -> Any:
    """One section of the config (``eps``, ``eval``, ...) from a plain dict, e.g. from a run's config.yaml.

    Defaults are filled in and values coerced as in a whole config (``"4/255"`` -> 4/255); an unknown key raises
    ConfigError naming ``<name>.<key>``. Cross-field checks of the whole config are not run.
    """
    sections = {key: hint for key, hint in hints_of(Config).items() if dataclasses.is_dataclass(hint)}
    if name not in sections:
        raise ConfigError(f"{name!r} is not a config section; sections: {', '.join(sections)}.")
    return build(sections[name], tree, name)


def to_dict(config: Config) -> dict[str, Any]:
    """The config as a plain dict of YAML/JSON types; epsilons that are exact ``k/255`` are written that way."""
    return plain_dataclass(config)


def dump_yaml(config: Config) -> str:
    """The resolved config as YAML text (what a run directory's config.yaml holds)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=None)
