"""``robustft eval --subset-of RUN``: the images a run's continuous evaluation used, so a recorded number repeats.

A newcomer ran ``eval --limit 256`` on the demo's run and got another clean accuracy than the run recorded on its
256-image evaluation subset: ``--limit`` draws a stratified subset of the whole split with the run seed, the
evaluator draws from the split after ``data.limit_test`` with the seed plus the split's position in ``eval.splits``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from robustft.cli import main


def _write_folder(root) -> None:
    """An ImageFolder (train/ and test/, 4 classes) of 8 x 8 PNGs: half of them one bright colour channel per class
    (easy), half pure noise (a guess), so accuracy depends on which images a subset holds (a model that predicts one
    class for all would score 1/4 on every stratified subset, and a wrong subset would go unnoticed)."""
    from PIL import Image

    generator = np.random.default_rng(0)
    for split, count in (("train", 40), ("test", 60)):
        for label in range(4):
            folder = root / split / f"c{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = generator.integers(0, 256, (8, 8, 3))
                if generator.random() < 0.5:
                    pixels = generator.integers(0, 60, (8, 8, 3))
                    pixels[..., label % 3] += 150 if label < 3 else 0
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run, tiny: tiny-cnn at 16 px on a 4-class image folder, 64 evaluated images of val and of test (of 80
    and 100 after data.limit_*), drawn by the trainer's evaluator as in any run."""
    import robustft

    root = tmp_path_factory.mktemp("folder")
    _write_folder(root)
    config = {"name": "subset", "output_dir": str(tmp_path_factory.mktemp("runs")), "device": "cpu", "seed": 3,
              "model": {"name": "tiny-cnn", "pretrained": False, "image_size": 16},
              "data": {"name": f"imagefolder:{root}", "image_size": 16, "val_fraction": 0.6, "limit_val": 80,
                       "limit_test": 200},
              "strategy": {"name": "full"}, "objective": {"name": "standard"}, "eps": {"schedule": "zero"},
              "optim": {"batch_size": 16, "lr": 1.0e-2, "warmup": 0},
              "train": {"epochs": 4},
              "eval": {"schedule": "epoch", "subset": 64, "batch_size": 64, "splits": ["val", "test"],
                       "attack": {"name": "fgsm"}, "eps": ["1/255"], "curve": None, "ood": False, "final": None},
              "logging": {"progress": False}}
    return robustft.train(robustft.config.from_dict(config), quiet=True).path


def _recorded(run, split: str, attack: str = "clean") -> float:
    from robustft.runs.run_dir import Run

    records = Run(run).metrics
    rows = records[(records["split"] == split) & (records["attack"] == attack) & (records["metric"] == "accuracy")]
    return float(rows.sort_values("step")["value"].iloc[-1])


@pytest.mark.parametrize("split", ["test", "val"])
def test_subset_of_repeats_the_recorded_clean_accuracy(run, tmp_path, capsys, split):
    out = tmp_path / "e.json"
    argv = ["eval", "--checkpoint", str(run), "--split", split, "--attack", "fgsm", "--eps", "1/255", "--device",
            "cpu", "--quiet", "--json", str(out)]
    assert main([*argv, "--subset-of", str(run)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())["results"][0]
    recorded = _recorded(run, split)
    assert result["n"] == 64 and result["clean_accuracy"] == pytest.approx(recorded, abs=1e-9)
    assert 0.4 < recorded < 1  # a model that tells classes apart, on a subset with guesses in it
    assert f"it recorded clean accuracy {recorded:.4f} on them" in printed


def test_limit_is_another_draw_than_the_runs_subset(run):
    """Why --subset-of exists (the --limit help says so): the same N and seed draw other images than the evaluator,
    which draws from the split after data.limit_test with the seed plus the split's position in eval.splits."""
    import robustft.data
    from robustft.cli.eval_subset import recorded_block
    from robustft.runs.run_dir import Run

    block = recorded_block(run, "test")
    stored = [b for b in Run(run).read_outcomes() if b.split == "test"]
    assert np.array_equal(block.image_ids, stored[-1].image_ids) and len(block.image_ids) == 64
    config = Run(run).config["data"]
    limited = robustft.data.load(config["name"], "test", image_size=16, limit=64, seed=3)
    assert set(limited.indices.tolist()) != set(block.image_ids.tolist())


@pytest.mark.parametrize("extra, message", [
    (["--limit", "10"], "drop --limit"),
    (["--split", "train"], "the run evaluated no 'train' images; it has test, val"),
    (["--data", "mnist"], "but --data is mnist; drop --data"),
])
def test_subset_of_refuses_what_cannot_be_that_subset(run, capsys, extra, message):
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(run), "--attack", "fgsm", "--device", "cpu",
                 *extra]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_an_export_evaluated_on_its_runs_subset_takes_the_runs_data(run, tmp_path, capsys):
    """An exported file carries no dataset: --subset-of RUN gives the data (name, root, hold-out) with the ids."""
    out = tmp_path / "m.safetensors"
    assert main(["export", str(run), str(out)]) == 0
    assert main(["eval", "--checkpoint", str(out), "--subset-of", str(run), "--attack", "fgsm", "--device", "cpu",
                 "--quiet", "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())["results"][0]
    assert result["n"] == 64 and result["clean_accuracy"] == pytest.approx(_recorded(run, "test"), abs=1e-9)
