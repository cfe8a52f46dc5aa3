"""`robustft demo` and `robustft reproduce` end to end: every summary row, every finding, the report.

The fast test runs the demo's whole pipeline on synthetic run directories (no training); the slow ones run
`reproduce` on tiny settings (in this process), the real `demo --quick` (the embedded backbone and data,
subprocesses: what CI runs), the report in headless Chromium, and `reproduce` through a local Ray instance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from robustft import sweep
from robustft.analysis.findings import SKIPPED, VERDICTS
from robustft.cli import main
from robustft.sweep.study import PAPER_A_STRATEGIES

# The smallest settings under which every part of a study still runs: a tiny CNN on the 8x8 `digits` data.
TINY = ["model.name=tiny-cnn", "model.pretrained=false", "model.image_size=16", "data.name=digits",
        "data.image_size=16", "data.limit_train=64", "data.limit_val=32", "data.limit_test=32", "data.augment=null",
        "eval.subset=16", "eval.batch_size=32", "optim.batch_size=32", "data.ood=[]"]
# each study's findings, then issue 18's cross-study claims (a verdict, or a skip line naming the runs they need)
PAPER_A_FINDINGS = {"A.robust_peak", "A.largest_area", "A.bitfit_above_average", "A.linear_above_average",
                    "A.ood_tracks_clean", "A.attention_on_complex", "A.steeper_with_complexity",
                    "A.ood_shift_not_method"}
PAPER_B_FINDINGS = {"B.clean", "B.expected_robustness", "B.onset_delay", "B.eadv_when_adv_equal",
                    "B.delay_grows_with_eps", "B.severity_by_model_and_data"}
SHOWN = (*VERDICTS, SKIPPED)


@pytest.fixture
def in_process(monkeypatch):
    """Runs each study run in this process instead of a `robustft train` subprocess (seconds, not minutes)."""
    monkeypatch.setattr(sweep.local_executor, "run_point_subprocess", lambda config, run_dir, threads=None:
                        sweep.run_point_inprocess(config, run_dir))


def _sets(overrides: list[str]) -> list[str]:
    return [item for override in overrides for item in ("--set", override)]


def _synthetic_run(config: dict, run_dir: Path, threads: int | None = None) -> sweep.PointResult:
    """Writes a finished run directory with made-up records shaped like the arm's (no training): paper A runs
    rise and fall in robust accuracy, RFT-fix adapts late, Epsilon-Scheduling ends cleaner and more robust."""
    import yaml
    from tests.test_findings import paper_a_run, paper_b_run

    name = config["name"]
    if name.startswith("a-"):
        robust = {"full": [0.02, 0.25, 0.3, 0.15, 0.1], "bitfit": [0.01] * 5, "linear": [0.01] * 5}.get(
            name[2:], [0.02, 0.1, 0.12, 0.12, 0.11])
        run = paper_a_run(name[2:], [0.2, 0.7, 0.8, 0.85, 0.88], robust, n=256,
                          ood={"fashion-mnist@contrast:3": [0.15, 0.5, 0.6, 0.65, 0.7]})
    else:
        kind = name[2:]
        clean = {"standard": [0.17, 0.7, 0.8, 0.85], "fix": [0.17, 0.12, 0.2, 0.3]}.get(kind, [0.17, 0.7, 0.5, 0.5])
        curve = {"fix": [0.3, 0.2, 0.15, 0.1, 0.08]}.get(kind, [0.5, 0.35, 0.25, 0.15, 0.1])
        run = paper_b_run(kind, clean, curve)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    lines = [json.dumps({k: (None if v != v else v) for k, v in r.items()}) for r in run.metrics.to_dict("records")]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "summary.json").write_text(json.dumps({"detection": {"num_classes": 10},
                                                      "cpu_seconds": synthetic_cpu_seconds(name)}))
    # a trainer writes its holder details into the lock when it starts (the progress display's "started"); this
    # instant stand-in leaves them, where a real one clears them on exit after being seen running
    (run_dir / "lock").write_text(json.dumps({"pid": 0}) + "\n")
    # b-standard stands for a run finished by an earlier invocation (skipped now): its CPU time is not this study's
    status = sweep.STATUS_SKIPPED if name == "b-standard" else sweep.STATUS_FINISHED
    return sweep.PointResult(name, [], str(run_dir), status, "skip" if status == sweep.STATUS_SKIPPED else "start")


def synthetic_cpu_seconds(name: str) -> float:
    """A different CPU time for each synthetic run, so that a sum of the wrong runs shows."""
    return 10.0 + (7 * sum(map(ord, name))) % 97


def test_demo_prints_every_row_and_finding_and_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep.local_executor, "run_point_subprocess", _synthetic_run)
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    # Off a terminal, the progress display prints a line per started and finished run.
    assert "started a-full" in captured.err and "[10/10 runs]" in captured.err
    (study,) = tmp_path.glob("demo-*")  # a fresh, timestamped study directory each time
    table_a = printed.split("Paper A")[1].split("Paper B")[0]
    for strategy in PAPER_A_STRATEGIES:
        assert f"\n{strategy} " in table_a
    assert "32/255" in printed.split("Paper B")[1].split("\n")[0]  # the threat model of the schedule table
    saved = json.loads((study / "findings.json").read_text())
    # the study's CPU time: the sum of the runs' own (summary.json), over the runs this invocation ran
    expected = sum(synthetic_cpu_seconds(p.name) for p in study.iterdir() if (p / "metrics.jsonl").is_file()
                   and p.name != "b-standard")
    assert saved["cpu_seconds"] == pytest.approx(expected) and f"{expected / 60:.1f} CPU-minutes" in printed
    found = saved["findings"]
    assert {f["key"]: f["verdict"] for f in found} == {
        "A.robust_peak": "holds", "A.largest_area": "does not hold", "A.bitfit_above_average": "does not hold",
        "A.linear_above_average": "does not hold", "A.ood_tracks_clean": "holds", "B.clean": "holds",
        "B.expected_robustness": "holds", "B.onset_delay": "holds", "A.ood_shift_not_method": "holds",
        # one task, one backbone, one eps_g: the cross-study claims say which runs they need
        "A.attention_on_complex": "skipped", "A.steeper_with_complexity": "skipped",
        "B.delay_grows_with_eps": "skipped", "B.severity_by_model_and_data": "skipped",
        "B.eadv_when_adv_equal": "holds"}  # adversarial accuracy at eps_g 10 vs 8%, E.adv measurably higher
    for finding in found:
        assert f"[{finding['verdict'].upper()}] paper {finding['paper']}: {finding['claim']}" in printed
    page = study / "report" / "index.html"
    assert f"report: {page}" in printed and page.read_text().index("Findings") < page.read_text().index("Overview")
    assert f"robustft eval --checkpoint {study / 'b-fix'} --subset-of {study / 'b-fix'}" in printed


@pytest.mark.slow
def test_reproduce_paper_b_on_tiny_settings(tmp_path, in_process, capsys):
    out = tmp_path / "study"
    # one configuration of the embedded grid: its six schedules (the others are the same runs on other data)
    argv = ["reproduce", "paper-b", "--output-dir", str(out), "--jobs", "1", "--quiet", "--models", "mobilenet-v2",
            "--datasets", "fashion-mnist", "--eps", "4/255",
            *_sets([*TINY, "train.epochs=2", "eval.schedule=epoch", "eval.curve=2/255", "eval.eps=[2/255]",
                    "eps.value=2/255", "objective.steps=1", "eval.final.steps=2", "eval.attack.steps=2"])]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for label in ("standard (reference)", "RFT-fix", "Epsilon-Scheduling", "linear", "uniform", "auto"):
        assert label in printed
    assert f"report: {out / 'report' / 'index.html'}" in printed
    saved = json.loads((out / "findings.json").read_text())
    assert {f["key"] for f in saved["findings"]} == PAPER_B_FINDINGS
    assert 0 < saved["cpu_seconds"] <= saved["wall_seconds"] * (os.cpu_count() or 1)  # the runs' own CPU time
    assert all(f["verdict"] in SHOWN and f["why"] for f in saved["findings"])
    page = (out / "report" / "index.html").read_text()
    assert page.index("Findings") < page.index("Overview")  # the Findings section comes first
    # every schedule is its own frontier (all six runs are full fine-tuning: grouping by strategy merged them)
    tradeoff = page[page.index("Accuracy / robustness trade-off"):]
    for label in ("RFT-fix", "Epsilon-Scheduling", "standard (reference)", "auto"):
        assert f"<td>{label} 4/255 · mobilenet-v2 · fashion-mnist</td>" in tradeoff
    # Resumable: a second call skips every finished run and reports the same findings.
    assert main(argv) == 0
    assert json.loads((out / "findings.json").read_text())["findings"] == saved["findings"]
    manifest = json.loads((out / "sweep.json").read_text())
    assert {p["status"] for p in manifest["points"]} == {"skipped"} and manifest["study"] == "paper-b-embedded"


@pytest.mark.slow
def test_reproduce_paper_a_on_tiny_settings_reports_a_failing_run_and_all_others(tmp_path, in_process, monkeypatch,
                                                                                  capsys):
    out = tmp_path / "study"
    ran = sweep.run_point_subprocess

    def ia3_fails(config, run_dir, threads=None):
        # VPT needs a ViT: this run fails with a clear message; the others must still finish and be reported.
        if config["name"] == "a-mobilenet-v2-fashion-mnist-ia3":
            config = {**config, "strategy": {"name": "vpt", "options": {}}}
        return ran(config, run_dir, threads)

    monkeypatch.setattr(sweep.local_executor, "run_point_subprocess", ia3_fails)
    argv = ["reproduce", "paper-a", "--output-dir", str(out), "--jobs", "1", "--quiet", "--models", "mobilenet-v2",
            "--datasets", "fashion-mnist",
            *_sets([*TINY, "train.steps=6", "eval.schedule=every:2", "data.ood=[digits@contrast:3]"])]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "run a-mobilenet-v2-fashion-mnist-ia3 failed" in captured.err and "vit" in captured.err.lower()
    strategies = captured.out.split("Paper A")[1].split("Findings")[0]
    for strategy in PAPER_A_STRATEGIES:
        assert (f"\n{strategy} " in strategies) is (strategy != "ia3")
    keys = {f["key"] for f in json.loads((out / "findings.json").read_text())["findings"]}
    assert keys == PAPER_A_FINDINGS
    assert f"report: {out / 'report' / 'index.html'}" in captured.out


def test_bad_overrides_fail_before_anything_runs(tmp_path, capsys):
    assert main(["reproduce", "paper-a", "--output-dir", str(tmp_path / "s"), "--set", "optim.lr=-1"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One real `robustft demo --quick` (embedded MobileNetV2 and Fashion-MNIST, subprocesses), shared."""
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["demo", "--quick", "--output-dir", str(out), "--quiet"])
    (study,) = out.glob("demo-quick-*")
    return status, printed.getvalue(), study


