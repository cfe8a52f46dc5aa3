"""``robustft eval`` end to end on a tiny checkpoint (dataset loading replaced by in-memory data)."""

from __future__ import annotations

import json

import pytest
import torch

import robustft.data
from robustft.attacks import expected_robustness
from robustft.cli import main
from robustft.cli.eval_cmd import parse_curve
from robustft.runs.checkpoints import save_checkpoint
from test_attacks_support import quadrant_task


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from robustft import models, strategies

    model = models.build("tiny-cnn", 4, pretrained=False, image_size=16)
    strategies.apply(model, "full")
    # A quick fit so the curve has something to fall from.
    images, labels = quadrant_task(256, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    path = run_dir / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"name": "tiny-cnn", "num_classes": 4, "image_size": 16, "options": {}},
                           "strategy": {"name": "full", "options": {}}, "model_state": model.state_dict(),
                           "step": 15, "epoch": 1})
    return run_dir


@pytest.fixture
def fake_data(monkeypatch):
    calls = {}

    def load(name, split, image_size=None, limit=None, **options):
        calls.update(name=name, split=split, image_size=image_size, limit=limit, **options)
        images, labels = quadrant_task(limit or 64, seed=1)
        return torch.utils.data.TensorDataset(images, labels)

    def make_loader(dataset, batch_size):
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size)

    monkeypatch.setattr(robustft.data, "load", load, raising=False)
    monkeypatch.setattr(robustft.data, "make_loader", make_loader, raising=False)
    return calls


