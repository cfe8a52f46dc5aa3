"""Studies: the papers' comparisons as sets of runs, one shipped config file per strategy or schedule.

A :class:`Study` lists its arms (a config file + overrides each, so every strategy keeps its own learning rate and
schedule); :func:`run_study` resolves and validates every arm's config before anything runs, then executes them
through the sweep machinery (``robustft.sweep.run_points``: local subprocesses ``jobs`` at a time, or Ray), so a
study is resumable exactly like a sweep (finished runs are skipped, killed ones resumed).

Studies shipped:

- ``demo_study()``: what ``robustft demo`` runs, from ``configs/demo/`` (paper A's seven strategies and paper B's
  reference / RFT-fix / Epsilon-Scheduling on the embedded backbone and data); ``quick=True`` is the same pipeline
  on less data and fewer steps, for CI.
- ``paper_study("paper-a" | "paper-b", "embedded" | "full", selection)``: ``robustft reproduce``, from
  ``configs/paper_{a,b}[_embedded]/``; paper B's standard fine-tuning reference is its RFT-fix config without the
  perturbation (``objective.name=standard eps.schedule=zero``), i.e. the same run but for what is being tested.
  At embedded scale the study is every claim's runs (``robustft.sweep.embedded_grid``). At full scale the study is
  the paper's whole grid (``robustft.sweep.paper_grid``: models x datasets x eps x strategies or schedules), or the
  part of it ``selection`` names.

Config files come from the repository's ``configs/`` when run from a checkout, else from the copy packaged in
``robustft/sweep/study_configs/`` (the demo's only; a test keeps the two identical).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustft.config.files import load_config
from robustft.config.schema import to_dict
from robustft.errors import ConfigError, RobustftError
from robustft.sweep.embedded_grid import embedded_runs
from robustft.sweep.grid import SweepPoint
from robustft.sweep.jobs import default_jobs
from robustft.sweep.paper_grid import SCHEDULE_LABELS, grid_runs
from robustft.sweep.runner import run_points
from robustft.sweep.study_progress import relative_cost

PAPER_A_STRATEGIES = ("full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter")
# The demo's paper B arms and how the summary names them (paper B's standard fine-tuning reference is made out of
# its RFT-fix config by robustft.sweep.paper_grid.REFERENCE_OVERRIDES).
DEMO_SCHEDULES = SCHEDULE_LABELS

# --quick: the same pipeline and configs on less data, fewer steps and smaller evaluation subsets, so that the
# whole study takes about 130 CPU-seconds (70 s on 2 idle cores; CI runs it). Its numbers are too noisy to decide
# most findings; they exist so that every row, every finding and the report are exercised end to end.
QUICK_OVERRIDES: dict[str, tuple[str, ...]] = {
    "A": ("data.limit_train=640", "data.limit_test=200", "train.steps=30", "eval.schedule=every:15",
          "eval.subset=64"),
    "B": ("data.limit_train=256", "data.limit_val=64", "data.limit_test=100", "train.epochs=2", "eval.subset=48",
          "eval.schedule=every:4", "eval.curve=8/255", "eps.value=8/255"),
}


@dataclass(frozen=True)
class Arm:
    """One run of a study.

    Attributes:
        name: the run's directory name inside the study directory (``a-full``, ``b-fix``).
        paper: ``"A"`` or ``"B"``.
        label: how summaries name it (the strategy, or the schedule).
        config: the YAML config file.
        overrides: dotted overrides on top of the file.
        axes: a full-scale grid run's key on each grid axis (``(("models", "swin-b"), ...)``); empty otherwise.
    """

    name: str
    paper: str
    label: str
    config: Path
    overrides: tuple[str, ...] = ()
    axes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Study:
    """A named set of arms."""

    name: str
    arms: tuple[Arm, ...]


def shipped_configs(folder: str) -> Path:
    """``configs/<folder>`` of a repository checkout, else the packaged copy ``robustft/sweep/study_configs/<folder>``.

    Raises:
        RobustftError: neither exists (a pip install has the demo's configs only).
    """
    checkout = Path(__file__).resolve().parents[3] / "configs" / folder
    if checkout.is_dir():
        return checkout
    packaged = Path(__file__).resolve().parent / "study_configs" / folder
    if packaged.is_dir():
        return packaged
    raise RobustftError(f"the config folder {folder!r} is not installed with the package; clone the repository "
                        "(git clone ... && cd robustft) and run the command from it, or pass your own configs to "
                        "`robustft sweep`.")


def demo_study(quick: bool = False) -> Study:
    """``robustft demo``: paper A's seven strategies and paper B's three arms on the embedded default."""
    root = shipped_configs("demo")
    arms = [Arm(f"a-{s}", "A", s, root / "paper_a" / f"{s}.yaml", QUICK_OVERRIDES["A"] if quick else ())
            for s in PAPER_A_STRATEGIES]
    arms += [Arm(f"b-{s}", "B", label, root / "paper_b" / f"{s}.yaml", QUICK_OVERRIDES["B"] if quick else ())
             for s, label in DEMO_SCHEDULES.items()]
    return Study("demo-quick" if quick else "demo", tuple(arms))


def paper_study(paper: str, scale: str = "embedded",
                selection: Mapping[str, Sequence[str] | None] | None = None) -> Study:
    """``robustft reproduce``: a paper's grid of strategies (paper A) or schedules (paper B), at either scale.

    Args:
        paper: ``paper-a`` or ``paper-b``.
        scale: ``embedded`` (offline, 2 CPU cores, under 45 minutes: every claim's runs, both embedded backbones x
            two tasks x the strategies or the eps_g grid and schedules, ``robustft.sweep.embedded_grid``) or
            ``full`` (the paper's grid of backbones, datasets, eps and strategies or schedules; online, GPU).
        selection: the part of the grid to run, axis -> keys (``{"models": ["swin-b"]}``; see
            ``robustft.sweep.paper_grid`` and ``embedded_grid``); None: the paper's main grid.

    Raises:
        ConfigError: unknown paper, scale or selected value.
    """
    if paper not in ("paper-a", "paper-b"):
        raise ConfigError(f"unknown paper {paper!r}; use paper-a or paper-b.")
    if scale not in ("embedded", "full"):
        raise ConfigError(f"unknown scale {scale!r}; use embedded or full.")
    folder = paper.replace("-", "_") + ("_embedded" if scale == "embedded" else "")
    root = shipped_configs(folder)
    if scale == "full":
        runs = grid_runs(paper, root, selection)
        arms = [Arm(r.name, "A" if paper == "paper-a" else "B", r.label, r.config, r.overrides, r.axes) for r in runs]
        return Study(f"{paper}-{scale}", tuple(arms))
    runs = embedded_runs(paper, root, selection)  # both backbones x two tasks x the claims' axes (embedded_grid)
    arms = [Arm(r.name, "A" if paper == "paper-a" else "B", r.label, r.config, r.overrides, r.axes) for r in runs]
    return Study(f"{paper}-{scale}", tuple(arms))


def resolve_study(study: Study, out: Path, fixed: Sequence[str] = ()) -> tuple[list[Any], list[dict[str, Any]]]:
    """Every arm's full config (named after the arm, written under ``out``), validated before anything runs.

    Returns:
        (sweep points, config dicts), in the study's order.

    Raises:
        ConfigError: an arm whose config does not validate (the message names the file and the override).
    """
    points, configs = [], []
    for arm in study.arms:
        overrides = (*arm.overrides, *fixed)
        cfg = load_config(arm.config, [*overrides, f"name={arm.name}", f"output_dir={out}"])
        points.append(SweepPoint(arm.name, tuple(overrides)))
        configs.append(to_dict(cfg))
    return points, configs


def run_study(study: Study, out: Path, *, fixed: Sequence[str] = (), executor: str = "local",
              jobs: int | None = None, ray_address: str | None = None, cpus_per_run: float = 1,
              gpus_per_run: float = 0, progress: Callable[[str, Any], None] | None = None,
              storage: str | None = None) -> list[Any]:
    """Runs every arm (resumable: finished runs are skipped) and returns the sweep's ``PointResult`` per arm.

    Args:
        study: what to run.
        out: the study directory (one run directory per arm, ``sweep.json``, ``logs/``).
        fixed: overrides applied to every arm.
        executor: ``local`` or ``ray``.
        jobs: local runs at a time (default :func:`default_jobs`), CPU threads divided between them.
        ray_address: Ray cluster address (None: start or join a local instance).
        cpus_per_run, gpus_per_run: Ray resources per run.
        progress: called as ``progress("start", point)`` and ``progress("done", result)``.
        storage: Ray only: a store URI every node reaches (``s3://...``, ``file:///shared/...``) the runs are synced
            to and resumed from when a node dies (``run_points``); finished runs are copied into ``out``.
    """
    points, configs = resolve_study(study, out, fixed)
    jobs = default_jobs(configs) if jobs is None else jobs
    # Longest expected runs first (adversarial before standard; ties keep the study's order): the parallel slots
    # then finish close together instead of one slow run starting last and running alone.
    order = sorted(range(len(points)), key=lambda i: -relative_cost(configs[i]))
    results = run_points([points[i] for i in order], [configs[i] for i in order], out, executor=executor,
                         jobs=jobs, ray_address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                         on_start=(lambda p: progress("start", p)) if progress else None,
                         on_result=(lambda r: progress("done", r)) if progress else None, storage=storage,
                         manifest={"study": study.name, "fixed": list(fixed),
                                   "arms": [{"name": a.name, "paper": a.paper, "label": a.label,
                                             "config": str(a.config)} for a in study.arms]})
    by_name = {r.name: r for r in results}
    return [by_name[p.name] for p in points]
