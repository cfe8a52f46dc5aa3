"""The package layering: every import goes down the layer list, and no module import cycle exists.

Read from the source with ``ast`` (so function-level imports, which run late and can hide a cycle, count too),
then every module is imported to show that the graph checked is the code that runs. Relative imports are resolved
to the absolute module they name and checked the same way (ruff's TID252 bans them too; this test does not rely on
ruff having run).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import robustft

# Lowest first. A module may import modules of its own layer and of lower ones, never of a higher one. The order
# is the data flow, except that a run directory and its analysis sit below the trainer that writes and summarises
# them, and attacks sit above the statistics they report intervals with. runs sits below models and strategies:
# it is storage only (files, records, the checkpoint file), and rebuilding or exporting a trained model from it
# is the strategies' (robustft.strategies.restore / .export), so nothing in runs needs a model.
LAYERS: list[tuple[str, ...]] = [
    ("robustft.errors", "robustft.registry", "robustft.device", "robustft.seeding"),  # errors, Registry, devices, RNG
    ("robustft.config",),  # typed tree, files + overrides, coercion, validation, eps units
    ("robustft.data",),  # sources, splits, loaders, augmentation, corruptions
    ("robustft.runs",),  # run directory, record schema, metrics file, checkpoint files, lock, queries
    ("robustft.models",),  # build(name) -> a normalising wrapper
    ("robustft.strategies",),  # what is trained; a trained model rebuilt from its checkpoint, merged, exported
    ("robustft.analysis",),  # Pareto, diagnostics, statistics, findings: read runs, never train
    ("robustft.attacks",),  # attacks and robust evaluation
    ("robustft.training",),  # trainer, objectives, schedules, evaluator
    ("robustft.report",),  # HTML page and figures from runs
    ("robustft.sweep",),  # many runs
    ("robustft.cli",),  # the command line over all of it
    ("robustft", "robustft.__main__"),  # the public API: robustft.train(...), lazily
]

SRC = Path(robustft.__file__).resolve().parent
# The modules allowed a module-level __getattr__: robustft itself, so that ``import robustft`` stays light
# (subpackages load on first attribute access), and robustft.runs, whose torch-needing submodule (checkpoints)
# loads the same way so that a sweep's parent imports the run directory code without torch. Each imports
# only its own named submodules; anywhere else a module __getattr__ would be hiding an import cycle.
GETATTR_ALLOWED = {"robustft", "robustft.runs"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    _module_name(p): p for p in sorted(SRC.rglob("*.py")) if "__pycache__" not in p.parts
}


def _layer(module: str) -> int:
    best, rank = -1, -1
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module an ``ImportFrom`` in ``module`` reads from: ``from ..training import x`` in
    ``robustft.analysis.evidence`` reads from ``robustft.training``; a package's ``__init__`` counts as the package
    itself, so ``from . import x`` there stays in the package."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    if node.level - 1 >= len(package):
        raise AssertionError(f"{module}: a relative import of level {node.level} goes above the top package")
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING")


def _imports(module: str, source: str | None = None, type_checking: bool = True) -> list[tuple[str, int, bool]]:
    """(imported robustft module, line, at module level?) for every import in ``module``'s source (or ``source``,
    read as if it were that module's), relative imports resolved, including
    ``importlib.import_module("robustft.x")`` with a literal name; ``type_checking=False`` leaves out the imports
    under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8") if source is None else source)
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if not type_checking and _type_checking_block(child):
                continue
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names if a.name.startswith("robustft"))
            elif isinstance(child, ast.ImportFrom) and _absolute(module, child).startswith("robustft"):
                origin = _absolute(module, child)
                for alias in child.names:  # ``from p import m`` imports the submodule p.m when there is one
                    if origin == "robustft" and alias.name == "__version__":
                        continue  # a constant set first thing in robustft/__init__.py, before any import
                    sub = f"{origin}.{alias.name}"
                    found.append((sub if sub in MODULES else origin, child.lineno, top))
            elif (isinstance(child, ast.Call) and getattr(child.func, "attr", getattr(child.func, "id", "")) ==
                  "import_module" and child.args and isinstance(child.args[0], ast.Constant)
                  and str(child.args[0].value).startswith("robustft")):
                found.append((child.args[0].value, child.lineno, top))  # importlib.import_module("robustft.x")
            visit(child, nested)

    visit(tree, True)
    return found


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if _layer(m) < 0]
    assert not unplaced, f"add these modules' package to LAYERS in {__file__}: {unplaced}"


