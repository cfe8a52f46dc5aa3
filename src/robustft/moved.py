"""Old import paths of the modules that the re-layout into subpackages moved: one table, one import hook.

``import robustft.detection`` (the path before the re-layout) still works in this release: it returns the module
at its new path, the same module object as ``import robustft.analysis.diagnostics``, and emits a
``DeprecationWarning`` that names the new path. The next release removes the old paths and this module.

How: ``robustft/__init__.py`` appends a finder to ``sys.meta_path`` that imports this module when a
``robustft.*`` name is not found (so ``import robustft`` itself stays light). Appended, it is asked only after the
real finders found nothing, so an existing module always wins. Its spec's loader returns the already imported new
module instead of creating one, so the old name is an alias: no second copy of a module, its classes or registries.

``MOVED`` lists every module of ``src/robustft`` on main before the re-layout (commit 2229d23) whose path no longer
exists, read from ``git log --diff-filter=DR``. Not in it: the old top-level modules ``analysis``, ``config``,
``runs`` and ``sweep``, whose names are now the packages (which re-export their main names), the old
``robustft/train.py`` (``robustft.train`` is now the training function: aliasing the module would rebind that
attribute, see ``NOT_MODULES``), and ``report/findings_html.py``, which was replaced by the report template and
has no module to point to.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

# old dotted path -> new dotted path
MOVED: dict[str, str] = {
    # robustft/<module>.py -> the package of its layer
    "robustft.checkpoint": "robustft.runs.checkpoints",
    "robustft.config_coerce": "robustft.config.coerce",
    "robustft.config_files": "robustft.config.files",
    "robustft.config_validate": "robustft.config.validate",
    "robustft.detection": "robustft.analysis.diagnostics",
    "robustft.evaluate": "robustft.training.evaluator",
    "robustft.evidence": "robustft.analysis.evidence",
    "robustft.export": "robustft.runs.export",
    "robustft.findings": "robustft.analysis.findings",
    "robustft.findings_base": "robustft.analysis.findings_base",
    "robustft.findings_paper_a": "robustft.analysis.findings_paper_a",
    "robustft.findings_paper_b": "robustft.analysis.findings_paper_b",
    "robustft.metrics_file": "robustft.runs.metrics_file",
    "robustft.objectives": "robustft.training.objectives",
    "robustft.pareto": "robustft.analysis.pareto",
    "robustft.records": "robustft.runs.records",
    "robustft.run_lock": "robustft.runs.lock",
    "robustft.runs_query": "robustft.runs.query",
    "robustft.schedules": "robustft.training.schedules",
    "robustft.seed_stats": "robustft.analysis.seed_stats",
    "robustft.stats": "robustft.analysis.statistics",
    "robustft.study": "robustft.sweep.study",
    "robustft.study_progress": "robustft.sweep.study_progress",
    "robustft.study_summary": "robustft.sweep.study_summary",
    "robustft.sweep_check": "robustft.sweep.check",
    "robustft.sweep_status": "robustft.sweep.status",
    "robustft.tune": "robustft.sweep.tune",
    "robustft.units": "robustft.config.units",
    # renamed inside a package, or merged into another module
    "robustft.attacks.evaluate": "robustft.attacks.robust_evaluation",
    "robustft.data.loader": "robustft.data.batches",
    "robustft.models.common": "robustft.models.backbone",
    "robustft.strategies.seeding": "robustft.seeding",
}

# Old module paths that cannot be aliased, and why (the ModuleNotFoundError says so).
NOT_MODULES: dict[str, str] = {
    "robustft.train": "robustft.train is the training function now (call robustft.train(config)); the trainer "
                      "module moved to robustft.training.trainer",
}


class _AliasLoader:
    """Loads an old path as the module at its new path (imported if it was not yet)."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        # stacklevel 2 is the frame importing the old path: the warnings module skips importlib's own frames
        warnings.warn(f"{spec.name} moved to {self.new}; import {self.new} (the old path works until the next "
                      "robustft release)", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        spec.loader_state = module.__spec__  # the import system is about to set module.__spec__ to the alias's
        return module

    def exec_module(self, module: ModuleType) -> None:
        # Nothing runs (the module ran at its new path); it keeps its own spec (name, origin), so that
        # importlib.reload and tools reading __spec__ see the real module, not the alias.
        module.__spec__ = module.__spec__.loader_state


def find_spec(name: str) -> ModuleSpec | None:
    """The spec of an old module path (``MOVED``), or None for any other name.

    Raises:
        ModuleNotFoundError: an old path that cannot be aliased (``NOT_MODULES``), with what to import instead.
    """
    if name in NOT_MODULES:
        raise ModuleNotFoundError(f"No module named {name!r}: {NOT_MODULES[name]}", name=name)
    new = MOVED.get(name)
    return None if new is None else ModuleSpec(name, _AliasLoader(new))
