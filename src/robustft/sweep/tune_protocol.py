"""``robustft tune --protocol``: what a search tunes (space, metric, ASHA's reduction factor) as named presets.

``paper-b`` follows the paper B authors' code (github.com/MaxHeuillet/robust_training: ``utils/hp_opt.py``,
``utils/optimizer_loader.py``, ``distributed_experiment_final.py``): Ray Tune's ASHA with grace period 1 epoch and
reduction factor 2; the backbone's and the head's learning rates apart on loguniform(1e-6, 1e-1), their weight
decays on loguniform(1e-6, 1e-2), the cosine schedule on or off; the validation loss minimised at every epoch (under
adversarial training, the cross-entropy at APGD's points: the validation adversarial loss; with a standard
objective, the clean one). A linear probe searches the head's settings only, as theirs does.
``clean-accuracy`` is the search robustft ran before it: optim.lr and optim.weight_decay on loguniform(1e-5, 1e-1),
validation clean accuracy maximised, reduction factor 3. The default is paper-b for an adversarial (or TRADES)
objective, clean-accuracy for standard fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustft.errors import ConfigError
from robustft.runs.records import record_key
from robustft.sweep.tune_space import DEFAULT_SEARCH, eval_attack_name

PAPER_B_SEARCH = ("optim.lr=loguniform:1e-6:1e-1", "optim.head_lr=loguniform:1e-6:1e-1",
                  "optim.weight_decay=loguniform:1e-6:1e-2", "optim.head_weight_decay=loguniform:1e-6:1e-2",
                  "optim.lr_schedule=choice:cosine,constant")
PROTOCOL_NAMES = ("paper-b", "clean-accuracy")
# A searched key the config leaves unset starts (the first trial, the config's own values) from the value it
# falls back to in training: the head trains with the body's lr and decay unless told otherwise.
START_FALLBACK = {"optim.head_lr": "optim.lr", "optim.head_weight_decay": "optim.weight_decay"}


@dataclass(frozen=True)
class Protocol:
    """A search's settings: ``search`` items (``KEY=DIST``), the record key tuned and its direction, ASHA's factor."""

    name: str
    search: tuple[str, ...]
    metric: str
    mode: str
    reduction_factor: int


def default_protocol(cfg: Any) -> str:
    """paper-b for an adversarial (or TRADES) objective, clean-accuracy for standard fine-tuning."""
    return "clean-accuracy" if cfg.objective.name == "standard" else "paper-b"


def protocol(name: str | None, cfg: Any) -> Protocol:
    """The named protocol's settings for ``cfg`` (None: :func:`default_protocol`).

    Raises:
        ConfigError: an unknown name.
    """
    name = name or default_protocol(cfg)
    if name == "clean-accuracy":
        return Protocol(name, DEFAULT_SEARCH, "val/clean/accuracy", "max", 3)
    if name != "paper-b":
        raise ConfigError(f"--protocol {name!r} is not a tuning protocol; use {' or '.join(PROTOCOL_NAMES)}.")
    search = PAPER_B_SEARCH
    if cfg.strategy.name == "linear":  # only the head trains: the authors' linear probe searches its lr and decay
        search = tuple(item for item in search if not item.startswith(("optim.lr=", "optim.weight_decay=")))
    if cfg.objective.name == "standard":
        metric = "val/clean/loss"
    else:
        metric = record_key({"split": "val", "attack": eval_attack_name(cfg), "metric": "loss",
                             "eps": float(cfg.eps.value)})
    return Protocol(name, search, metric, "min", 2)
