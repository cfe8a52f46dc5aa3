"""The trainer's links to the rest of robustft: config, data, models, strategies, schedules, runs, detection.

Imports happen on use, so ``import robustft.train`` stays light and each link reads as one call.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from robustft.errors import RobustftError

log = logging.getLogger("robustft.train")


def _real(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def load_config(config: Any, overrides: Any = ()) -> Any:
    """A validated Config from a Config, a dict or a YAML path, with dotted overrides applied."""
    module = importlib.import_module("robustft.config")
    if isinstance(config, str | Path):
        return module.load_config(config, list(overrides))
    tree = module.to_dict(config) if isinstance(config, module.Config) else dict(config or {})
    return module.from_dict(module.apply_overrides(tree, list(overrides)))


def to_dict(cfg: Any) -> dict:
    return importlib.import_module("robustft.config").to_dict(cfg)


def RunDir() -> Any:  # noqa: N802 - a class-valued accessor, read like the class
    return _real("robustft.runs", "RunDir")


def open_run(path: Any, overrides: Any = ()) -> tuple[Any, Any]:
    """(run, config) of an existing run directory to resume; the run's own config (plus overrides)."""
    path = Path(path)
    if not path.is_dir():
        raise RobustftError(f"cannot resume {path}: no such run directory. Pass the directory a run wrote "
                            "(output_dir/name), e.g. runs/demo.")
    run = RunDir().open(path)
    tree = getattr(run, "config", None)
    if callable(tree):
        tree = tree()
    if tree is None:
        for name in ("config.yaml", "config.json"):
            if (path / name).is_file():
                import yaml

                tree = yaml.safe_load((path / name).read_text())
                break
    if tree is None:
        raise RobustftError(f"cannot resume {path}: it has no config.yaml. It was not written by robustft train.")
    # The run stays where it is even if the directory was moved since.
    overrides = [*overrides, f"output_dir={path.parent}", f"name={path.name}"]
    return run, load_config(tree if isinstance(tree, dict) else to_dict(tree), overrides)


def load_datasets(cfg: Any) -> dict[str, Any]:
    """train / val / test (and ood: {name: ds}) from ``robustft.data.load`` as the ``data`` section says."""
    from robustft import data

    d = cfg.data
    common = {"image_size": d.image_size, "seed": cfg.seed, "val_fraction": d.val_fraction, "root": d.root,
              "download": d.download, **(d.options or {})}
    limits = {"train": d.limit_train, "val": d.limit_val, "test": d.limit_test}
    splits = {split: data.load(d.name, split, limit=limit, **common) for split, limit in limits.items()}
    names = d.ood
    if names == "auto":
        names = list(getattr(splits["test"].info, "ood_splits", []) or [])
    splits["ood"] = {name: data.load(name, "test", limit=d.limit_test, **common) for name in names or []}
    return splits


def num_classes_of(dataset: Any) -> int:
    info = getattr(dataset, "info", None)
    if info is not None and getattr(info, "num_classes", None):
        return int(info.num_classes)
    return int(max(int(dataset[i][1]) for i in range(len(dataset)))) + 1


def build_model(cfg: Any, num_classes: int) -> torch.nn.Module:
    from robustft import models

    m = cfg.model
    return models.build(m.name, num_classes, pretrained=m.pretrained, image_size=m.image_size, seed=cfg.seed,
                        **(m.options or {}))


def apply_strategy(model: torch.nn.Module, cfg: Any) -> Any:
    """``strategies.apply(model, name, **options)`` -> StrategyInfo (trainable set, train_mode, on_progress)."""
    from robustft.strategies import apply

    return apply(model, cfg.strategy.name, **(cfg.strategy.options or {}))


def make_loader(dataset: Any, cfg: Any, device: torch.device) -> Any:
    """The shuffled training loader (drop_last so every step sees a full batch), seeded by the run seed."""
    from robustft.data import make_loader

    return make_loader(dataset, int(cfg.optim.batch_size), shuffle=True, seed=cfg.seed, drop_last=True,
                augment=cfg.data.augment, device=str(device))


