"""The report's claims panels as a reader sees them: run directories covering both papers' cross-study claims (paper
A: two backbones x two tasks x strategies; paper B: RFT-fix over three eps_g, Epsilon-Scheduling and their
references on two backbones), ``robustft report`` over them, the page rendered in headless Chromium
(tests/browser.py). Asserted on the rendered DOM, not the HTML text: each panel's heading, its figure drawn at a
visible size from a decoded, non-blank image, its table's rows, no console error, no broken image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.browser import check_page
from tests.test_report_claims import paper_a_run, paper_b_run

from robustft.cli import main
from robustft.runs import Run
from robustft.runs.metrics_file import MetricsWriter

# What the page shows of the claims section (h2#claims down to the next h2), read in the browser: headings; every
# figure's rendered box, decoded size and how many colours its image has (drawn on a canvas: a blank or
# undecodable PNG has one or none); every table row's cells; the "needs runs" lines. A figure or row counts as
# visible when it has a layout box of non-zero size and no ancestor hides it.
PROBE = """(() => {
  const visible = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && e.getClientRects().length > 0; };
  const colours = img => { if (!img.complete || !img.naturalWidth) return 0;
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data, seen = new Set();
    for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    return seen.size; };
  const start = document.getElementById('claims');
  if (!start) return null;
  const out = {visible: visible(start), headings: [], figures: [], tables: {}, absent: []};
  for (let e = start.nextElementSibling; e && e.tagName !== 'H2'; e = e.nextElementSibling) {
    if (e.tagName === 'H3') out.headings.push(visible(e) ? e.textContent.trim() : 'HIDDEN ' + e.textContent.trim());
    for (const img of (e.tagName === 'FIGURE' ? e.querySelectorAll('img') : [])) {
      const r = img.getBoundingClientRect();
      out.figures.push({visible: visible(img), width: r.width, height: r.height, natural: img.naturalWidth,
                        colours: colours(img), caption: e.querySelector('figcaption').textContent.trim()}); }
    if (e.tagName === 'TABLE') out.tables[e.className] = (out.tables[e.className] || []).concat(
      Array.from(e.querySelectorAll('tbody tr')).filter(visible).map(tr => Array.from(tr.cells)
        .map(td => td.textContent.trim())));
    if (e.classList.contains('claims-absent') && visible(e)) out.absent.push(e.textContent.trim()); }
  return out; })()"""


def _write(run: Run, root: Path) -> Path:
    """A finished run directory written as the trainer writes one (metrics through the project's writer)."""
    run_dir = root / run.name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run.config))
    (run_dir / "summary.json").write_text(json.dumps(run.summary or {"detection": {"num_classes": 10}}))
    with MetricsWriter(run_dir / "metrics.jsonl") as writer:
        # the in-memory helpers keep n as a float column; the writer takes counts as integers
        writer.write({**record, "n": int(record["n"])} for record in run.metrics.to_dict("records"))
    return run_dir


def _both_papers() -> list[Run]:
    runs = []
    for model, scale in (("mobilenet_v2", 1.0), ("vit_small_dinov2", 0.9)):
        for task, hard in (("fashion-mnist", 0.0), ("emoji", 0.3)):
            for k, strategy in enumerate(("full", "bitfit", "lora", "compacter")):
                top = scale * (0.9 - hard) - 0.02 * k
                points = [(0.3 * top, 0.1), (0.7 * top, 0.3 - 0.1 * hard), (top, 0.25 - 0.02 * k)]
                runs.append(paper_a_run(f"a-{model}-{task}-{strategy}", task, strategy, points, model=model))
    for model in ("mobilenet_v2", "vit_small_dinov2"):
        for k, delay in ((1, 1), (2, 2), (4, 3)):
            val = [0.1] * delay + [0.6, 0.7, 0.75][: 4 - delay]
            runs.append(paper_b_run(f"b-{model}-{k}-fix", "constant", f"{k}/255", val, 0.8 - 0.1 * k))
            runs.append(paper_b_run(f"b-{model}-{k}-scheduled", "scheduled", f"{k}/255", [0.3, 0.6, 0.7, 0.8],
                                    0.82 - 0.02 * k))
            runs.append(paper_b_run(f"b-{model}-{k}-standard", "zero", f"{k}/255", [0.5, 0.7, 0.8, 0.85], 0.86,
                                    objective="standard"))
        for run in runs[-9:]:
            run.config["model"]["name"] = model
    for run in runs:  # as the embedded grids set them up: each paper its own recipe (paper A's eps.value unused)
        paper_a = run.name.startswith("a-")
        run.config["optim"] = {"lr": 1e-3 if paper_a else 5e-4, "batch_size": 32 if paper_a else 50}
    return runs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    dirs = [str(_write(run, root / "runs")) for run in _both_papers()]
    assert main(["report", *dirs, "--output-dir", str(root / "report")]) == 0
    return root


def _render(page: Path, tmp_path: Path):
    return check_page(page, tmp_path / "claims.png", height=1200, probe=PROBE, clip="#claims")


@pytest.mark.slow
def test_the_claims_panels_render_visible_in_chromium(rendered, tmp_path):
    seen = _render(rendered / "report" / "index.html", tmp_path)
    assert seen.console_errors == []
    assert seen.images > 0 and seen.images_loaded == seen.images
    claims = seen.probed
    assert claims is not None and claims["visible"]
    assert claims["headings"] == ["Frontiers per task: mobilenet_v2", "Frontiers per task: vit_small_dinov2",
                                  "Onset of task adaptation against eps_g (RFT-fix)",
                                  "Suboptimal transfer per backbone and task"]
    assert [f["caption"].split(":")[0].split(" (")[0] for f in claims["figures"]] == [
        "mobilenet_v2", "vit_small_dinov2", "Onset of task adaptation of RFT-fix against eps_g, per backbone and task"]
    for figure in claims["figures"]:
        assert figure["visible"] and figure["width"] > 300 and figure["height"] > 200, figure
        assert figure["natural"] > 0 and figure["colours"] > 20, figure  # decoded, and not a blank canvas
    frontiers = claims["tables"]["claims-frontiers"]
    assert len(frontiers) == 2 * (2 * 4 + 2)  # per backbone: two tasks x (four strategies + their mean)
    assert ["emoji", "mean", "4 runs"] == frontiers[4][:3]
    onset = claims["tables"]["claims-onset"]
    assert [(r[0], r[2], r[4]) for r in onset] == [
        (model, eps, epoch) for model in ("mobilenet_v2", "vit_small_dinov2")
        for eps, epoch in (("1/255", "1"), ("2/255", "2"), ("4/255", "3"))]
    transfer = claims["tables"]["claims-transfer"]
    # reference 86.0 against RFT-fix's 70/60/40 at 1/2/4 eps_g, on both backbones; each with its own reference
    assert [(r[0], r[2], r[3], r[4], r[5], r[6], r[7]) for r in transfer] == [
        (model, f"{k}/255", "86.0", f"{100 * (0.8 - 0.1 * k):.1f}", f"+{100 * (0.06 + 0.1 * k):.1f}",
         f"{100 * (0.82 - 0.02 * k):.1f}", f"b-{model}-{k}-standard")
        for model in ("mobilenet_v2", "vit_small_dinov2") for k in (1, 2, 4)]
    assert claims["absent"] == []
    assert seen.distinct_colours > 200  # the screenshot of the section: figures drawn, not an empty page
