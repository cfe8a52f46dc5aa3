"""Preparing a model for an attack imports no peft: the check for peft tuner layers must not load the package.

Importing peft pulls in transformers (2.5 s on the demo's machine), and ``prepare_for_attack`` merges adaptations
before every evaluation, so the import landed in every run's first evaluation. A model can only hold a peft
tuner layer once peft is imported, so the merge looks in ``sys.modules`` instead of importing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import sys
import torch
from robustft.attacks import prepare_for_attack
from robustft.models.tiny import tiny_mobilenet
prepared = prepare_for_attack(tiny_mobilenet(num_classes=3).eval())
assert not any(type(m) is torch.nn.BatchNorm2d for m in prepared.modules())  # prepared as usual
print(sorted(name for name in sys.modules if name == "peft" or name.startswith(("peft.", "transformers"))))
"""


def test_prepare_for_attack_imports_no_peft() -> None:
    pytest.importorskip("peft")  # without peft installed the test could not tell the difference
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
