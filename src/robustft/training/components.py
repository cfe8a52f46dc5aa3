"""The trainer's links to the rest of robustft: run directories, data, models, strategies, detection.

Each link reads as one call, so the trainer reads top to bottom without the details of each part. Every link
takes the resolved, typed :class:`~robustft.config.Config` (``robustft.config.load_config`` resolves one, once);
none takes a plain dict for what the config types.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import torch
from torch.utils.data import Dataset

from robustft import data, models
from robustft.analysis.diagnostics import summarize
from robustft.config import Config, dump_yaml, load_config, to_dict
from robustft.errors import RobustftError
from robustft.runs.metrics_file import atomic_write_text
from robustft.runs.records import record_key
from robustft.runs.run_dir import Run, read_metrics
from robustft.strategies import apply
from robustft.strategies.base import StrategyInfo
from robustft.training.schedules import EpsSchedule

log = logging.getLogger("robustft.training.trainer")

# (dotted config key, old value, new value) as config.yaml writes them: what a resume's overrides changed.
Change = tuple[str, object, object]


class Splits(TypedDict):
    """The datasets of a run: ``ds[i] -> (image C x H x W in [0, 1], label)``; ``ood``: name -> dataset."""

    train: Dataset
    val: Dataset
    test: Dataset
    ood: NotRequired[dict[str, Dataset]]


def open_run(path: str | Path, overrides: Sequence[str] = (), config: Config | str | Path | None = None
             ) -> tuple[Run, Config, list[Change]]:
    """(run, config, changes) of an existing run directory to resume: the run's own config plus ``overrides``.

    ``changes`` lists ``(dotted key, old value, new value)`` for every key the overrides changed; the trainer
    records them (``config_change`` records at the step they take effect) and rewrites config.yaml.

    Args:
        path: the run directory.
        overrides: dotted ``key=value`` overrides for the rest of the run.
        config: a config (YAML path or Config) given together with the run: accepted only when it resolves to
            the run's own config (a re-run of the command that started the run), refused otherwise, because
            the run's config.yaml, not this config, is what a resumed run continues with.

    Raises:
        RobustftError: no such run, no config.yaml, or a ``config`` that differs from the run's.
    """
    path = Path(path)
    if not path.is_dir():
        raise RobustftError(f"cannot resume {path}: no such run directory. Pass the directory a run wrote "
                            "(output_dir/name), e.g. runs/demo.")
    run = Run.open(path)
    if not run.config_path.is_file():
        raise RobustftError(f"cannot resume {path}: it has no config.yaml. It was not written by robustft train.")
    # The run stays where it is even if the directory was moved since.
    location = [f"output_dir={path.parent}", f"name={path.name}"]
    previous = load_config(run.config_path, location)
    if config is not None:
        given = changed_keys(previous, load_config(config, location))
        if given:
            shown = ", ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in given[:5])
            raise RobustftError(
                f"--resume {path} continues the run with its own config.yaml, and the config given with it differs "
                f"({shown}{', ...' if len(given) > 5 else ''}). Drop the config file and pass what should change "
                "as key=value overrides (robustft train --resume RUN key=value), or start a new run with another "
                "name.")
    cfg = load_config(previous, overrides)
    if not run.env_path.is_file():
        # An interrupt landed between config.yaml and env.json (a SIGKILLed search did): where the run ran is
        # recorded now, at its resumption, rather than never.
        from robustft.runs.environment import environment

        atomic_write_text(run.env_path, json.dumps(environment(to_dict(cfg), None), indent=2, default=str) + "\n")
    return run, cfg, changed_keys(previous, cfg)


def changed_keys(old: Config, new: Config) -> list[Change]:
    """``(dotted key, old, new)`` for every leaf that differs between two configs, values as config.yaml writes
    them."""
    return _changed_leaves(to_dict(old), to_dict(new), "")


def _changed_leaves(old: object, new: object, prefix: str) -> list[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in [*old, *(k for k in new if k not in old)]:
            out += _changed_leaves(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def config_change_records(changes: list[Change], step: int, epoch: float) -> list[dict[str, Any]]:
    """One ``config_change`` record per changed key (split optim, ``extra = {key, old, new}``) at ``step``, the
    first step trained with the new value."""
    return [{"step": int(step), "epoch": float(epoch), "split": "optim", "metric": "config_change", "attack": None,
             "eps": None, "value": None, "extra": {"key": key, "old": old, "new": new}} for key, old, new in changes]


def rewrite_config(run: Run, cfg: Config) -> None:
    """config.yaml := the resolved ``cfg`` (atomically): after a resume with overrides it states the new values."""
    atomic_write_text(Path(run.path) / "config.yaml", dump_yaml(cfg))


def load_datasets(cfg: Config) -> Splits:
    """train / val / test (and ood: {name: ds}) from ``robustft.data.load`` as the ``data`` section says."""
    d = cfg.data
    common = {"image_size": d.image_size, "seed": cfg.seed, "val_fraction": d.val_fraction, "root": d.root,
              "download": d.download, **(d.options or {})}
    limits = {"train": d.limit_train, "val": d.limit_val, "test": d.limit_test}
    loaded = {split: data.load(d.name, split, limit=limit, **common) for split, limit in limits.items()}
    names = d.ood
    if names == "auto":
        names = list(getattr(loaded["test"].info, "ood_splits", []) or [])
    ood = {name: data.load(name, "test", limit=d.limit_test, **common) for name in names or []}
    return Splits(train=loaded["train"], val=loaded["val"], test=loaded["test"], ood=ood)


def num_classes_of(dataset: Dataset) -> int:
    """The dataset's class count: ``dataset.info.num_classes``, else 1 + the largest label."""
    info = getattr(dataset, "info", None)
    if info is not None and getattr(info, "num_classes", None):
        return int(info.num_classes)
    return int(max(int(dataset[i][1]) for i in range(len(dataset)))) + 1


