"""FALLBACKS ONLY: minimal stand-ins for robustft.config / schedules / runs / data.make_loader.

The trainer imports the real modules (owned by other engineers) whenever they exist; these stand-ins exist
only so the trainer runs and is tested while those modules are being written, and are never used once they
land. They implement the documented contracts' minimum, nothing more.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import yaml

from robustft.errors import ConfigError
from robustft.units import parse_eps

DEFAULTS: dict[str, Any] = {
    "name": "run", "output_dir": "runs", "seed": 0, "device": "auto",
    "model": {"name": "mobilenet_v2", "pretrained": True, "image_size": 32, "options": {}},
    "data": {"name": "fashion-mnist", "image_size": 32, "val_fraction": 0.1, "limit_train": None, "limit_val": None,
             "limit_test": None, "augment": None, "ood": [], "download": False, "root": None, "options": {}},
    "strategy": {"name": "full", "options": {}},
    "objective": {"name": "standard", "attack": "pgd", "steps": 7, "step_size": None, "random_start": True,
                  "beta": 6.0},
    "eps": {"schedule": "constant", "value": "4/255", "t1": 0.25, "t2": 0.75, "per": "epoch", "patience": 5,
            "tolerance": 0.02},
    "optim": {"batch_size": 128, "lr": 1.0e-3, "head_lr": None, "weight_decay": 0.05, "betas": [0.9, 0.999],
              "lr_schedule": "cosine", "warmup": 0.05, "grad_clip": None, "accumulate": 1, "amp": "auto"},
    "train": {"epochs": 3, "steps": None},
    "eval": {"schedule": "epoch", "subset": 512, "batch_size": 256, "splits": ["train", "val", "test"],
             "attack": "paper-a", "eps": ["1/255"], "curve": None, "ood": True, "checks": False,
             "final": {"name": "apgd-ce", "steps": 10}},
    "checkpoint": {"best_metric": "val/clean/accuracy", "every_eval": False},
    "detect": {"onset_threshold": None, "reference_run": None},
    "logging": {"progress": True, "tensorboard": False, "mlflow": False},
}


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _namespace(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return value


def load_config(source: Any, overrides: Any = ()) -> SimpleNamespace:
    """dict | YAML path -> defaults merged -> dotted overrides -> attribute tree (eps.value as float)."""
    if isinstance(source, str | Path):
        source = yaml.safe_load(Path(source).read_text()) or {}
    tree = _merge(DEFAULTS, source or {})
    for override in overrides:
        key, _, text = override.partition("=")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(text)
    tree["eps"]["value"] = parse_eps(tree["eps"]["value"]) if isinstance(tree["eps"]["value"], str) \
        else float(tree["eps"]["value"])
    return _namespace(tree)


def to_dict(cfg: Any) -> Any:
    if isinstance(cfg, SimpleNamespace):
        return {k: to_dict(v) for k, v in vars(cfg).items()}
    return cfg


def _duration(value: float, total: int) -> int:
    return int(round(value * total)) if isinstance(value, float) and value < 1 else int(value)


def eps_schedule(eps_cfg: Any, total_epochs: int, total_steps: int, steps_per_epoch: int, seed: int):
    """constant / zero / scheduled / linear only (paper B's alpha(t) ramp, per epoch or per step)."""
    kind, value = eps_cfg.schedule, float(eps_cfg.value)
    if kind not in ("constant", "zero", "scheduled", "linear"):
        raise ConfigError(f"fallback eps schedule cannot do {kind!r}")
    per_step = eps_cfg.per == "step"
    total = total_steps if per_step else total_epochs
    t1 = 0 if kind == "linear" else _duration(eps_cfg.t1, total)
    t2 = total if kind == "linear" else _duration(eps_cfg.t2, total)

    def schedule(epoch: int, step: int, val_history: Any = None) -> float:
        if kind == "zero":
            return 0.0
        if kind == "constant":
            return value
        t = step if per_step else epoch
        if t < t1:
            return 0.0
        return value if t >= t2 else value * (t - t1) / max(t2 - t1, 1)

    return schedule


def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str) -> float:
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def evaluation_steps(schedule: Any, total_steps: int, steps_per_epoch: int) -> list[int]:
    if schedule == "epoch":
        steps = set(range(0, total_steps + 1, steps_per_epoch))
    elif isinstance(schedule, str) and schedule.startswith("every:"):
        steps = set(range(0, total_steps + 1, int(schedule.split(":")[1])))
    elif isinstance(schedule, str) and schedule.startswith("steps:"):
        steps = {int(s) for s in yaml.safe_load(schedule.split(":", 1)[1]) if int(s) <= total_steps}
    else:  # paper-a
        steps, s = {0}, 0
        while s < total_steps:
            s += next(e for u, e in ((100, 50), (300, 30), (1000, 200), (3000, 2000), (10000, 4000)) if s < u) \
                if s < 10000 else 10000
            steps.add(min(s, total_steps))
    return sorted(steps | {0, total_steps})


class _Writer:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, records: list[dict]) -> None:
        with open(self.path, "a") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in records))
            handle.flush()
            os.fsync(handle.fileno())


class RunDir:
    """Run directory: config.json, metrics.jsonl (append-only), summary.json, checkpoints/."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.checkpoints_dir = self.path / "checkpoints"
        self.metrics_path = self.path / "metrics.jsonl"

    @classmethod
    def create(cls, path: Any, cfg_dict: dict) -> RunDir:
        run = cls(path)
        run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        (run.path / "config.json").write_text(json.dumps(cfg_dict, indent=2))
        run.metrics_path.touch()
        return run

    @classmethod
    def open(cls, path: Any) -> RunDir:
        return cls(path)

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def metrics_writer(self) -> _Writer:
        return _Writer(self.metrics_path)

    def truncate_metrics_after(self, step: int) -> None:
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        kept = [line for line in lines if line.strip() and _complete(line) and json.loads(line)["step"] <= step]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    def write_summary(self, summary: dict) -> None:
        (self.path / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def _complete(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


class SimpleLoader:
    """Shuffled mini-batches of an indexable dataset; ``set_epoch`` reseeds the order (seed, epoch)."""

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 augment: Any = None, device: Any = "cpu") -> None:
        self.dataset, self.batch_size, self.shuffle, self.seed, self.drop_last = dataset, batch_size, shuffle, seed, \
            drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 7919 + self.epoch))
                 if self.shuffle else torch.arange(n))
        for b in range(len(self)):
            items = [self.dataset[int(i)] for i in order[b * self.batch_size:(b + 1) * self.batch_size]]
            yield torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])
