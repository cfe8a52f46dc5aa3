"""Task complexity: the frozen-backbone linear probe (training.complexity), the shipped table that records it
(data/complexity.json) and `robustft list datasets` showing it."""

from __future__ import annotations

import json
import re

import pytest
import torch

from robustft.data import list_table
from robustft.data.complexity import probe_cell, read_complexity_table, separability, task_complexity
from robustft.errors import ConfigError
from robustft.training.complexity import (
    ProbeResult,
    balanced_accuracy,
    complexity_table,
    frozen_features,
    measure,
    ridge_probe,
)
from test_data_tasks import write_elpv

pytestmark = pytest.mark.usefixtures("private_data_cache")


def _clusters(n_per_class: int, classes: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 16, generator=generator, dtype=torch.float64) * 3
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(len(labels), 16, generator=generator, dtype=torch.float64), labels


def test_ridge_probe_separates_separable_classes_and_not_random_labels():
    train_x, train_y = _clusters(40, 4, 0.3, seed=0)
    test_x, test_y = _clusters(10, 4, 0.3, seed=0)  # same centres (same seed), fresh noise below
    test_x = test_x + 0.3 * torch.randn(test_x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    predicted, alpha = ridge_probe(train_x, train_y, test_x, test_y, 4, seed=0)
    assert (predicted == test_y).all() and alpha == 10.0  # every penalty separates them: ties keep the largest
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(2))]
    predicted, _ = ridge_probe(train_x, shuffled, test_x, test_y, 4, seed=0)
    assert (predicted == test_y).double().mean() < 0.6  # labels unrelated to features: near chance (0.25)


def test_balanced_accuracy_is_the_mean_recall_over_present_classes():
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    predicted = torch.tensor([0, 0, 0, 0, 0, 2])  # recalls 1, 0, 1; plain accuracy 5/6
    assert balanced_accuracy(predicted, labels) == pytest.approx(2 / 3)


def test_separability_puts_chance_at_zero_and_perfect_at_one():
    assert separability(0.25, 4) == pytest.approx(0.0) and separability(1.0, 43) == pytest.approx(1.0)
    assert separability(0.55, 10) == pytest.approx(0.5)


def test_frozen_features_are_the_heads_input_and_leave_no_hook(tiny_cnn):
    head = tiny_cnn.head_module()
    images = torch.rand(5, 3, 16, 16)
    features = frozen_features(tiny_cnn, head, images, batch_size=2)
    assert features.shape == (5, head.in_features) and features.dtype == torch.float64
    with torch.no_grad():
        logits = tiny_cnn.eval()(images)
    torch.testing.assert_close(head(features.float()), logits)  # exactly what the head sees
    assert not head._forward_pre_hooks


def test_measure_end_to_end_on_a_fixture_task(tmp_path):
    root = write_elpv(tmp_path / "elpv", per_grade=10)
    result = measure("elpv", "tiny-cnn", 16, n_train=24, n_test=8, seed=3, root=str(root))
    assert (result.classes, result.n_train, result.n_test, result.key) == (4, 24, 8, "tiny-cnn@16")
    assert 0.0 <= result.balanced_accuracy <= 1.0 and result.majority == pytest.approx(0.25)
    again = measure("elpv", "tiny-cnn", 16, n_train=24, n_test=8, seed=3, root=str(root))
    assert again == result  # seeded: the same subsets, features and penalty
    with pytest.raises(ConfigError, match="n_test=1 must be an integer >= 2"):
        measure("elpv", "tiny-cnn", 16, n_test=1, root=str(root))


def test_table_round_trip_and_listing_cells(tmp_path):
    result = ProbeResult("elpv", "mobilenet_v2", 32, 4, 0.70666, 0.41771, 0.5752, 2000, 525, 0, 1.0)
    table = complexity_table([result], date="2026-01-02")
    path = tmp_path / "complexity.json"
    path.write_text(json.dumps(table))
    read_complexity_table.cache_clear()
    assert read_complexity_table(str(path))["measured"] == "2026-01-02"
    assert table["datasets"]["elpv"]["probes"]["mobilenet_v2@32"]["measured"] == "2026-01-02"
    entry = task_complexity("elpv@contrast:3", str(path))  # a corrupted split is the same task
    assert entry["classes"] == 4 and entry["probes"]["mobilenet_v2@32"]["accuracy"] == 0.7067
    assert probe_cell("elpv", "mobilenet_v2@32", str(path)) == "70.7% (bal. 41.8%)"
    assert probe_cell("emoji", "mobilenet_v2@32", str(path)) == "-"
    assert read_complexity_table(str(tmp_path / "missing.json")) == {"datasets": {}}


def test_the_shipped_table_shows_the_new_tasks_measurably_harder():
    read_complexity_table.cache_clear()
    table = read_complexity_table()
    assert {"fashion-mnist", "mnist", "animal-mnist", "elpv", "emoji"} <= set(table["datasets"])
    assert table["measured"] and "ridge" in table["method"]

    def score(name: str, key: str = "mobilenet_v2@32") -> float:
        entry = table["datasets"][name]
        return separability(entry["probes"][key]["balanced_accuracy"], entry["classes"])

    for harder in ("elpv", "emoji"):
        assert score(harder) < score("fashion-mnist") - 0.1
    assert table["datasets"]["emoji"]["classes"] > 4 * table["datasets"]["fashion-mnist"]["classes"]


def test_list_datasets_shows_classes_and_probe_accuracy():
    read_complexity_table.cache_clear()
    header, rows = list_table()
    assert header[:2] == ["name", "classes"] and "probe mobilenet_v2@32" in header and header[-1] == "description"
    by_name = {row[0]: row for row in rows}
    column = header.index("probe mobilenet_v2@32")
    assert by_name["emoji"][1] == "43" and by_name["elpv"][1] == "4"
    assert by_name["fashion-mnist"][column].endswith("%)") and by_name["tv:<name>"][1:column + 1] == ["-", "-"]
    assert all(len(row) == len(header) for row in rows)


def test_the_report_states_each_tasks_measured_complexity_above_its_frontiers(tmp_path):
    from robustft.report import build_report
    from test_report import synthetic_run

    read_complexity_table.cache_clear()
    runs = [synthetic_run("a", "bitfit", 0.5, data="digits"), synthetic_run("b", "full", 0.3, data="digits")]
    text = build_report(runs, tmp_path / "report", group_by="strategy").read_text()
    note = re.search(r"<h3>digits: [^<]*</h3>\s*<p class=\"muted\">([^<]*)</p>", text)
    assert note and note[1].startswith("Task complexity (measured ") and "10 classes" in note[1]
    assert probe_cell("digits", "mobilenet_v2@32") in note[1]
