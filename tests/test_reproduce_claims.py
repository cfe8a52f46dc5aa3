"""`robustft reproduce paper-a|paper-b --scale embedded` prints a verdict or a skip line for every claim: each of issue
18's cross-study claims (``findings_claims.CLAIM_KEYS``) and every finding `robustft demo` prints, of that paper.

No training: each run of the embedded grid is written as a finished run directory with made-up records shaped by its
own resolved config (task, eps_g, schedule, OOD splits), so the findings see the grid the command really plans. The
HTML report is left out (tests/test_report_claims*.py draw it); the printed summary and findings.json are the
command's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from tests.test_demo_cli import _synthetic_run

from robustft import sweep
from robustft.analysis.findings import SKIPPED, VERDICTS
from robustft.analysis.findings_claims import CLAIM_KEYS
from robustft.cli import main
from robustft.config.units import parse_eps
from robustft.runs.metrics_file import MetricsWriter

SHOWN = (*VERDICTS, SKIPPED)
STEPS = (0, 10, 20, 30, 40, 50)


def _rec(step, split, value, attack="clean", eps=0.0, metric="accuracy", n=200):
    return {"step": step, "epoch": step / 10, "split": split, "metric": metric, "attack": attack, "eps": float(eps),
            "value": float(value), "n": n}


def _records(config: dict) -> list[dict]:
    """Records shaped like the run's: harder task and larger eps_g adapt later and end lower; paper A runs rise
    and fall in robust accuracy and carry their OOD splits; paper B runs end with a robust curve 0..eps_g."""
    hard = 0.2 if config["data"]["name"] != "fashion-mnist" else 0.0
    vit = 0.05 if "vit" in config["model"]["name"] else 0.0
    if config["objective"]["name"] == "standard" and config["name"].startswith("a-"):
        k = sum(map(ord, config["strategy"]["name"])) % 7
        clean = [0.1, *(min(0.95, (0.5 + 0.08 * i) * (1 - hard) + vit + 0.01 * k) for i in range(1, 6))]
        robust = [0.02, 0.2, 0.3 - hard / 2, 0.22, 0.15 + 0.01 * k, 0.1]
        rows = [r for i, s in enumerate(STEPS) for r in (_rec(s, "test", clean[i]),
                                                         _rec(s, "test", robust[i], "pgd", 1 / 255))]
        for j, split in enumerate(config["data"].get("ood") or []):
            rows += [_rec(s, f"ood:{split}", clean[i] * (0.8 - 0.1 * j)) for i, s in enumerate(STEPS)]
        return rows
    eps = float(parse_eps(config["eps"]["value"]))
    schedule = config["eps"]["schedule"]
    delay = {"zero": 1, "constant": 1 + round(eps * 255 / 2)}.get(schedule, 1)
    top = 0.85 - hard + vit - (0.25 * eps * 255 / 4 if schedule == "constant" else 0.05 if schedule != "zero" else 0)
    clean = [0.1 if i < delay else top - 0.1 / i for i in range(len(STEPS))]
    rows = [r for i, s in enumerate(STEPS) for r in (_rec(s, "val", clean[i]), _rec(s, "test", clean[i]))]
    robust_end = {"zero": 0.0, "constant": 0.30}.get(schedule, 0.31)
    for j in range(5):  # the curve 0..eps_g: Epsilon-Scheduling a little above RFT-fix below eps_g, equal at it
        e = eps * j / 4
        lift = 0.08 if schedule not in ("zero", "constant") and j < 4 else 0.0
        value = clean[-1] + (robust_end - clean[-1]) * j / 4 + lift
        rows.append(_rec(STEPS[-1], "test", value, "apgd-ce", e, "curve_accuracy"))
    return rows


def _write_run(config: dict, run_dir: Path, threads: int | None = None) -> sweep.PointResult:
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with MetricsWriter(run_dir / "metrics.jsonl") as writer:
        writer.write(_records(config))
    (run_dir / "summary.json").write_text(json.dumps({"detection": {"num_classes": 10}, "cpu_seconds": 1.0}))
    (run_dir / "lock").write_text(json.dumps({"pid": 0}) + "\n")
    return sweep.PointResult(config["name"], [], str(run_dir), sweep.STATUS_FINISHED, "start")


def _stub_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The study's HTML report stubbed out: drawing 28 to 39 runs' figures is the slow part and not under test."""
    import robustft.report

    def stub(runs, out_dir, **_):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "index.html").write_text("stub")
        return Path(out_dir) / "index.html"

    monkeypatch.setattr(robustft.report, "build_report", stub)


def _printed_findings(argv: list[str], writer, out: Path) -> tuple[str, list[dict]]:
    """What the command printed, and its findings.json, with each run written by ``writer``."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        _stub_report(patch)
        patch.setattr(sweep.local_executor, "run_point_subprocess", writer)
        status = main(argv)
    assert status == 0, printed.getvalue()
    (findings_file,) = list(out.rglob("findings.json"))
    return printed.getvalue(), json.loads(findings_file.read_text())["findings"]


def _line(finding: dict) -> re.Pattern:
    """The printed line of a finding: ``[VERDICT] paper X (setting): claim`` (the setting when several)."""
    return re.compile(rf"^  \[{re.escape(finding['verdict'].upper())}\] paper {finding['paper']}( \(.*\))?: "
                      rf"{re.escape(finding['claim'])}$", re.M)


@pytest.fixture(scope="module")
def demo_keys(tmp_path_factory) -> set[str]:
    """The keys of every finding `robustft demo` prints (its own run on synthetic runs: no list kept here)."""
    out = tmp_path_factory.mktemp("demo")
    printed, found = _printed_findings(["demo", "--output-dir", str(out), "--quiet"], _synthetic_run, out)
    for finding in found:
        assert _line(finding).search(printed), finding["key"]
    return {f["key"] for f in found}


@pytest.mark.parametrize("paper", ["paper-a", "paper-b"])
def test_reproduce_embedded_prints_a_verdict_or_skip_line_for_every_claim(paper, demo_keys, tmp_path):
    letter = paper[-1].upper()
    expected = {key for key in (*CLAIM_KEYS, *demo_keys) if key.startswith(f"{letter}.")}
    assert {k for k in CLAIM_KEYS if k.startswith(f"{letter}.")} and len(expected) > 3  # both sources contribute
    out = tmp_path / "study"
    printed, found = _printed_findings(["reproduce", paper, "--scale", "embedded", "--output-dir", str(out),
                                        "--quiet"], _write_run, out)
    shown: dict[str, set[str]] = {}
    for finding in found:
        assert finding["verdict"] in SHOWN and finding["why"], finding
        assert _line(finding).search(printed), f"{finding['key']} is in findings.json but not printed"
        shown.setdefault(finding["key"], set()).add(finding["verdict"])
    assert expected <= set(shown), f"no verdict or skip line for {sorted(expected - set(shown))}"
    # the embedded grid holds every cross-study claim's runs: none of them may be left at a skip line for want of
    # runs (B.eadv_when_adv_equal may skip one eps_g where the schedules' adversarial accuracy is apart, not all)
    for key in (k for k in CLAIM_KEYS if k.startswith(f"{letter}.")):
        assert shown[key] - {SKIPPED}, f"{key} only skipped on the whole embedded grid: {shown[key]}"
