"""robustft: fine-tune pretrained vision models with any strategy x objective x perturbation schedule and
measure the accuracy / adversarial / out-of-distribution robustness trade-off continuously.

The public API is reachable from ``import robustft`` alone::

    import robustft
    model = robustft.models.build("mobilenet_v2", 10)
    data = robustft.data.load("fashion-mnist", "test", image_size=32, limit=256)
    result = robustft.train("configs/demo.yaml", ["train.steps=20"])
    tuned = robustft.load(result.path)

Subpackages (``robustft.models``, ``.data``, ``.strategies``, ``.attacks``, ``.analysis``, ``.runs``,
``.report``, ...) are imported on first attribute access, so ``import robustft`` itself imports nothing heavy
(no torch): the module ``__getattr__`` below only imports the named submodule of this package, it hides no
import cycle. After the first access the submodule is an ordinary attribute (the import system sets it).
"""

from __future__ import annotations

__version__ = "0.1.0"

# Submodules reachable as attributes of ``robustft`` without an explicit import.
SUBMODULES: tuple[str, ...] = (
    "analysis", "attacks", "config", "data", "device", "errors", "models", "registry", "report", "runs",
    "strategies", "sweep", "training",
)

__all__ = ["__version__", "load", "train", *SUBMODULES]


def __getattr__(name: str) -> object:
    # Called only for names not yet in the module's namespace (PEP 562); importlib is imported here, not above,
    # to keep ``import robustft`` at ~1.5 ms.
    import importlib

    if name == "train":
        # ``robustft.train`` is also a submodule; that module is callable (see robustft/training/trainer.py), so
        # returning it keeps ``robustft.train(cfg)`` working whichever was imported first.
        return importlib.import_module("robustft.training.trainer")
    if name == "load":
        return importlib.import_module("robustft.runs.checkpoints").load
    if name in SUBMODULES:
        return importlib.import_module(f"robustft.{name}")
    raise AttributeError(f"module 'robustft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