def build_model(cfg: Config, num_classes: int) -> torch.nn.Module:
    """``models.build`` as the ``model`` section says, seeded by the run seed."""
    m = cfg.model
    return models.build(m.name, num_classes, pretrained=m.pretrained, image_size=m.image_size, seed=cfg.seed,
                        **(m.options or {}))


def apply_strategy(model: torch.nn.Module, cfg: Config) -> StrategyInfo:
    """``strategies.apply(model, name, **options)`` -> StrategyInfo (trainable set, train_mode, on_progress)."""
    return apply(model, cfg.strategy.name, **(cfg.strategy.options or {}))


def checkpoint_header(model: torch.nn.Module, cfg: Config) -> dict[str, Any]:
    """The self-describing part of a checkpoint (what ``checkpoint.load_model`` rebuilds from)."""
    info = getattr(model, "info", None)
    return {"model": {"name": cfg.model.name, "num_classes": int(getattr(info, "num_classes", 0) or 0),
                      "image_size": cfg.model.image_size, "options": dict(cfg.model.options or {})},
            "strategy": {"name": cfg.strategy.name, "options": dict(cfg.strategy.options or {})}}


def check_reference_run(cfg: Config) -> None:
    """Fails before training, not after it, when ``detect.reference_run`` names no run."""
    reference = cfg.detect.reference_run
    if reference and not (Path(reference) / "metrics.jsonl").is_file():
        raise RobustftError(f"detect.reference_run={reference} has no metrics.jsonl. Point it at the run directory "
                            "of a standard fine-tuning run (output_dir/name), or set detect.reference_run=null.")


def summarize_run(run: Run, cfg: Config, strategy: StrategyInfo | None, num_classes: int, *, wall_seconds: float,
                  eval_seconds: float, total_steps: int, eps_at: EpsSchedule | None = None,
                  cpu_seconds: float | None = None,
                  val_history: Sequence[float] = (), perturbed_steps: int | None = None,
                  train_eps_max: float | None = None) -> dict[str, Any]:
    """summary.json: detections (robustft.analysis.diagnostics), final metrics, trainable share, strategy axes, timing,
    and the eps schedule as resolved (``eps_resolved``: per, t1, t2 in that unit; see schedules.resolve_ramp; for
    ``auto``, from ``val_history``, the validation accuracy after each epoch: t1 None when no plateau came).

    ``perturbed_steps`` (int: training steps whose objective crafted a perturbation with eps > 0; 0 for standard
    fine-tuning and for an adversarial run whose eps stayed 0) and ``train_eps_max`` (the largest eps the objective
    was handed) are what the run did, not what its schedule promised; null when unknown (a run resumed from an
    older checkpoint)."""
    metrics = read_metrics(run.path)
    summary: dict[str, Any] = {
        "name": cfg.name, "steps": total_steps, "wall_seconds": wall_seconds, "eval_seconds": eval_seconds,
        "eval_share": eval_seconds / wall_seconds if wall_seconds else None, "cpu_seconds": cpu_seconds,
        "strategy": {"name": getattr(strategy, "name", cfg.strategy.name),
                     "information": getattr(strategy, "information", None),
                     "mechanism": getattr(strategy, "mechanism", None),
                     "trainable_params": int(getattr(strategy, "trainable_count", 0) or 0),
                     "total_params": int(getattr(strategy, "total_count", 0) or 0),
                     "trainable_share": float(getattr(strategy, "share", 0.0) or 0.0)},
        "objective": cfg.objective.name, "eps_schedule": cfg.eps.schedule,
        "perturbed_steps": perturbed_steps, "train_eps_max": train_eps_max,
    }
    if eps_at is not None:
        # auto decides T1 while training: resolve it from the validation history the run saw.
        t1, t2 = eps_at.ramp(val_history)
        summary["eps_resolved"] = {"per": eps_at.per, "t1": t1, "t2": t2}
    if len(metrics):
        last = metrics[metrics["step"] == metrics["step"].max()]
        summary["final"] = {record_key(r): (None if r["value"] != r["value"] else r["value"])  # NaN -> null
                            for r in last.to_dict("records")}
    reference = None
    if cfg.detect.reference_run:
        reference = Run(cfg.detect.reference_run).metrics
    detect = cfg.detect
    options = {"onset_threshold": detect.onset_threshold,
               "failure_threshold": getattr(detect, "failure_threshold", None)}
    if getattr(detect, "suboptimal_gap", None) is not None:
        options["suboptimal_gap"] = detect.suboptimal_gap
    summary["detection"] = summarize(metrics, num_classes, reference_df=reference, **options)
    return summary


def use_cpu_fast_paths(model: torch.nn.Module, device: torch.device, cfg: Config) -> tuple[bool, torch.memory_format]:
    """``train.cpu_fast_paths`` on the CPU: returns (fast paths on, the memory format of the training batches),
    converting ``model`` to channels_last in place where it trains so.

    A CNN (more than two convolutions) trains in channels_last, oneDNN's preferred layout (1.13x a full fine-tuning
    step of the demo's MobileNetV2, 1.8x a frozen-backbone one; `bench train` part 4); the trainer converts its
    batches as they arrive. With the fast paths the update's forward also runs the small-map depthwise product
    (``ObjectiveContext.small_map_depthwise``, robustft.training.small_map_depthwise).
    """
    fast = device.type == "cpu" and bool(cfg.train.cpu_fast_paths)
    channels_last = fast and sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 2
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return fast, torch.channels_last if channels_last else torch.preserve_format
