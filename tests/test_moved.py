"""Module paths from before the re-layout still import, for one release: the new module, with a warning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from robustft.moved import MOVED


@pytest.fixture
def forget_old_paths():
    """Imports of old paths leave an alias in sys.modules and an attribute on the parent; undo both after."""
    yield
    for old in MOVED:
        sys.modules.pop(old, None)
        parent, _, child = old.rpartition(".")
        module = sys.modules.get(parent)
        if module is not None and isinstance(getattr(module, child, None), type(sys)):
            delattr(module, child)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_new_module_with_a_warning_naming_it(old, forget_old_paths):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"^{old} moved to {MOVED[old]}; import {MOVED[old]}") as caught:
        aliased = importlib.import_module(old)
    new = importlib.import_module(MOVED[old])
    assert aliased is new and sys.modules[old] is new
    assert new.__name__ == MOVED[old] and new.__spec__.name == MOVED[old]  # the alias left the module's spec alone
    assert len([w for w in caught if issubclass(w.category, DeprecationWarning)]) == 1


def test_the_old_import_statements_work_and_warn_at_the_importing_line(forget_old_paths):
    with pytest.warns(DeprecationWarning, match="robustft.analysis.diagnostics") as caught:
        from robustft.detection import onset_of_adaptation
    from robustft.analysis.diagnostics import onset_of_adaptation as new

    assert onset_of_adaptation is new
    assert caught[0].filename == __file__  # stacklevel points at the import, not at importlib
    import robustft

    with pytest.warns(DeprecationWarning, match="robustft.analysis.pareto"):
        import robustft.pareto
    assert robustft.pareto is importlib.import_module("robustft.analysis.pareto")


@pytest.mark.parametrize("name", ["robustft.no_such_module", "robustft.analysis.no_such_module",
                                  "robustft.detection_typo"])
def test_an_unknown_name_is_still_module_not_found(name):
    with pytest.raises(ModuleNotFoundError, match=f"No module named '{name}'") as raised:
        importlib.import_module(name)
    assert raised.value.name == name


def test_robustft_train_stays_the_function_and_the_old_module_path_says_where_it_went():
    import robustft

    with pytest.raises(ModuleNotFoundError, match="robustft.training.trainer"):
        importlib.import_module("robustft.train")
    assert callable(robustft.train) and not isinstance(robustft.train, type(sys))


def test_import_robustft_loads_neither_the_table_nor_torch():
    code = "import sys, robustft; print(sorted(m for m in ('robustft.moved', 'torch') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_old_path_in_a_fresh_interpreter_warns_then_imports():
    code = ("import sys, warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    import robustft.pareto\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\nimport robustft.pareto\n"
            "print(robustft.pareto.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "warned: robustft.pareto moved to robustft.analysis.pareto; import robustft.analysis.pareto (the old path "
        "works until the next robustft release)", "robustft.analysis.pareto"]