def maybe_eps(value: Any) -> float | None:
    from robustft.evaluate import as_eps

    return None if value is None else as_eps(value)


def checkpoint_header(model: torch.nn.Module, cfg: Any) -> dict[str, Any]:
    """The self-describing part of a checkpoint (what ``checkpoint.load_model`` rebuilds from)."""
    info = getattr(model, "info", None)
    return {"model": {"name": cfg.model.name, "num_classes": int(getattr(info, "num_classes", 0) or 0),
                      "image_size": cfg.model.image_size, "options": dict(cfg.model.options or {})},
            "strategy": {"name": cfg.strategy.name, "options": dict(cfg.strategy.options or {})}}


def check_reference_run(cfg: Any) -> None:
    """Fails before training, not after it, when ``detect.reference_run`` names no run."""
    reference = cfg.detect.reference_run
    if reference and not (Path(reference) / "metrics.jsonl").is_file():
        raise RobustftError(f"detect.reference_run={reference} has no metrics.jsonl. Point it at the run directory "
                            "of a standard fine-tuning run (output_dir/name), or set detect.reference_run=null.")


def read_metrics(path: Path) -> Any:
    """metrics.jsonl as a pandas DataFrame (complete lines only)."""
    import pandas as pd

    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return pd.DataFrame(rows)


def summarize_run(run: Any, cfg: Any, strategy: Any, num_classes: int, *, wall_seconds: float,
                  eval_seconds: float, total_steps: int, eps_at: Any = None) -> dict[str, Any]:
    """summary.json: detections (robustft.detection), final metrics, trainable share, strategy axes, timing,
    and the eps schedule as resolved (``eps_resolved``: per, t1, t2 in that unit; see schedules.resolve_ramp)."""
    from robustft.records import record_key

    run_path = Path(run.path)
    metrics = read_metrics(run_path / "metrics.jsonl")
    summary: dict[str, Any] = {
        "name": cfg.name, "steps": total_steps, "wall_seconds": wall_seconds, "eval_seconds": eval_seconds,
        "eval_share": eval_seconds / wall_seconds if wall_seconds else None,
        "strategy": {"name": getattr(strategy, "name", cfg.strategy.name),
                     "information": getattr(strategy, "information", None),
                     "mechanism": getattr(strategy, "mechanism", None),
                     "trainable_params": int(getattr(strategy, "trainable_count", 0) or 0),
                     "total_params": int(getattr(strategy, "total_count", 0) or 0),
                     "trainable_share": float(getattr(strategy, "share", 0.0) or 0.0)},
        "objective": cfg.objective.name, "eps_schedule": cfg.eps.schedule,
    }
    if eps_at is not None:
        summary["eps_resolved"] = {"per": eps_at.per, "t1": eps_at.t1, "t2": eps_at.t2}
    if len(metrics):
        last = metrics[metrics["step"] == metrics["step"].max()]
        summary["final"] = {record_key(r): (None if r["value"] != r["value"] else r["value"])  # NaN -> null
                            for r in last.to_dict("records")}
    try:
        from robustft.detection import summarize
    except ImportError:
        log.warning("detections skipped: robustft.detection is not available yet")
        return summary
    reference = None
    if cfg.detect.reference_run:
        reference = read_metrics(Path(cfg.detect.reference_run) / "metrics.jsonl")
    detect = cfg.detect
    options = {"onset_threshold": detect.onset_threshold,
               "failure_threshold": getattr(detect, "failure_threshold", None)}
    if getattr(detect, "suboptimal_gap", None) is not None:
        options["suboptimal_gap"] = detect.suboptimal_gap
    summary["detection"] = summarize(metrics, num_classes, reference_df=reference, **options)
    return summary
