"""Each finding of a study under the unpaired and the paired method, on the same run directories.

    python scripts/compare_finding_methods.py STUDY_DIR [--n-boot 2000]

Prints one line per finding: its verdict and the half-width of the interval its verdict rests on, unpaired (Wilson
bounds, seeds' spread) and paired (per-image outcomes; ``robustft.analysis.findings(runs, method=...)``), and their
ratio; for the robust peak also its three contrasts. Half-widths are in the interval's own unit: accuracies and
their differences as fractions (0.05 = 5 points), Pareto areas in area units, % above average as a fraction, r as r.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from robustft.analysis.findings import PAIRED, UNPAIRED, Finding, findings
from robustft.runs import load_runs

PEAK_CONTRASTS = ("rise", "drop", "clean_change")


def _half(interval: dict[str, Any] | None) -> float | None:
    return None if not interval else (float(interval["high"]) - float(interval["low"])) / 2


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _ratio(after: float | None, before: float | None) -> str:
    return "-" if not after or not before else f"{after / before:.2f}"


def rows(before: Sequence[Finding], after: Sequence[Finding]) -> list[tuple[str, ...]]:
    """(finding, what, unpaired verdict, unpaired half-width, paired verdict, paired half-width, ratio) per finding
    of both lists (matched on key and setting), then the robust peak's contrasts."""
    paired = {(f.key, f.setting): f for f in after}
    out = []
    for old in before:
        new = paired.get((old.key, old.setting))
        if new is None:
            continue
        what = (new.interval or old.interval or {}).get("what", "-")
        if old.interval and new.interval and old.interval["what"] != new.interval["what"]:
            what = f"{old.interval['what']} / {new.interval['what']}"
        h0, h1 = _half(old.interval), _half(new.interval)
        out.append((old.key, what, old.verdict, _cell(h0), new.verdict, _cell(h1), _ratio(h1, h0)))
        if old.key == "A.robust_peak":
            for name in PEAK_CONTRASTS:
                h0, h1 = _half(old.numbers.get(name)), _half(new.numbers.get(name))
                out.append((f"  {name}", "", "", _cell(h0), "", _cell(h1), _ratio(h1, h0)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a study's folder (or runs/, run directories, a glob), as robustft report takes")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap draws of the paired intervals")
    args = parser.parse_args(argv)
    runs = load_runs(args.study)
    before, after = findings(runs, method=UNPAIRED), findings(runs, method=PAIRED, n_boot=args.n_boot)
    header = ("finding", "interval", "unpaired", "half-width", "paired", "half-width", "ratio")
    table = [header, *rows(before, after)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print()
    for f in after:
        print(f"{f.key}: {f.method}" + (f"; n={f.n}" if f.n else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
