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
    # kills: recorded_summary leaving out a row, or the options that repeat the run's attack
    assert "it recorded on them at step" in printed and f"clean {recorded:.4f}" in printed
    assert f"fgsm at 1/255 {_recorded(run, split, 'fgsm'):.4f}" in printed
    assert "to repeat its robust accuracy (up to the attack's random start): --attack fgsm --eps 1/255" in printed


def test_subset_of_without_attack_options_repeats_the_runs_own_attack(run, tmp_path, capsys):
    """A newcomer ran ``eval --subset-of RUN`` with no attack option and got APGD-CE at 4/255 (1.2% robust) for a run
    that recorded 54.7% under PGD-15 at 1/255. kills: the run's attack not taken when no attack option is given."""
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(run), "--device", "cpu", "--json",
                 str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads(out.read_text())
    assert result["attack"].startswith("fgsm") and result["results"][0]["eps_text"] == "1/255"
    assert "repeating" in captured.err and "--attack fgsm --eps 1/255" in captured.err
    # FGSM is deterministic: the recorded robust accuracy repeats to the digit
    assert result["results"][0]["accuracy"] == pytest.approx(_recorded(run, "test", "fgsm"), abs=1e-9)
    # another --attack takes nothing from the run: APGD-CE at eval's default 4/255
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(run), "--device", "cpu", "--quiet",
                 "--attack", "apgd-ce", "--steps", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["attack"].startswith("apgd") and result["results"][0]["eps_text"] == "4/255"


def test_subset_of_fills_the_options_not_given_from_the_runs_attack(run, tmp_path, capsys):
    """A newcomer asked for the run's attack with more steps (``--steps``) and silently got APGD-CE at 4/255, since
    one attack option switched the run's attack off. kills: the run's attack dropped when one option is given; the
    given option overridden by the run's."""
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(run), "--device", "cpu", "--eps", "2/255",
                 "--json", str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads(out.read_text())
    assert result["attack"].startswith("fgsm") and result["results"][0]["eps_text"] == "2/255"
    assert "repeating" in captured.err and "(--attack fgsm " in captured.err and "with --eps 2/255 as given" in \
        captured.err
    # the same attack named explicitly is the run's attack too: its eps still comes from the run
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(run), "--device", "cpu", "--quiet",
                 "--attack", "fgsm", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["results"][0]["eps_text"] == "1/255"
    assert result["results"][0]["accuracy"] == pytest.approx(_recorded(run, "test", "fgsm"), abs=1e-9)


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


def test_subset_of_takes_the_runs_image_size_and_warns_on_another(run, tmp_path, capsys):
    """A newcomer's weights file without its sidecar was evaluated at the model's default size (a 32 px MobileNetV2
    at 224 px: 16.4% against a recorded 85.2%), and an explicit other --image-size passed silently."""
    weights = tmp_path / "bare" / "m.safetensors"
    weights.parent.mkdir()
    assert main(["export", str(run), str(weights), "--merged"]) == 0
    weights.with_suffix(".json").unlink()  # the sidecar (which names the size) lost on the way
    base = ["eval", "--model", "tiny-cnn", "--num-classes", "4", "--pretrained-file", str(weights), "--attack",
            "fgsm", "--eps", "1/255", "--device", "cpu", "--quiet", "--subset-of", str(run)]
    # kills: the run's image size not taken for --subset-of (tiny-cnn's default is 32 px)
    assert main([*base, "--json", str(tmp_path / "a.json")]) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["image_size"] == 16 and report["warnings"] == []
    assert report["results"][0]["clean_accuracy"] == pytest.approx(_recorded(run, "test"), abs=1e-9)
    capsys.readouterr()
    # kills: image_size_notes not comparing with the run's size, or its warning not printed under --quiet
    assert main([*base, "--image-size", "24", "--json", str(tmp_path / "b.json")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "evaluating at 24 px, but --subset-of" in err and "pass --image-size 16" in err
    checks = [w["check"] for w in json.loads((tmp_path / "b.json").read_text())["warnings"]]
    assert checks == ["image_size"]


def test_a_weights_file_of_unknown_size_is_warned_of(run, tmp_path, capsys):
    """No sidecar, no run: the size the weights were trained at is unknown, and the output says at which it ran."""
    weights = tmp_path / "m.safetensors"
    assert main(["export", str(run), str(weights), "--merged"]) == 0
    weights.with_suffix(".json").unlink()
    argv = ["eval", "--model", "tiny-cnn", "--num-classes", "4", "--pretrained-file", str(weights), "--data",
            "digits", "--limit", "8", "--attack", "fgsm", "--eps", "1/255", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    err = " ".join(capsys.readouterr().err.split())
    # kills: the unknown-size note removed
    assert "says nothing of the image size it was trained at" in err and "evaluating at 32 px" in err
    assert main([*argv, "--image-size", "16"]) == 0
    assert "image size" not in capsys.readouterr().err  # the user named the size: nothing to say


def test_a_mistyped_run_directory_is_named_as_missing(run, capsys):
    typo = f"{run}x"
    assert main(["eval", "--checkpoint", str(run), "--subset-of", typo, "--attack", "fgsm", "--device", "cpu"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--subset-of {typo}: no such run directory" in err and "outcomes.bin" not in err


def test_a_checkpoint_file_as_subset_of_is_named_by_its_run(run, capsys):
    last = run / "checkpoints" / "last.pt"
    if not last.is_file():
        last = next((run / "checkpoints").glob("*.pt"))
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(last), "--attack", "fgsm", "--eps", "1/255",
                 "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"test images {run} evaluated" in printed and ".pt evaluated" not in printed


def test_the_summary_lists_the_final_attacks_block_beside_the_evaluation_at_its_step():
    """Paper B's runs record the last evaluation (clean, the curve) and the final attack as two blocks at one step;
    the summary named only the last block (b-fix: the final attack alone, not its clean 0.31 or its curve)."""
    from types import SimpleNamespace

    from robustft.cli.eval_subset import recorded_summary

    ids = np.arange(4)
    evaluation = SimpleNamespace(step=9, split="test", image_ids=ids, attacks=["clean", "apgd-ce"], eps=[0.0, 4 / 255],
                                 correct=np.array([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool))
    final = SimpleNamespace(step=9, split="test", image_ids=ids, attacks=["final:apgd-ce"], eps=[4 / 255],
                            correct=np.array([[0, 0, 0, 0]], dtype=bool))
    line = recorded_summary(final, None, [evaluation, final])
    assert line == ("it recorded on them at step 9: clean 0.7500, apgd-ce at 4/255 0.2500, "
                    "final:apgd-ce at 4/255 0.0000")


def test_blocks_at_the_last_step_are_found_in_the_run(run):
    from robustft.cli.eval_subset import recorded_at_last_step, recorded_block

    block = recorded_block(run, "test")
    blocks = recorded_at_last_step(run, block)
    assert blocks and all(b.step == block.step and b.split == "test" for b in blocks)
    assert any(np.array_equal(b.image_ids, block.image_ids) and list(b.attacks) == list(block.attacks) for b in blocks)


def test_an_option_given_is_not_overridden_by_the_runs(run, tmp_path, capsys):
    # kills: the run's options written over the ones given (here its random start over --no-random-start)
    out = tmp_path / "e.json"
    assert main(["eval", "--checkpoint", str(run), "--subset-of", str(run), "--device", "cpu", "--quiet",
                 "--no-random-start", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["attack"].startswith("fgsm") and result["results"][0]["eps_text"] == "1/255"
    assert "random_start=False" in result["attack"], result["attack"]
