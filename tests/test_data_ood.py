"""``data.ood`` -> OOD splits through the real loader (``robustft.data.load``), and their records in a real run."""

from __future__ import annotations

import json

import pytest
import torch

from robustft.config import from_dict
from robustft.data.sources import corruption_ood
from robustft.training.components import load_datasets
from robustft.training.trainer import train
from test_data_formats import write_fashion

pytestmark = pytest.mark.usefixtures("private_data_cache")

OOD = ["digits@gaussian_noise:3", "digits@contrast:2"]


def _images(dataset) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def _labels(dataset) -> list[int]:
    return [int(dataset[i][1]) for i in range(len(dataset))]


def test_data_ood_names_build_corrupted_test_splits_with_the_test_labels():
    cfg = from_dict({"data": {"name": "digits", "image_size": 16, "limit_train": 40, "limit_val": 10,
                                "limit_test": 30, "ood": OOD}})
    splits = load_datasets(cfg)
    assert list(splits["ood"]) == OOD
    test = splits["test"]
    clean = _images(test)
    for name, dataset in splits["ood"].items():
        assert dataset.info.name == name and len(dataset) == len(test) == 30
        assert _labels(dataset) == _labels(test)  # the same seeded test subset, corrupted
        images = _images(dataset)
        assert images.shape == clean.shape == (30, 3, 16, 16) and images.dtype == torch.float32
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        assert float((images - clean).pow(2).mean().sqrt()) > 0.02  # really corrupted
    noise, contrast = (_images(splits["ood"][name]) for name in OOD)
    assert contrast.std() < clean.std()  # contrast reduction shrinks the spread of pixel values
    assert not torch.equal(noise, contrast)  # each name its own corruption


def test_data_ood_auto_loads_the_datasets_suggested_splits(tmp_path):
    write_fashion(tmp_path / "fm", per_class_train=20, per_class_test=5)
    cfg = from_dict({"data": {"name": "fashion-mnist", "root": str(tmp_path / "fm"), "image_size": 16,
                                "limit_test": 20, "ood": "auto"}})
    splits = load_datasets(cfg)
    assert list(splits["ood"]) == corruption_ood("fashion-mnist")
    assert all(len(dataset) == 20 and _labels(dataset) == _labels(splits["test"])
               for dataset in splits["ood"].values())


def test_a_run_records_clean_accuracy_on_each_data_ood_split(tmp_path):
    config = {"name": "ood", "output_dir": str(tmp_path), "seed": 0, "device": "cpu",
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
              "data": {"name": "digits", "image_size": 16, "limit_train": 64, "limit_val": 16, "limit_test": 24,
                       "ood": OOD},
              "strategy": {"name": "full"}, "objective": {"name": "standard"}, "eps": {"schedule": "zero"},
              "optim": {"batch_size": 32, "lr": 3.0e-3}, "train": {"steps": 2, "epochs": None},
              "eval": {"schedule": "every:2", "subset": 24, "batch_size": 64, "splits": ["test"], "eps": [],
                       "final": None, "ood": True},
              "logging": {"progress": False}}
    result = train(from_dict(config), quiet=True)
    records = [json.loads(line) for line in (result.path / "metrics.jsonl").read_text().splitlines()]
    ood = [(r["split"], r["step"], r["n"]) for r in records if r["split"].startswith("ood:")]
    assert sorted(ood) == sorted((f"ood:{name}", step, 24) for name in OOD for step in (0, 2))
    assert all(r["attack"] == "clean" and r["metric"] == "accuracy" and 0 <= r["value"] <= 1
               for r in records if r["split"].startswith("ood:"))
