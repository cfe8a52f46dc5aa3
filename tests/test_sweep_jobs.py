"""The local executor's default parallelism: one run per core on CPUs, one at a time on a GPU."""

import os

import pytest

from robustft.sweep import jobs
from robustft.sweep.jobs import default_jobs, uses_gpu


def test_cpu_runs_one_per_core_at_most_one_per_run(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    cpu = {"device": "cpu"}
    assert default_jobs([cpu] * 10) == 4
    assert default_jobs([cpu] * 3) == 3
    assert default_jobs([]) == 1


def test_a_gpu_run_is_one_at_a_time(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    assert default_jobs([{"device": "cpu"}, {"device": "cuda:0"}] * 4) == 1
    assert uses_gpu([{"device": "cuda"}]) and not uses_gpu([{"device": "cpu"}, {"device": "mps"}])


@pytest.mark.parametrize("available, expected", [(True, 1), (False, 3)])
def test_auto_follows_what_torch_finds(monkeypatch, available, expected):
    import torch

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert default_jobs([{"device": "auto"}] * 3) == expected


def test_the_module_does_not_import_torch_for_explicit_cpu_runs():
    assert "torch" not in jobs.__dict__  # imported inside uses_gpu, only for device auto