def _upward(module: str, source: str | None = None) -> list[str]:
    return [f"{MODULES[module].relative_to(SRC.parent)}:{line} imports {target}"
            for target, line, _ in _imports(module, source) if _layer(target) > _layer(module)]


def test_no_module_imports_a_higher_layer():
    upward = [found for module in MODULES for found in _upward(module)]
    assert not upward, "lower layers must not import higher ones:\n" + "\n".join(upward)


def test_relative_imports_resolve_to_their_absolute_module_and_an_upward_one_is_caught():
    source = ("from . import pareto\n"
              "from .paired_tests import paired_t\n"
              "def late():\n"
              "    from ..training import objectives\n"
              "    from .. import attacks\n")
    assert _imports("robustft.analysis.evidence", source) == [
        ("robustft.analysis.pareto", 1, True), ("robustft.analysis.paired_tests", 2, True),
        ("robustft.training.objectives", 4, False), ("robustft.attacks", 5, False)]
    assert [line.split(" imports ")[1] for line in _upward("robustft.analysis.evidence", source)] == [
        "robustft.training.objectives", "robustft.attacks"]
    # in a package's __init__, ``from . import x`` names the package's own submodule
    assert _imports("robustft.analysis", "from . import pareto\n") == [("robustft.analysis.pareto", 1, True)]


def _storage_breaches(sources: dict[str, str] | None = None) -> list[str]:
    """Imports of models or strategies from robustft.runs (``sources``: module -> source read in its place)."""
    sources = sources or {}
    return [f"{MODULES[module].relative_to(SRC.parent)}:{line} imports {target}"
            for module in MODULES if module == "robustft.runs" or module.startswith("robustft.runs.")
            for target, line, _ in _imports(module, sources.get(module))
            if any(target == p or target.startswith(p + ".") for p in ("robustft.models", "robustft.strategies"))]


def test_runs_is_storage_and_imports_neither_models_nor_strategies():
    assert not _storage_breaches(), "robustft.runs stores; rebuilding a model is robustft.strategies.restore's"
    # checked by name, whatever LAYERS says: a model or strategy import put back into runs is caught, even late
    late = "def load():\n    from robustft.strategies import apply\n    import robustft.models.build\n"
    assert [b.split(" imports ")[1] for b in _storage_breaches({"robustft.runs.checkpoints": late})] == [
        "robustft.strategies", "robustft.models.build"]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_even_through_function_level_imports():
    # An import under ``if TYPE_CHECKING:`` never runs, so it closes no cycle (a helper of the trainer annotating
    # ``trainer: Trainer``); the layer test above still counts it.
    edges = {m: {t for t, _, _ in _imports(m, type_checking=False) if t in MODULES} for m in MODULES}
    cycles = _cycles(edges)
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c)
                                                                                          for c in cycles)


def test_the_cycle_finder_finds_a_hidden_cycle():
    # the graph of the old robustft.config <-> robustft.config_files, closed through a function-level import
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_module_getattr_hides_a_cycle():
    offenders = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if module not in GETATTR_ALLOWED and any(
                isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
            offenders.append(module)
    assert not offenders, f"module-level __getattr__ outside {GETATTR_ALLOWED}: {offenders}"


# robustft.__main__ is left out: importing it runs the command line (sys.exit); every sweep test runs it as
# `python -m robustft train` (robustft.sweep.local_executor).
@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "robustft.__main__"))
def test_every_module_imports(module):
    importlib.import_module(module)



def test_robustft_train_is_a_plain_function_whatever_was_imported_first():
    import inspect

    import robustft.training.trainer  # noqa: F401 - importing the trainer module must not rebind robustft.train

    assert inspect.isfunction(robustft.train) and robustft.train.__module__ == "robustft"
    assert inspect.signature(robustft.train).parameters.keys() == inspect.signature(
        robustft.training.trainer.train).parameters.keys()
