"""The attack's CPU thread count follows the free CPUs (attacks/threads.py): measured, bounded, restored.

No timing here: the free CPUs come from a fake probe or a fake /proc/stat, and the tests check which thread
count the attacked model's forward runs under and that torch's own setting comes back.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustft.attacks import pgd, robust_accuracy, threads
from robustft.errors import ConfigError


@pytest.fixture
def two_threads(monkeypatch):
    """torch at 2 intra-op threads for the test (conftest runs at 1), a fresh probe cache, ROBUSTFT_THREADS unset."""
    monkeypatch.setattr(threads, "_cache", {})
    monkeypatch.delenv(threads.ENV, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class ThreadRecorder(nn.Module):
    """A tiny classifier that records torch's intra-op thread count at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
        self.seen: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.head(images)


def _stat(idle: list[int], busy: list[int]) -> str:
    """A /proc/stat text: an aggregate line, then one line per CPU (user nice system idle iowait irq softirq
    steal guest guest_nice); half of each CPU's idle ticks are reported as iowait (idle too: waiting on a disk)."""
    lines = [f"cpu  {sum(busy)} 0 0 {sum(idle)} 0 0 0 0 0 0"]
    lines += [f"cpu{i} {b} 0 0 {d - d // 2} {d // 2} 0 0 0 0 0" for i, (d, b) in enumerate(zip(idle, busy,
                                                                                              strict=True))]
    return "\n".join(lines + ["intr 1 2 3", "ctxt 99"])


@pytest.fixture
def two_cpus_no_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)


def test_free_cpus_counts_idle_and_iowait_of_the_allowed_cpus_only(two_cpus_no_quota):
    # cpu0 idle for all 10 ticks, cpu1 busy for all 10, cpu2 idle but not ours.
    before = threads.read_proc_stat(_stat([10, 10, 10], [0, 0, 0]), {0, 1})
    after = threads.read_proc_stat(_stat([20, 10, 20], [0, 10, 0]), {0, 1})
    assert set(after) == {0, 1}
    assert threads.free_between(before, after) == pytest.approx(1.0)
    texts = iter([_stat([10, 10, 10], [0, 0, 0]), _stat([15, 20, 20], [5, 0, 0])])
    assert threads.free_cpus(window=0, read=lambda: next(texts), own=lambda: 0.0) == pytest.approx(1.5)


def test_this_process_own_cpu_time_counts_as_free(two_cpus_no_quota):
    # cpu1 busy for all 10 ticks of the window, and this process ran 8 of them (its OpenMP workers still
    # spinning after a pass): 1.8 CPUs free, not 1.0; never more than the CPUs there are.
    before = threads.read_proc_stat(_stat([10, 10], [0, 0]), {0, 1})
    after = threads.read_proc_stat(_stat([20, 10], [0, 10]), {0, 1})
    assert threads.free_between(before, after, own_ticks=8) == pytest.approx(1.8)
    assert threads.free_between(before, after, own_ticks=30) == pytest.approx(2.0)
    ticks = iter([100.0, 108.0])
    texts = iter([_stat([10, 10], [0, 0]), _stat([20, 10], [0, 10])])
    assert threads.free_cpus(window=0, read=lambda: next(texts), own=lambda: next(ticks)) == pytest.approx(1.8)


def test_own_cpu_ticks_grow_with_this_process_work():
    start = threads.own_cpu_ticks()
    total = 0.0
    while threads.own_cpu_ticks() - start < 2:  # two clock ticks of CPU work, whatever the tick length
        total += float(torch.ones(20_000).sum())
    assert threads.own_cpu_ticks() - start >= 2 and total > 0


def test_a_cgroup_quota_caps_the_free_cpus(two_cpus_no_quota, monkeypatch):
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 0.5)
    texts = iter([_stat([10, 10], [0, 0]), _stat([20, 20], [0, 0])])
    assert threads.free_cpus(window=0, read=lambda: next(texts), own=lambda: 0.0) == pytest.approx(0.5)


def test_no_tick_between_snapshots_means_unknown():
    snapshot = threads.read_proc_stat(_stat([10, 10], [0, 0]), {0, 1})
    assert threads.free_between(snapshot, snapshot) is None


def test_cgroup_quota_text():
    assert threads.parse_cpu_max("150000 100000\n") == pytest.approx(1.5)
    assert threads.parse_cpu_max("max 100000\n") is None


@pytest.mark.parametrize(("configured", "free", "expected"), [
    (2, 2.0, 2), (2, 1.75, 2), (2, 1.3, 1), (2, 1.0, 1), (2, 0.0, 1), (4, 3.0, 3), (2, 8.0, 2), (2, None, 2)])
def test_thread_count_is_the_free_cpus_between_one_and_torchs_setting(configured, free, expected):
    assert threads.choose_threads(configured, free) == expected


def test_an_attack_runs_on_one_thread_when_no_cpu_is_free_and_torchs_setting_comes_back(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "free_cpus", lambda: 0.0)
    model = ThreadRecorder()
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    pgd(model, images, labels, 4 / 255, steps=2, prepare=False)
    assert model.seen and set(model.seen) == {1}
    assert torch.get_num_threads() == 2


def test_robust_evaluation_runs_its_clean_and_verdict_passes_on_the_free_cpus_too(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "free_cpus", lambda: 0.0)
    model = ThreadRecorder()
    images, labels = torch.rand(6, 3, 8, 8), torch.arange(6) % 4
    with torch.no_grad():
        labels = model(images).argmax(1)  # all clean-correct, so every sample is attacked and scored
    model.seen.clear()
    robust_accuracy(model, (images, labels), "pgd", 4 / 255, prepare=False)
    assert len(model.seen) > 2 and set(model.seen) == {1}
    assert torch.get_num_threads() == 2


def test_idle_cpus_keep_torchs_setting(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "free_cpus", lambda: 2.0)
    model = ThreadRecorder()
    pgd(model, torch.rand(2, 3, 8, 8), torch.tensor([0, 1]), 4 / 255, steps=1, prepare=False)
    assert set(model.seen) == {2}


def test_threads_come_back_when_the_block_raises(two_threads):
    with pytest.raises(RuntimeError), threads.attack_threads(probe=lambda: 0.0):
        assert torch.get_num_threads() == 1
        raise RuntimeError("attack failed")
    assert torch.get_num_threads() == 2


def test_free_cpus_are_measured_once_per_reprobe_interval(two_threads, monkeypatch):
    calls = []
    clock = [100.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])

    def probe():
        calls.append(clock[0])
        return 0.0

    for _ in range(3):
        assert threads.planned_threads(probe) == 1
    assert len(calls) == 1
    clock[0] += threads.REPROBE_SECONDS + 1
    threads.planned_threads(probe)
    assert len(calls) == 2


@pytest.mark.parametrize(("value", "expected"), [("keep", 2), ("1", 1), ("3", 3), ("auto", 1)])
def test_robustft_threads_fixes_the_count(two_threads, monkeypatch, value, expected):
    monkeypatch.setenv(threads.ENV, value)
    assert threads.planned_threads(lambda: 0.0) == expected


def test_a_bad_robustft_threads_says_what_to_write(two_threads, monkeypatch):
    monkeypatch.setenv(threads.ENV, "many")
    with pytest.raises(ConfigError, match="auto .* keep .* thread count"):
        threads.planned_threads(lambda: 0.0)
