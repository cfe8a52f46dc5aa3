"""robustft: fine-tune pretrained vision models with any strategy x objective x perturbation schedule and
measure the accuracy / adversarial / out-of-distribution robustness trade-off continuously.

The public API is reachable from ``import robustft`` alone::

    import robustft
    model = robustft.models.build("mobilenet_v2", 10)
    data = robustft.data.load("fashion-mnist", "test", image_size=32, limit=256)
    result = robustft.train("configs/demo.yaml", ["train.steps=20"])
    tuned = robustft.load(result.path)
    study = robustft.study("paper-b", "runs/paper-b")  # runs, findings, findings.json and the report

Subpackages (``robustft.models``, ``.data``, ``.strategies``, ``.attacks``, ``.analysis``, ``.runs``,
``.report``, ...) are imported on first attribute access, so ``import robustft`` itself imports nothing heavy
(no torch): the module ``__getattr__`` below only imports the named submodule of this package, it hides no
import cycle (tests/test_layering.py checks that none exists). After the first access the submodule is an ordinary
attribute (the import system sets it). ``train`` is a plain function that imports the trainer when called;
``load`` (``robustft.strategies.restore.load``) and ``study`` (``robustft.sweep.study_pipeline.study``) are the
functions of their modules, looked up on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# oneDNN keeps a compiled kernel per layer and batch shape, 1,024 by default; an early-stopping attack shrinks its
# batch every step (about 9 shapes x ~104 MobileNetV2 kernels per call), so the default cache thrashes and a
# re-built kernel costs 1.2-2.7x (measured, bench attacks). Read once, lazily, at the first oneDNN primitive of the
# process, so set here before any torch op; a user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")
os.environ.setdefault("LRU_CACHE_CAPACITY", "16384")

# Freed activations stay in the process (glibc's malloc would hand them back and page-fault them in again on the
# next pass; how often depended on the process's history): robustft/allocator.py says why and what it measured.
from robustft.allocator import keep_freed_memory  # noqa: E402  after the environment above, still no torch

keep_freed_memory()

if TYPE_CHECKING:  # names for the signatures below, not imported at run time (no torch on `import robustft`)
    from collections.abc import Sequence
    from pathlib import Path

    import torch

    from robustft.config import Config
    from robustft.training.components import Splits
    from robustft.training.trainer import RunResult

__version__ = "0.1.0"

# Submodules reachable as attributes of ``robustft`` without an explicit import.
SUBMODULES: tuple[str, ...] = (
    "analysis", "attacks", "config", "data", "device", "errors", "models", "registry", "report", "runs",
    "strategies", "sweep", "training",
)

__all__ = ["__version__", "load", "study", "train", *SUBMODULES]


def train(config: Config | str | Path | None, overrides: Sequence[str] = (), *, resume: str | Path | None = None,
          quiet: bool | None = None, model: torch.nn.Module | None = None,
          datasets: Splits | None = None, device: str | torch.device | None = None) -> RunResult:
    """Fine-tunes a model as ``config`` says; returns the run directory and its summary.

    ``config`` is a YAML path or a ``robustft.config.Config`` (a plain tree: ``robustft.config.from_dict(tree)``);
    ``overrides`` are ``key=value`` strings.
    The arguments are those of :func:`robustft.training.trainer.train`, which documents each.
    """
    # Imported on the first call, so that ``import robustft`` stays light (no torch) until training is asked for.
    from robustft.training.trainer import train as train_run

    return train_run(config, overrides, resume=resume, quiet=quiet, model=model, datasets=datasets, device=device)


def __getattr__(name: str) -> object:
    # Called only for names not yet in the module's namespace (PEP 562); importlib is imported here, not above,
    # to keep ``import robustft`` at ~1.5 ms.
    import importlib

    if name == "load":
        return importlib.import_module("robustft.strategies.restore").load
    if name == "study":
        return importlib.import_module("robustft.sweep.study_pipeline").study
    if name in SUBMODULES:
        return importlib.import_module(f"robustft.{name}")
    raise AttributeError(f"module 'robustft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
