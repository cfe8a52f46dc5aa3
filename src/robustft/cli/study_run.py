"""What ``robustft demo`` and ``robustft reproduce`` share: print a study's plan, progress and summary.

Not a sub-command: the two commands' modules call :func:`execute`. The study itself (runs, findings,
``findings.json``, the report) is the library's ``robustft.study`` (``robustft.sweep.study_pipeline``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from robustft.sweep.study import Study


def execute(study: Study, out: Path, *, fixed: list[str], executor: str, jobs: int | None,
            ray_address: str | None, quiet: bool, title: str, cpus_per_run: float = 1,
            gpus_per_run: float = 0, storage: str | None = None) -> int:
    """Runs ``study`` into ``out`` (writing ``out/report/index.html`` and ``out/findings.json``), prints the summary.

    Returns:
        0 when every run finished, 1 when some failed (the others are still reported).
    """
    from robustft.sweep.manifest import STATUS_FINISHED
    from robustft.sweep.study_pipeline import plan_study, run_plan
    from robustft.sweep.study_progress import StudyProgress
    from robustft.sweep.study_summary import format_summary, schedule_rows, strategy_rows
    from robustft.training.evaluation_step import study_evaluation_share

    plan = plan_study(study, out, overrides=fixed, jobs=jobs)  # every arm validated before anything runs
    where = f"{plan.jobs} at a time" if executor == "local" else "on Ray"
    print(f"robustft: {study.name}: {len(plan.configs)} runs ({where}) into {out}", file=sys.stderr, flush=True)
    options = {"executor": executor, "ray_address": ray_address, "cpus_per_run": cpus_per_run,
               "gpus_per_run": gpus_per_run, "storage": storage, "title": title}
    if quiet:
        result = run_plan(plan, **options)
    else:
        with StudyProgress(plan.configs) as progress:
            result = run_plan(plan, progress=progress.update, **options)
    for failed in result.failed:
        print(f"robustft: run {failed.name} failed: {failed.error} (log: {out / 'logs' / (failed.name + '.log')})",
              file=sys.stderr)
    if result.report is None:
        print("robustft: no run finished; nothing to report.", file=sys.stderr)
        return 1
    strategies = strategy_rows([r for r in result.runs if r.labels["paper"] == "A"])
    schedules = schedule_rows([r for r in result.runs if r.labels["paper"] == "B"])
    print(format_summary(strategies, schedules, result.findings))
    print(f"\n{len(result.results) - len(result.failed)} of {len(result.results)} runs finished in "
          f"{_minutes(result.wall_seconds)} ({where}, {result.cpu_seconds / 60:.1f} CPU-minutes in the runs); "
          f"findings: {result.findings_file}")
    finished_now = {r.name for r in result.results if r.status == STATUS_FINISHED}
    evaluation, run_wall, share = study_evaluation_share(run.summary for run in result.runs if run.name in finished_now)
    if share is not None:  # continuous evaluation's part of the runs' own wall time (training.evaluation_step)
        print(f"evaluation: {share:.0%} of the runs' wall time ({evaluation / 60:.1f} of {run_wall / 60:.1f} min, "
              "summed over the runs)")
    print(f"report: {result.report}")
    return 1 if result.failed else 0


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"
