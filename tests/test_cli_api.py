"""The Python API the README shows: ``import robustft`` alone reaches every subpackage, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import robustft
from robustft.errors import ConfigError


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


SUBPACKAGE_API = {"models": "build", "data": "load", "strategies": "apply", "attacks": "robust_accuracy",
                  "analysis": "pareto_area", "runs": "query_runs", "report": "build_report"}


def test_subpackages_are_attributes_without_explicit_import():
    # A fresh interpreter: in this one an earlier test may already have imported the submodules.
    checks = "; ".join(f"assert callable(robustft.{name}.{attr}), {name!r}" for name, attr in SUBPACKAGE_API.items())
    done = _run(f"import robustft; {checks}")
    assert done.returncode == 0, done.stderr


def test_import_robustft_stays_light():
    done = _run("import sys, robustft; print(sorted(m for m in ('torch', 'numpy', 'pandas', 'robustft.models') "
                "if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'modelz'"):
        robustft.modelz  # noqa: B018


def test_train_and_load_are_callable_at_top_level():
    done = _run("import robustft; import robustft.training.trainer as t; assert callable(robustft.train); "
                "assert callable(robustft.load); print(robustft.load.__module__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "robustft.strategies.restore"
    assert {"models", "data", "attacks", "load", "train"} <= set(dir(robustft))


def test_robust_accuracy_and_curve_take_the_same_order_and_eps_text(tiny_cnn, tiny_batch):
    from robustft.attacks import build_attack, robust_accuracy, robust_curve

    attack = build_attack("fgsm")
    single = robust_accuracy(tiny_cnn, tiny_batch, attack, "0.25/255")
    assert single.eps == 0.25 / 255
    curve = robust_curve(tiny_cnn, tiny_batch, attack, ["0", "0.25/255"])
    assert [r.eps for r in curve] == [0.0, 0.25 / 255]
    assert curve[1].correct == single.correct


def test_robust_curve_takes_its_arguments_in_one_order_or_by_name(tiny_cnn, tiny_batch):
    from robustft.attacks import build_attack, robust_curve

    attack = build_attack("fgsm")
    new = robust_curve(tiny_cnn, tiny_batch, attack, [0, 1 / 255])
    keywords = robust_curve(tiny_cnn, tiny_batch, eps_list=[0, 1 / 255], attack=attack)
    assert [r.correct for r in keywords] == [r.correct for r in new]
    # The pre-0.2 order (eps_list, attack) is gone (no release had it); a call in it gets the fix, not a guess.
    with pytest.raises(ConfigError, match=r"robust_curve\(model, batches, attack, \[0, 1/255"):
        robust_curve(tiny_cnn, tiny_batch, [0, 1 / 255], attack)


def test_strategy_info_repr_is_one_short_line(tiny_cnn):
    info = robustft.strategies.apply(tiny_cnn, "lora")
    text = repr(info)
    assert text.startswith("StrategyInfo(name='lora', trainable=") and "mechanism='low-rank'" in text
    assert "\n" not in text and len(text) < 200 and info.trainable_names[0] not in text


def test_checkpoints_restore_and_export_are_reachable_whatever_was_imported_first():
    """``robustft.runs.export.export_run`` (the README's line then) raised AttributeError after ``import robustft``:
    the torch-needing submodules of robustft.runs were left out of its __init__, which a sweep's parent imports
    without torch. The checkpoint file's module loads on first use; restoring and exporting a model are
    submodules of robustft.strategies now; and ``import robustft.runs`` still loads no torch."""
    for first in ("", "import robustft.runs.query; "):
        done = _run(f"import robustft; {first}print(robustft.strategies.export.export_run.__module__, "
                    "robustft.strategies.restore.load is robustft.load, "
                    "robustft.runs.checkpoints.load_checkpoint.__module__, 'checkpoints' in dir(robustft.runs))")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["robustft.strategies.export", "True", "robustft.runs.checkpoints", "True"]
    done = _run("import sys, robustft.runs; print('torch' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    for gone in ("export", "exports"):  # export left runs: no alias keeps the old path alive
        with pytest.raises(AttributeError, match=f"no attribute '{gone}'"):
            getattr(robustft.runs, gone)


def test_every_dotted_name_the_readme_shows_resolves_after_import_robustft():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"\brobustft(?:\.[A-Za-z_]\w*){2,}", readme)))
    assert "robustft.strategies.export.export_run" in names
    lookups = "; ".join(f"robustft.{name.split('.', 1)[1]}" for name in names)
    done = _run(f"import robustft; {lookups}")
    assert done.returncode == 0, done.stderr[-1500:]