def test_curve_prints_table_and_writes_json(checkpoint, fake_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", "--checkpoint", str(checkpoint), "--data", "quadrants", "--limit", "40", "--attack", "pgd",
                 "--steps", "3", "--curve", "0:8/255:4/255", "--device", "cpu", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "expected robustness" in printed and "8/255" in printed
    assert fake_data == {"name": "quadrants", "split": "test", "image_size": 16, "limit": 40}
    payload = json.loads(out.read_text())
    results = payload["results"]
    assert [round(r["eps"] * 255) for r in results] == [0, 4, 8]
    assert all(r["n"] == 40 for r in results)
    accs = [r["accuracy"] for r in results]
    assert accs == sorted(accs, reverse=True)
    assert payload["expected_robustness"] == pytest.approx(expected_robustness([r["eps"] for r in results], accs))
    assert payload["step"] == 15 and payload["attack"].startswith("pgd")


def test_single_eps(checkpoint, fake_data, tmp_path, capsys):
    code = main(["eval", "--checkpoint", str(checkpoint / "checkpoints" / "last.pt"), "--data", "q", "--limit", "16",
                 "--attack", "fgsm", "--eps", "2/255", "--device", "cpu"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and "2/255" in lines[1] and lines[1].split()[-1] == "16"
    assert lines[2] == "attack settings: fgsm: norm=linf, step_size=eps, random_start=False"


@pytest.mark.parametrize("argv, message", [
    (["--eps", "8"], "8/255"),
    (["--attack", "pgdd"], "apgd-ce"),
    (["--attack", "square", "--steps", "3"], "steps"),
    (["--curve", "8/255:0"], "LOW < HIGH"),
])
def test_bad_input_is_one_clear_error(checkpoint, fake_data, capsys, argv, message):
    code = main(["eval", "--checkpoint", str(checkpoint), "--data", "q", "--limit", "8", "--device", "cpu", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, fake_data, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nope"), "--data", "q", "--device", "cpu"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_parse_curve():
    assert parse_curve("0:4/255") == pytest.approx([i / 255 for i in range(5)])
    assert parse_curve("0:8/255:2/255") == pytest.approx([0, 2 / 255, 4 / 255, 6 / 255, 8 / 255])


def _eval(checkpoint, *argv):
    return main(["eval", "--checkpoint", str(checkpoint), "--limit", "16", "--device", "cpu", *argv])


def test_negative_eps_is_robustfts_error_not_argparses(checkpoint, fake_data, capsys):
    assert _eval(checkpoint, "--data", "q", "--eps", "-1/255") == 2
    err = capsys.readouterr().err
    assert "robustft: error: --eps='-1/255' must be a finite non-negative number" in err
    assert "expected one argument" not in err


def test_decimal_fractions_of_255_are_accepted(checkpoint, fake_data, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert _eval(checkpoint, "--data", "q", "--attack", "pgd", "--steps", "2", "--curve", "0:0.5/255:0.25/255",
                 "--step-size", "0.25/255", "--json", str(out)) == 0
    payload = json.loads(out.read_text())
    assert [r["eps_text"] for r in payload["results"]] == ["0", "0.25/255", "0.5/255"]
    assert "step_size=0.000980392156862745" in payload["attack"]
    assert "0.25/255" in capsys.readouterr().out


def test_checkpoint_and_model_together_are_refused(checkpoint, fake_data, capsys):
    assert _eval(checkpoint, "--data", "q", "--model", "tiny-cnn") == 2
    assert "both --checkpoint and --model" in capsys.readouterr().err


def test_data_defaults_to_the_runs_dataset(tmp_path, checkpoint, fake_data, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(checkpoint, run)
    (run / "config.yaml").write_text("seed: 3\ndata: {name: quadrants, val_fraction: 0.2, root: null}\n")
    assert _eval(run, "--attack", "fgsm", "--eps", "1/255", "--split", "val") == 0
    assert fake_data == {"name": "quadrants", "split": "val", "image_size": 16, "limit": 16, "seed": 3,
                         "val_fraction": 0.2}
    # Without a config.yaml beside the checkpoint there is nothing to default to: a clear error.
    assert _eval(checkpoint, "--attack", "fgsm") == 2
    assert "needs --data NAME" in capsys.readouterr().err


def test_single_eps_prints_clean_beside_robust(checkpoint, fake_data, capsys):
    from robustft.strategies.restore import load_model
    from test_attacks_support import quadrant_task

    assert _eval(checkpoint, "--data", "q", "--attack", "fgsm", "--eps", "8/255") == 0
    header, row, _ = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:4] == ["attack", "eps", "clean", "robust"]
    model, _ = load_model(checkpoint)
    images, labels = quadrant_task(16, seed=1)
    clean = (model(images).argmax(1) == labels).float().mean().item()
    assert float(row.split()[2]) == pytest.approx(clean, abs=1e-4)
    assert float(row.split()[3]) <= float(row.split()[2])


def test_torchattacks_style_options_reach_the_attack(checkpoint, fake_data, tmp_path, capsys):
    out = tmp_path / "r.json"
    csv_out = tmp_path / "r.csv"
    assert _eval(checkpoint, "--data", "q", "--attack", "pgd", "--norm", "l2", "--eps", "0.5", "--steps", "2",
                 "--restarts", "2", "--no-random-start", "--json", str(out), "--csv", str(csv_out)) == 0
    attack = json.loads(out.read_text())["attack"]
    assert all(part in attack for part in ("norm=l2", "restarts=2", "random_start=False", "steps=2"))
    assert csv_out.read_text().splitlines()[0].startswith("attack,eps,eps_text,clean_accuracy,accuracy")
    assert _eval(checkpoint, "--data", "q", "--attack", "square", "--restarts", "2") == 2
    assert "has no restarts" in capsys.readouterr().err


def test_model_with_image_size_and_pretrained_file(fake_data, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "tiny-cnn", "--num-classes", "4", "--image-size", "16", "--data", "q",
                 "--limit", "8", "--attack", "fgsm", "--device", "cpu", "--json", str(out)]) == 0
    assert fake_data["image_size"] == 16 and json.loads(out.read_text())["image_size"] == 16
    assert main(["eval", "--model", "tiny-cnn", "--num-classes", "4", "--pretrained-file", "w.pth", "--data", "q",
                 "--device", "cpu"]) == 2
    assert "--pretrained-file w.pth does not exist" in capsys.readouterr().err  # the flag, not the Python option


def test_help_texts_say_units_and_subset(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "pixel units" not in text and "[0, 1] image units" in text
    assert "seeded, stratified subset" in text and "first N" not in text


def test_checks_print_progress_and_one_verdict_per_check(checkpoint, fake_data, capsys):
    from robustft.cli.eval_cmd import CHECKS

    assert _eval(checkpoint, "--data", "q", "--attack", "pgd", "--steps", "3", "--eps", "2/255", "--checks") == 0
    captured = capsys.readouterr()
    assert "checks: running 7 checks (gradient masking, convergence)" in captured.err
    verdicts = [line for line in captured.out.splitlines() if line.startswith("check ")]
    assert [line.split()[1] for line in verdicts] == list(CHECKS)
    assert all(line.split()[2] in ("ok", "WARNING:") for line in verdicts)
    assert "checks: 7 run, " in captured.out
    assert "eval: batch 1/1 (16/16 samples)" in captured.err


def test_an_attack_without_steps_is_not_checked_for_convergence(checkpoint, fake_data, capsys):
    from robustft.cli.eval_cmd import CHECKS

    assert _eval(checkpoint, "--data", "q", "--attack", "fgsm", "--eps", "2/255", "--checks") == 0
    out = capsys.readouterr().out
    verdicts = [line.split()[1] for line in out.splitlines() if line.startswith("check ")]
    assert verdicts == [c for c in CHECKS if c != "attack_not_converged"] and "checks: 6 run, " in out


def test_an_attack_that_cannot_reach_its_eps_is_refused_as_its_config_is(checkpoint, fake_data, capsys):
    """PGD 2 x 0.1/255 moves at most 0.2/255: at 4/255 its accuracy is a weak attack's, not robust accuracy. eval
    printed it as such; a config with the same attack is refused. Both now go through one check."""
    from robustft.config import from_dict
    from robustft.errors import ConfigError

    weak = ["--data", "q", "--attack", "pgd", "--steps", "2"]
    assert _eval(checkpoint, *weak, "--step-size", "0.1/255", "--eps", "4/255") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "moves at most 0.2/255 from its start, less than eps=4/255 that --eps asks it to evaluate" in err
    assert "--step-size eps/2" in err and "--steps 40 or more" in err  # the fixes, as options of this command
    with pytest.raises(ConfigError, match=r"moves at most 0\.2/255 .* less than eps=4/255 that eval\.eps") as info:
        from_dict({"eval": {"attack": {"name": "pgd", "steps": 2, "step_size": "0.1/255"}, "eps": ["4/255"],
                            "curve": None}})
    assert "eval.attack.step_size=eps/2" in str(info.value)  # the same check, the fix spelt for a config
    # A curve is checked at its top; each fix the message names is accepted.
    assert _eval(checkpoint, *weak, "--step-size", "0.5/255", "--curve", "0:2/255") == 2
    assert "that --curve asks" in capsys.readouterr().err
    assert _eval(checkpoint, *weak, "--step-size", "eps/2", "--eps", "4/255") == 0
    assert _eval(checkpoint, "--data", "q", "--attack", "pgd", "--steps", "40", "--step-size", "0.1/255",
                 "--eps", "4/255") == 0


def test_random_start_and_no_random_start_together_are_refused(checkpoint, fake_data, capsys):
    with pytest.raises(SystemExit) as info:
        _eval(checkpoint, "--data", "q", "--attack", "pgd", "--random-start", "--no-random-start")
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--random-start and --no-random-start contradict each other; give one of them" in err
    assert _eval(checkpoint, "--data", "q", "--attack", "pgd", "--steps", "1", "--no-random-start",
                 "--no-random-start") == 0  # said twice the same way: no contradiction


@pytest.mark.parametrize("checks", [False, True])
def test_checks_also_reclassify_every_attacked_point(checkpoint, fake_data, monkeypatch, capsys, checks):
    """``--checks`` evaluates with ``recheck=True`` (the attacked points classified again, independently of the
    logits the attacks recorded); a plain eval trusts the record (one forward pass fewer)."""
    import robustft.attacks
    import robustft.cli.eval_cmd as eval_cmd

    seen = []
    real = robustft.attacks.robust_curve

    def spy(*args, **kwargs):
        seen.append(kwargs.get("recheck"))
        return real(*args, **kwargs)

    monkeypatch.setattr(robustft.attacks, "robust_curve", spy)
    monkeypatch.setattr(eval_cmd, "run_checks_verbose", lambda *args: [])  # the checks themselves: tested above
    flags = ["--checks"] if checks else []
    assert _eval(checkpoint, "--data", "q", "--attack", "fgsm", "--eps", "2/255", *flags) == 0
    assert seen and all(value is checks for value in seen)


def test_run_config_is_the_checkpoints_run_config_read_by_the_one_run_loader(tmp_path):
    from robustft.cli.eval_source import run_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("data:\n  name: fashion-mnist\n  val_fraction: 0.1\n", encoding="utf-8")
    expected = {"data": {"name": "fashion-mnist", "val_fraction": 0.1}}
    assert run_config(run / "checkpoints" / "last.pt") == expected == run_config(run)
    (run / "config.yaml").write_text("data: [unclosed\n", encoding="utf-8")
    assert run_config(run) is None  # not YAML: evaluated without the run's data settings
    assert run_config(tmp_path / "elsewhere.pt") is None


@pytest.mark.parametrize("argv, settings", [
    (["--attack", "pgd"], "pgd: norm=linf, steps=10, step_size=2.5eps/steps = 0.25eps, restarts=1, random_start=True"),
    (["--attack", "pgd", "--steps", "4", "--step-size", "0.5eps"],
     "pgd: norm=linf, steps=4, step_size=0.5eps, restarts=1, random_start=True"),
    (["--attack", "apgd-ce"], "apgd-ce: norm=linf, steps=10, step_size=adaptive from 2eps, restarts=1, "
                              "random_start=True"),
])
def test_the_printout_states_the_attacks_settings_defaults_included(checkpoint, fake_data, tmp_path, capsys, argv,
                                                                     settings):
    """``--attack pgd`` printed "pgd": PGD-10 with a 2.5 eps / steps step could not be told from PGD-100."""
    out = tmp_path / "r.json"
    assert _eval(checkpoint, "--data", "q", "--eps", "1/255", "--json", str(out), *argv) == 0
    assert f"attack settings: {settings}" in capsys.readouterr().out.splitlines()
    assert json.loads(out.read_text())["attack_settings"]["restarts"] == 1


def test_a_step_size_far_above_eps_is_warned_of_and_above_one_refused(checkpoint, fake_data, tmp_path, capsys):
    """``--step-size 0.25`` (meant: 0.25/255) is 16 x eps=4/255: accepted silently before (above 1: refused)."""
    out = tmp_path / "r.json"
    pgd = ["--data", "q", "--attack", "pgd", "--steps", "2", "--eps", "4/255", "--quiet", "--json", str(out)]
    assert _eval(checkpoint, *pgd, "--step-size", "0.25") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: --step-size 0.25 is 15.9 x eps=4/255" in err and "Did you mean 0.25/255" in err
    assert json.loads(out.read_text())["warnings"][0]["check"] == "step_size"
    assert _eval(checkpoint, *pgd, "--step-size", "2.5eps") == 0  # Madry's one-step ceiling: no warning
    assert "warning" not in capsys.readouterr().err
    assert _eval(checkpoint, *pgd, "--step-size", "3eps") == 0
    assert "warning: --step-size 3eps is 3 x eps=4/255" in " ".join(capsys.readouterr().err.split())
    assert _eval(checkpoint, *pgd, "--step-size", "2") == 2
    assert "is larger than 1, but images are in [0, 1]. Did you mean 2/255" in capsys.readouterr().err


def test_an_eps_of_half_the_range_or_more_is_warned_of(checkpoint, fake_data, capsys):
    """``--eps 1`` (meant: 1/255) is the whole [0, 1] range: it ran to 0% robust without a hint."""
    base = ["--data", "q", "--attack", "fgsm", "--quiet"]
    assert _eval(checkpoint, *base, "--eps", "1") == 0
    # kills: check_eps_scale not called, or its threshold raised above 1
    assert "warning: eps=1 is 255/255" in " ".join(capsys.readouterr().err.split())
    for eps in ("32/255", "0.3"):  # paper B's largest; MNIST's usual eps: no warning
        assert _eval(checkpoint, *base, "--eps", eps) == 0
        assert "warning" not in capsys.readouterr().err