@pytest.mark.slow
@pytest.mark.needs_assets
def test_demo_quick_prints_every_row_and_finding_and_writes_the_report(quick_demo):
    status, printed, study = quick_demo
    assert status == 0, printed
    table_a = printed.split("Paper A")[1].split("Paper B")[0]
    for strategy in PAPER_A_STRATEGIES:
        assert f"\n{strategy} " in table_a
    table_b = printed.split("Paper B")[1].split("Findings")[0]
    for schedule in ("standard (reference)", "RFT-fix", "Epsilon-Scheduling"):
        assert schedule in table_b
    found = json.loads((study / "findings.json").read_text())["findings"]
    assert {f["key"] for f in found} == PAPER_A_FINDINGS | PAPER_B_FINDINGS
    for finding in found:
        assert finding["verdict"] in SHOWN and f"[{finding['verdict'].upper()}]" in printed
    page = study / "report" / "index.html"
    assert f"report: {page}" in printed and "Findings" in page.read_text()


@pytest.mark.slow
@pytest.mark.needs_assets
def test_demo_report_renders_in_a_real_browser(quick_demo, tmp_path):
    from tests.browser import check_page

    _, _, study = quick_demo
    result = check_page(study / "report" / "index.html", tmp_path / "report.png")
    assert result.console_errors == []
    assert result.images > 0 and result.images_loaded == result.images
    assert result.distinct_colours > 50  # a blank or error page has a handful


