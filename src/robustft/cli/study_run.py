"""What ``robustft demo`` and ``robustft reproduce`` share: run a study, then report, summarise and judge it.

Not a sub-command: the two commands' modules call :func:`execute`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from robustft.sweep.study import Study


def execute(study: Study, out: Path, *, fixed: list[str], executor: str, jobs: int | None,
            ray_address: str | None, quiet: bool, title: str, cpus_per_run: float = 1,
            gpus_per_run: float = 0, storage: str | None = None) -> int:
    """Runs ``study`` into ``out``, writes ``out/report/index.html`` and ``out/findings.json``, prints the summary.

    Returns:
        0 when every run finished, 1 when some failed (the others are still reported).
    """
    from robustft.analysis.findings import findings
    from robustft.report import build_report
    from robustft.report.collect import collect_runs
    from robustft.report.html import describe
    from robustft.sweep.runner import STATUS_FAILED, STATUS_FINISHED
    from robustft.sweep.study import default_jobs, resolve_study, run_study
    from robustft.sweep.study_progress import StudyProgress
    from robustft.sweep.study_summary import format_summary, schedule_rows, strategy_rows
    from robustft.training.evaluation_step import study_evaluation_share

    _, configs = resolve_study(study, out, fixed)  # every arm validated before anything runs
    jobs = default_jobs(configs) if jobs is None else jobs
    where = f"{jobs} at a time" if executor == "local" else "on Ray"
    print(f"robustft: {study.name}: {len(configs)} runs ({where}) into {out}", file=sys.stderr, flush=True)
    started = time.monotonic()
    options = {"fixed": fixed, "executor": executor, "jobs": jobs, "ray_address": ray_address,
               "cpus_per_run": cpus_per_run, "gpus_per_run": gpus_per_run, "storage": storage}
    if quiet:
        results = run_study(study, out, **options)
    else:
        with StudyProgress(configs) as progress:
            results = run_study(study, out, progress=progress.update, **options)
    wall = time.monotonic() - started
    failed = [r for r in results if r.status == STATUS_FAILED]
    for result in failed:
        print(f"robustft: run {result.name} failed: {result.error} (log: {out / 'logs' / (result.name + '.log')})",
              file=sys.stderr)
    arms = {arm.name: arm for arm in study.arms}
    done = [Path(r.path) for r in results if r.status != STATUS_FAILED]
    if not done:
        print("robustft: no run finished; nothing to report.", file=sys.stderr)
        return 1
    runs = collect_runs(done)
    # CPU time of the runs: on a shared machine wall time says little, CPU seconds / cores estimates the wall time
    # the same study takes on an idle one. Each run records its own (summary.json: cpu_seconds), which also counts
    # Ray workers, who are no children of this process; runs skipped as finished earlier are not counted.
    finished_now = {r.name for r in results if r.status == STATUS_FINISHED}
    cpu = sum(float((run.summary or {}).get("cpu_seconds") or 0.0) for run in runs if run.name in finished_now)
    for run in runs:
        arm = arms.get(run.name)
        run.labels = {**describe(run.config), "label": arm.label if arm else run.name,
                      "paper": arm.paper if arm else ""}
    found = findings(runs)
    _write_findings(out / "findings.json", study, found, wall, cpu, jobs, executor)
    # Each arm its own frontier under its label (paper A: the strategy, paper B: the schedule; grouping by strategy
    # would merge all of paper B's schedules, which are all full fine-tuning, into one "full" frontier).
    page = build_report(runs, out / "report", title=title, group_by="label", found=found)
    strategies = strategy_rows([r for r in runs if r.labels["paper"] == "A"])
    schedules = schedule_rows([r for r in runs if r.labels["paper"] == "B"])
    print(format_summary(strategies, schedules, found))
    print(f"\n{len(results) - len(failed)} of {len(results)} runs finished in {_minutes(wall)} ({where}, "
          f"{cpu / 60:.1f} CPU-minutes in the runs); findings: {out / 'findings.json'}")
    evaluation, run_wall, share = study_evaluation_share(run.summary for run in runs if run.name in finished_now)
    if share is not None:  # continuous evaluation's part of the runs' own wall time (training.evaluation_step)
        print(f"evaluation: {share:.0%} of the runs' wall time ({evaluation / 60:.1f} of {run_wall / 60:.1f} min)")
    print(f"report: {page}")
    return 1 if failed else 0


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def _write_findings(path: Path, study: Study, found: list[Any], wall: float, cpu: float, jobs: int,
                    executor: str) -> None:
    from robustft.runs.metrics_file import atomic_write_text

    payload = {"study": study.name, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "jobs": jobs,
               "executor": executor,
               "findings": [f.as_dict() for f in found]}
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
