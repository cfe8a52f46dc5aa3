"""Report benchmark: ``load_runs`` + ``build_report`` over synthetic run directories, 50 evaluation points each,
5 seeds per configuration, at 100 and 1,000 runs.

Printed: the time ratio 1000 / 100 (linear growth in the number of runs gives ~10; target <= 12) and the absolute
time for 1,000 runs (target: under a minute on this machine). Runs are written to a temporary directory once,
then each size is timed ``BENCH_REPORT_ROUNDS`` times (default 1: one 1,000-run report takes tens of seconds),
the two sizes interleaved.

Run: ``python -m bench report`` (``BENCH_REPORT_SIZES=100,1000`` to change the sizes).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bench.timing import report_line

POINTS = 50
SEEDS = 5
EPS = 4 / 255
STRATEGIES = ("full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter", "vpt")
SCHEDULES = ("constant", "scheduled", "linear", "uniform", "auto")


def _records(rng: np.random.Generator, schedule: str) -> list[dict]:
    """50 evaluation points of a plausible adversarial run (val / test clean, PGD, OOD, optim) + a final one."""
    rows = []
    delay = 12 if schedule == "scheduled" else 0
    for i in range(POINTS):
        step, epoch = 20 * i, i / 5
        clean = min(0.95, 0.1 + 0.8 * (1 - np.exp(-max(0, i - delay) / 12)) + rng.normal(0, 0.01))
        robust = max(0.0, 0.3 * np.exp(-i / 30) + 0.1 * clean + rng.normal(0, 0.01))
        alpha = 1.0 if schedule == "constant" else min(1.0, i / POINTS * 2)
        rows += [
            {"step": step, "epoch": epoch, "split": "val", "metric": "accuracy", "attack": "clean", "eps": 0.0,
             "value": clean, "n": 256},
            {"step": step, "epoch": epoch, "split": "test", "metric": "accuracy", "attack": "clean", "eps": 0.0,
             "value": clean, "n": 256},
            {"step": step, "epoch": epoch, "split": "test", "metric": "accuracy", "attack": "pgd", "eps": 1 / 255,
             "value": robust, "n": 256},
            {"step": step, "epoch": epoch, "split": "ood:noise", "metric": "accuracy", "attack": "clean", "eps": 0.0,
             "value": clean * 0.8, "n": 256},
            {"step": step, "epoch": epoch, "split": "optim", "metric": "eps", "attack": None, "eps": None,
             "value": alpha * EPS},
            {"step": step, "epoch": epoch, "split": "optim", "metric": "loss", "attack": "adversarial", "eps": None,
             "value": 2.0 - clean},
        ]
    last = 20 * (POINTS - 1)
    for k in range(5):
        rows.append({"step": last, "epoch": last / 100, "split": "test", "metric": "curve_accuracy",
                     "attack": "apgd-ce", "eps": k / 255, "value": max(0.0, clean - 0.15 * k)})
    rows += [{"step": last, "epoch": last / 100, "split": "test", "metric": "expected_robustness",
              "attack": "apgd-ce", "eps": EPS, "value": clean * 0.5},
             {"step": last, "epoch": last / 100, "split": "test", "metric": "accuracy", "attack": "final:apgd-ce",
              "eps": EPS, "value": robust * 0.7, "n": 500}]
    return rows


def write_runs(root: Path, count: int) -> Path:
    """``count`` run directories under ``root/<count>``: configurations x 5 seeds (config, metrics, summary)."""
    from robustft.config import Config, to_dict

    base = to_dict(Config())
    out = root / str(count)
    rng = np.random.default_rng(count)
    configs = [(d, st, sc) for d in range(max(1, count // (SEEDS * len(STRATEGIES) * len(SCHEDULES))))
               for st in STRATEGIES for sc in SCHEDULES][: count // SEEDS]
    for dataset, strategy, schedule in configs:
        for seed in range(SEEDS):
            name = f"d{dataset}-{strategy}-{schedule}-seed-{seed}"
            run = out / name
            run.mkdir(parents=True)
            config = {**base, "name": name, "seed": seed, "data": {**base["data"], "name": f"data{dataset}"},
                      "strategy": {"name": strategy, "options": {}}, "objective": {**base["objective"],
                                                                                   "name": "adversarial"},
                      "eps": {**base["eps"], "schedule": schedule, "value": EPS}}
            (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            records = _records(rng, schedule)
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            summary = {"name": name, "detection": {"onset": {"epoch": 2.4, "step": 240},
                                                   "robust_peak": {"step": 0, "value": 0.3}}}
            (run / "summary.json").write_text(json.dumps(summary))
    return out


def report_seconds(runs_dir: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of load_runs + build_report. CPU time is printed too because
    on a machine shared with other jobs the wall time measures the load as much as the report."""
    from robustft.report import build_report
    from robustft.runs import load_runs

    start, cpu = time.perf_counter(), time.process_time()
    build_report(load_runs(runs_dir), out, title="bench")
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_REPORT_SIZES", "100,1000").split(",")]
    rounds = int(os.environ.get("BENCH_REPORT_ROUNDS", "1"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = {n: write_runs(root, n) for n in sizes}
        times: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
        for r in range(rounds):
            for n in sizes:
                times[n].append(report_seconds(dirs[n], root / f"report-{n}-{r}"))
    wall = {n: statistics.median(t[0] for t in ts) for n, ts in times.items()}
    cpu = {n: statistics.median(t[1] for t in ts) for n, ts in times.items()}
    for n in sizes:
        print(f"report over {n} runs x {POINTS} points: {wall[n]:.1f} s wall, {cpu[n]:.1f} s CPU", flush=True)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        linear = large / small
        for label, measured in (("wall", wall), ("CPU", cpu)):
            ratio = measured[large] / measured[small]
            print(report_line(f"{label} time {large} / {small} runs", ratio,
                              f"<= {1.2 * linear:.0f}x (linear {linear:.0f}x)", ratio <= 1.2 * linear))
        print(f"{large} runs: {wall[large]:.1f} s wall, {cpu[large]:.1f} s CPU (target < 60 s) "
              f"{'PASS' if wall[large] < 60 else 'MISS'}")


if __name__ == "__main__":
    main()