@pytest.mark.slow
def test_reproduce_through_a_local_ray_instance(tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray is in the dev extra; install it with pip install 'robustft[ray]'")
    out = tmp_path / "study"
    try:
        status = main(["reproduce", "paper-b", "--executor", "ray", "--output-dir", str(out), "--quiet",
                       *_sets([*TINY, "train.epochs=1", "eval.curve=2/255", "eval.eps=[2/255]", "eps.value=2/255",
                               "objective.steps=1", "eval.final.steps=2", "eval.attack.steps=2"])])
    finally:
        ray.shutdown()
    assert status == 0
    assert {f["key"] for f in json.loads((out / "findings.json").read_text())["findings"]} == PAPER_B_FINDINGS
    assert Path(out / "report" / "index.html").is_file()


def test_the_printed_command_is_one_this_shell_can_run(tmp_path, monkeypatch):
    """``make demo`` runs ``.venv/bin/robustft``; a newcomer's shell has no ``robustft`` on its PATH, so the demo's
    closing hint names the path it was called by. kills: the hint hard-coded as ``robustft``."""
    import sys

    from robustft.cli.demo_cmd import command_name

    script = tmp_path / "venv" / "bin" / "robustft"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    assert command_name() == str(script)
    monkeypatch.setenv("PATH", str(script.parent))
    assert command_name() == "robustft"
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert command_name() == "robustft"


def test_the_closing_hint_names_a_finished_run_and_its_own_images(tmp_path):
    from robustft.cli.demo_cmd import closing_hint

    assert closing_hint(tmp_path) is None  # nothing finished
    (tmp_path / "a-full").mkdir()
    (tmp_path / "a-full" / "summary.json").write_text("{}")
    hint = closing_hint(tmp_path)
    assert f"--checkpoint {tmp_path / 'a-full'} --subset-of {tmp_path / 'a-full'}" in hint and "--limit" not in hint
    (tmp_path / "b-fix").mkdir()
    (tmp_path / "b-fix" / "summary.json").write_text("{}")
    hint = closing_hint(tmp_path)  # paper B's RFT-fix, where the protocol's 10 steps have not converged
    assert f"--subset-of {tmp_path / 'b-fix'} --attack apgd-ce --steps 100 --curve 0:32/255" in hint
    assert "--checks" in hint
