"""A study as a library function: runs, then findings, ``findings.json`` and the HTML report.

``robustft.study`` (this module's :func:`study`, reached lazily from ``import robustft``) is what ``robustft demo``,
``robustft reproduce`` and ``robustft sweep --report`` run; the commands only parse arguments and print::

    import robustft
    result = robustft.study("configs/demo.yaml", "runs/lr-study", grid={"optim.lr": ["1e-3", "3e-4"]}, seeds=2)
    print(result.findings, result.report)

A study is either a set of arms (a :class:`robustft.sweep.study.Study`, or a shipped one by name: ``demo``,
``demo-quick``, ``paper-a``, ``paper-b``; each arm its own config file) or a grid over one config file (the
cartesian product of ``grid``'s values, as ``robustft sweep``). ``seeds=N`` runs every arm or grid point with
seeds 0..N-1 (the findings then take their intervals from the seeds' spread). Every run is resolved and validated
before any starts (:func:`plan_study`); the runs go through the sweep machinery (:func:`run_plan`: local
subprocesses ``jobs`` at a time, or Ray), so a study is resumable like a sweep: run it again into the same
directory and finished runs are skipped, interrupted ones resumed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustft.errors import ConfigError
from robustft.sweep.expansion import resolve_points
from robustft.sweep.grid import SweepPoint, add_seed_axis
from robustft.sweep.jobs import default_jobs
from robustft.sweep.manifest import STATUS_FAILED, STATUS_FINISHED, STATUS_RUNNING, PointResult
from robustft.sweep.runner import run_sweep
from robustft.sweep.study import Study, demo_study, paper_study, resolve_study, run_study

if TYPE_CHECKING:  # annotations only: analysis and report load when a study is analysed
    from robustft.analysis.findings import Finding
    from robustft.runs import Run

# The shipped studies by name (embedded scale: offline, CPU); any other Study object is passed as is.
STUDIES: dict[str, Callable[[], Study]] = {
    "demo": demo_study,
    "demo-quick": lambda: demo_study(quick=True),
    "paper-a": lambda: paper_study("paper-a"),
    "paper-b": lambda: paper_study("paper-b"),
}


@dataclass
class StudyPlan:
    """A study resolved and validated, nothing run yet (:func:`plan_study`).

    Attributes:
        name: the study's name (a Study's, else the sweep directory's).
        output_dir: the study directory (one run directory per point, ``sweep.json``, ``logs/``).
        points: one per run, in the order they are reported.
        configs: each run's full config (a dict, ``name`` and ``output_dir`` set), in the same order.
        jobs: local runs at a time.
        fixed: overrides applied to every run.
        study: the arms (labels, papers) when the study is a set of arms; None for a grid over ``config``.
        config, grid: the base config file and the grid (``{dotted key: [values]}``) of a grid study.
    """

    name: str
    output_dir: Path
    points: list[SweepPoint]
    configs: list[dict[str, Any]]
    jobs: int
    fixed: list[str]
    study: Study | None = None
    config: Path | None = None
    grid: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class StudyResult:
    """What a study produced.

    Attributes:
        name, output_dir: as in :class:`StudyPlan`.
        results: the sweep's outcome per run (finished, skipped as finished before, running elsewhere, failed).
        runs: the runs analysed (finished or skipped; ``robustft.runs.load_runs``'s runs, each
            labelled with its arm's label and paper); empty when none finished or ``analyse=False``.
        findings: the papers' claims tested on ``runs`` (``robustft.analysis.findings``).
        report: ``output_dir/report/index.html``; None when nothing was analysed.
        findings_file: ``output_dir/findings.json`` (the findings, wall and CPU seconds); None likewise.
        wall_seconds: time the runs took here; cpu_seconds: the CPU time the runs finished now recorded in their
            ``summary.json`` (Ray workers included; runs skipped as finished before are not counted).
        jobs, executor: how the runs ran.
    """

    name: str
    output_dir: Path
    results: list[PointResult]
    runs: list[Run]
    findings: list[Finding]
    report: Path | None
    findings_file: Path | None
    wall_seconds: float
    cpu_seconds: float
    jobs: int
    executor: str

    @property
    def failed(self) -> list[PointResult]:
        """The runs that failed (each ``error`` says why; the others are analysed all the same)."""
        return [r for r in self.results if r.status == STATUS_FAILED]


def with_seeds(study: Study, seeds: int) -> Study:
    """Every arm run with seeds 0..N-1: arm ``a-full`` becomes ``a-full-seed-0`` ... (the grid's run names), same
    label and paper, so the report and the findings treat the seeds of an arm as its replicates.

    Raises:
        ConfigError: N < 1.
    """
    add_seed_axis({}, seeds)  # the same check and message as a grid's --seeds
    arms = [replace(arm, name=f"{arm.name}-seed-{s}", overrides=(*arm.overrides, f"seed={s}"))
            for arm in study.arms for s in range(seeds)]
    return Study(study.name, tuple(arms))


def plan_study(spec: Study | str | Path, output_dir: str | Path | None = None, *,
               grid: Mapping[str, Sequence[str]] | None = None, seeds: int | None = None,
               overrides: Sequence[str] = (), jobs: int | None = None) -> StudyPlan:
    """Resolves and validates every run of a study; runs nothing.

    Args:
        spec: a :class:`Study`, a shipped study's name (:data:`STUDIES`, as text), or a YAML config file to run
            over ``grid`` (a ``Path`` is always a file).
        output_dir: the study directory (default: ``runs/<study name>``; a config file: its ``output_dir/name``).
        grid: a config file's grid, ``{dotted key: [values]}`` (values as text, as on the command line); None or
            empty: the config alone. Not with a set of arms (each arm is already its own config).
        seeds: run every arm or point with seeds 0..N-1 (None: each config's own seed).
        overrides: ``key=value`` overrides applied to every run.
        jobs: local runs at a time (default ``robustft.sweep.jobs.default_jobs``: one per core on CPUs).

    Raises:
        ConfigError: an unknown study name or missing config file, a grid with arms, bad seeds, or a run whose
            config does not validate (nothing has started).
    """
    fixed = list(overrides)
    if isinstance(spec, Study) or (isinstance(spec, str) and spec in STUDIES and not Path(spec).is_file()):
        arms = spec if isinstance(spec, Study) else STUDIES[spec]()
        if grid:
            raise ConfigError(f"grid={dict(grid)!r} is for a study over one config file; the study {arms.name!r} "
                              "is a set of arms, each its own config: pass the grid's values as overrides= (the "
                              "same for every arm), or run the grid over one config file.")
        if seeds is not None:
            arms = with_seeds(arms, seeds)
        out = Path(output_dir) if output_dir is not None else Path("runs") / arms.name
        points, configs = resolve_study(arms, out, fixed)
        return StudyPlan(arms.name, out, points, configs, _jobs(jobs, configs), fixed, study=arms)
    config = Path(spec)
    if isinstance(spec, str) and not config.suffix and not config.exists():  # a mistyped study name, most likely
        raise ConfigError(f"{spec!r} is neither a shipped study nor a config file; pass one of {', '.join(STUDIES)}, "
                          "a YAML config path (with grid=), or a robustft.sweep.study.Study.")
    points_grid = add_seed_axis({k: [str(v) for v in values] for k, values in (grid or {}).items()}, seeds)
    points, configs, out = resolve_points(config, points_grid, fixed, output_dir)
    return StudyPlan(out.name, out, points, configs, _jobs(jobs, configs), fixed, config=config, grid=points_grid)


def _jobs(jobs: int | None, configs: Sequence[dict[str, Any]]) -> int:
    return default_jobs(configs) if jobs is None else jobs


def run_plan(plan: StudyPlan, *, executor: str = "local", ray_address: str | None = None,
             cpus_per_run: float = 1, gpus_per_run: float = 0, storage: str | None = None,
             progress: Callable[[str, Any], None] | None = None, analyse: bool = True,
             title: str | None = None, group_by: str | None = None) -> StudyResult:
    """Runs a planned study, then (``analyse``) writes its findings and report.

    Args:
        plan: from :func:`plan_study`.
        executor: ``local`` (subprocesses, ``plan.jobs`` at a time) or ``ray``.
        ray_address, cpus_per_run, gpus_per_run, storage: Ray only, as ``robustft.sweep.run_points`` takes them.
        progress: called as ``progress("start", point)`` and ``progress("done", result)``.
        analyse: collect the finished runs, test the findings, write ``findings.json`` and the report; False runs
            only (``runs`` and ``findings`` empty, ``report`` None).
        title: the report's title (default ``robustft study <name>``).
        group_by: how the report groups runs into Pareto frontiers (default: each arm's ``label``; a grid: ``run``).

    Raises:
        SweepInterrupted: a stop signal arrived (``robustft.sweep.interrupt``); the next call resumes.
    """
    on_start = (lambda p: progress("start", p)) if progress else None
    on_result = (lambda r: progress("done", r)) if progress else None
    if analyse:
        # Imported now, not after the runs: while the first runs start (the fork server preloading torch on the
        # other core) this costs no wall time; after them it cost ~6 s of the demo's.
        import robustft.analysis.findings  # noqa: F401
        import robustft.report  # noqa: F401
    started = time.monotonic()
    if plan.study is not None:
        results = run_study(plan.study, plan.output_dir, fixed=plan.fixed, executor=executor, jobs=plan.jobs,
                            ray_address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                            progress=progress, storage=storage)
    else:
        results = run_sweep(plan.config, plan.grid, fixed=plan.fixed, output_dir=plan.output_dir, executor=executor,
                            jobs=plan.jobs, ray_address=ray_address, cpus_per_run=cpus_per_run,
                            gpus_per_run=gpus_per_run, on_start=on_start, on_result=on_result,
                            resolved=(plan.points, plan.configs, plan.output_dir), storage=storage)
    wall = time.monotonic() - started
    result = StudyResult(plan.name, plan.output_dir, results, [], [], None, None, wall, 0.0, plan.jobs, executor)
    done = [Path(r.path) for r in results if r.status not in (STATUS_FAILED, STATUS_RUNNING)]
    if analyse and done:
        _analyse(plan, result, done, title or f"robustft study {plan.name}",
                 group_by or ("label" if plan.study is not None else "run"))
    return result


def _analyse(plan: StudyPlan, result: StudyResult, done: list[Path], title: str, group_by: str) -> None:
    """Fills ``result``'s runs, findings, cpu_seconds, findings_file and report."""
    from robustft.analysis.findings import findings
    from robustft.report import build_report
    from robustft.report.html import describe
    from robustft.runs import load_runs

    runs = load_runs(done)
    # CPU time of the runs: on a shared machine wall time says little, CPU seconds / cores estimates the wall time
    # the same study takes on an idle one. Each run records its own (summary.json: cpu_seconds), which also counts
    # Ray workers, who are no children of this process; runs skipped as finished earlier are not counted.
    finished_now = {r.name for r in result.results if r.status == STATUS_FINISHED}
    result.cpu_seconds = sum(float((run.summary or {}).get("cpu_seconds") or 0.0)
                             for run in runs if run.name in finished_now)
    if plan.study is not None:
        arms = {arm.name: arm for arm in plan.study.arms}
        for run in runs:
            arm = arms.get(run.name)
            run.labels = {**describe(run.config), "label": arm.label if arm else run.name,
                          "paper": arm.paper if arm else ""}
    result.runs = runs
    result.findings = findings(runs)
    result.findings_file = _write_findings(plan.output_dir / "findings.json", result)
    # A set of arms: each arm its own frontier under its label (paper A: the strategy, paper B: the schedule;
    # grouping by strategy would merge all of paper B's schedules, which are all full fine-tuning, into one).
    result.report = build_report(runs, plan.output_dir / "report", title=title, group_by=group_by,
                                 found=result.findings)


def _write_findings(path: Path, result: StudyResult) -> Path:
    from robustft.runs.metrics_file import atomic_write_text

    payload = {"study": result.name, "wall_seconds": round(result.wall_seconds, 1),
               "cpu_seconds": round(result.cpu_seconds, 1), "jobs": result.jobs, "executor": result.executor,
               "findings": [f.as_dict() for f in result.findings]}
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    return path


def study(spec: Study | str | Path, output_dir: str | Path | None = None, *,
          grid: Mapping[str, Sequence[str]] | None = None, seeds: int | None = None, overrides: Sequence[str] = (),
          executor: str = "local", jobs: int | None = None, ray_address: str | None = None,
          cpus_per_run: float = 1, gpus_per_run: float = 0, storage: str | None = None,
          progress: Callable[[str, Any], None] | None = None, title: str | None = None,
          group_by: str | None = None) -> StudyResult:
    """Runs a study and writes its findings and report: :func:`plan_study` then :func:`run_plan`.

    ``robustft.study("paper-b", "runs/paper-b")`` runs paper B's embedded study; ``robustft.study("configs/x.yaml",
    "runs/x", grid={"strategy.name": ["full", "lora"]}, seeds=3)`` a grid over one config. Every argument is
    :func:`plan_study`'s or :func:`run_plan`'s, which document each.

    Returns:
        The runs' outcomes, the analysed runs, the findings and the report's path (:class:`StudyResult`); a failed
        run does not raise (``result.failed`` lists them; the others are analysed).

    Raises:
        ConfigError: a bad spec or a run that does not validate, before anything runs.
        SweepInterrupted: a stop signal arrived; calling again resumes.
    """
    plan = plan_study(spec, output_dir, grid=grid, seeds=seeds, overrides=overrides, jobs=jobs)
    return run_plan(plan, executor=executor, ray_address=ray_address, cpus_per_run=cpus_per_run,
                    gpus_per_run=gpus_per_run, storage=storage, progress=progress, title=title, group_by=group_by)
