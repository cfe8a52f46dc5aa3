"""Hyper-parameter search as paper B tunes before comparing schedules: ASHA on Ray Tune, resumable.

``robustft tune configs/paper_b_embedded/scheduled.yaml`` searches what its protocol names (``tune_protocol``:
``paper-b``, the default for an adversarial objective, samples the backbone's and the head's lr and weight decay
and minimises the validation adversarial loss; ``clean-accuracy`` samples optim.lr and optim.weight_decay and
maximises validation clean accuracy; ``--search`` / ``--metric`` / ``--reduction-factor`` replace a protocol's
part), trains each trial with the config's budget (``--epochs`` / ``--steps`` set a per-trial budget instead) and
reports the tuned metric to Ray Tune at every evaluation, so that Ray Tune's ``ASHAScheduler`` stops the trials
that are behind at each rung (grace period x reduction factor^k, in epochs when the budget is in epochs, else in
steps). Trials run with what makes the metric recorded (``tune_space.metric_overrides``: e.g. the validation split
that paper A's configs hold out but do not evaluate, or ``eval.loss``); best.yaml does not carry it. The first
trial is the config's own values (the starting point the search must beat; a head lr / decay left unset starts at
the body's); the others are drawn at random (seeded). The search space is ``tune_space``'s; what a finished search
writes, ``tune_results``'s.

Output directory (default ``<output_dir>/<name>-tune``)::

    tune.json    what was searched (a re-run with other settings is refused rather than mixed in)
    ray/         Ray Tune's experiment state: a re-run restores it and carries on (``Tuner.restore``); ASHA's
                 rungs are refilled from the ended trials (``tune_resume``: Ray restores no scheduler state)
    trials/      one robustft run directory per trial (a trial cut short resumes from its last checkpoint)
    trials.csv   one row per trial: values, last step, metric
    best.json    the best values and metric; best.yaml: the base config with them, for train / sweep

The best trial is the one with the highest (``mode=min``: lowest) metric at its last evaluation among the trials
that ran to the full budget (paper B keeps the last checkpoint, so a value seen only mid-training is not what the
tuned config delivers); when ASHA stopped every trial, among all of them. A search stopped by Ctrl-C (Ray Tune
saves its state and returns) raises :class:`SearchInterrupted` and writes no best.json / best.yaml.
Follows Ray Tune's documented function-trainable API; a trial's resources are ``cpus_per_trial`` CPUs and
``gpus_per_trial`` (fractions allowed) GPUs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robustft.config.files import load_config
from robustft.config.schema import from_dict, to_dict
from robustft.errors import ConfigError, RobustftError
from robustft.runs.metrics_file import atomic_write_text

# Modules, not their names: this module re-exports nothing (an old ``from robustft.sweep.tune import
# Distribution`` fails, as the CHANGELOG says).
from robustft.sweep import tune_results, tune_space
from robustft.sweep.tune_protocol import START_FALLBACK, protocol

__all__ = ["DEFAULT_METRIC", "SearchInterrupted", "run_tune"]

DEFAULT_METRIC = "val/clean/accuracy"  # the clean-accuracy protocol's

log = logging.getLogger(__name__)


class SearchInterrupted(KeyboardInterrupt):
    """The search was stopped (Ctrl-C / SIGINT) before every trial ended; Ray Tune saved its state, and running
    the same search again resumes it. ``str()`` says how far it got and how to resume."""


def _budget_overrides(epochs: int | None, steps: int | None) -> list[str]:
    if epochs is not None and steps is not None:
        raise ConfigError("give one per-trial budget: --epochs N or --steps N, not both.")
    for value, name in ((epochs, "epochs"), (steps, "steps")):
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}.")
    if epochs is not None:
        return [f"train.epochs={epochs}"]
    return [f"train.steps={steps}"] if steps is not None else []


def _trial(params: dict[str, Any], *, base: dict[str, Any], budget: list[str], trials_dir: str, metric: str,
           threads: int) -> None:
    """One Ray Tune trial: a robustft run with ``params`` that reports ``metric`` at every evaluation."""
    import torch
    from ray import tune

    from robustft.runs.checkpoints import load_checkpoint
    from robustft.sweep.tune_resume import reported
    from robustft.training.trainer import build_trainer  # torch: in the trial, not when tune.py is imported

    torch.set_num_threads(max(1, threads))
    run_dir = Path(trials_dir) / tune.get_context().get_trial_id()

    def report(step: int, epoch: float, values: Mapping[str, Any]) -> None:
        value = values.get(metric)
        if value is not None:
            tune.report({tune_results.SCORE: float(value), "step": int(step), "epoch": float(epoch)})

    if (run_dir / "config.yaml").is_file():
        # A trial cut short (the search was interrupted): report what it has up to its last checkpoint (the
        # trainer recomputes what follows), then carry on from there; a finished one only reports.
        last = run_dir / "checkpoints" / "last.pt"
        done = (run_dir / "summary.json").is_file()
        until = None if done else int(load_checkpoint(last)["step"]) if last.is_file() else -1
        for step, epoch, values in reported(run_dir, metric, until=until):
            report(step, epoch, values)
        if done:
            return
        trainer = build_trainer(None, resume=run_dir, quiet=True)  # no checkpoint yet: starts clean
    else:
        overrides = [*budget, *(f"{k}={'null' if v is None else v}" for k, v in params.items()), f"name={run_dir.name}",
                     f"output_dir={run_dir.parent}"]
        trainer = build_trainer(from_dict(base), overrides, quiet=True)
    # The last evaluation is reported only once the run is complete (final checkpoint and summary.json written):
    # ASHA may stop a trial at its last rung (the budget is a rung too), which would cut the run short of its
    # summary (seen in the interrupted-search test: a trial stopped at step 16 of 16 had none).
    last: list[tuple[int, float, Mapping[str, Any]]] = []

    def report_live(step: int, epoch: float, values: Mapping[str, Any]) -> None:
        if step >= trainer.total_steps:
            last.append((step, epoch, values))
        else:
            report(step, epoch, values)

    trainer.on_evaluation = report_live
    trainer.execute()
    for step, epoch, values in last:
        report(step, epoch, values)


def _start_ray(address: str | None, cpus: int | None) -> None:
    import ray

    if ray.is_initialized():
        return
    # Trials find their files by absolute paths; keep them in the directory the user started from.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # "local": a new instance of our own. ray.init() without an address would join a cluster someone
        # started on this machine with `ray start` (and refuse num_cpus); --address auto asks for that.
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def run_tune(config: str | Path, search: Mapping[str, tune_space.Distribution] | None = None, *,
             fixed: Sequence[str] = (), output_dir: str | Path | None = None, trials: int = 8,
             metric: str | None = None, mode: str | None = None, epochs: int | None = None, steps: int | None = None,
             grace_period: int | None = None, reduction_factor: int | None = None, address: str | None = None,
             cpus: int | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
             seed: int = 0, on_status: Callable[[str], None] | None = None,
             protocol_name: str | None = None) -> tune_results.TuneResult:
    """Runs (or resumes) an ASHA search and writes trials.csv, best.json and best.yaml.

    Args:
        config: the base YAML config.
        search: ``{dotted key: Distribution}`` (None: the protocol's).
        fixed: overrides applied to every trial and to best.yaml.
        output_dir: where everything goes (default ``<output_dir>/<name>-tune`` of the config).
        trials: trials in all (the config's own values first).
        metric, mode: the record key tuned (``val/apgd-ce/loss@4/255``) and ``max`` or ``min`` (None: the
            protocol's; a metric given without a mode is maximised unless it is a loss).
        epochs, steps: a per-trial budget (default: the config's train length); not written to best.yaml.
        grace_period: ASHA's first rung, in epochs or steps like the budget (default 1 epoch, or an eighth of the
            steps).
        reduction_factor: ASHA keeps the best 1 / reduction_factor of the trials at each rung (None: the
            protocol's).
        address: a Ray cluster (None: ``RAY_ADDRESS`` if set, else a new local Ray instance with ``cpus`` CPUs,
            default all).
        cpus_per_trial, gpus_per_trial: Ray resources of one trial (fractional GPUs share a device).
        seed: the sampler's seed.
        on_status: called with one line when the search starts or resumes (default: logged at INFO).
        protocol_name: ``paper-b`` or ``clean-accuracy`` (None: paper-b for an adversarial objective, else
            clean-accuracy; see ``robustft.sweep.tune_protocol``).

    Raises:
        ConfigError: a bad search space, metric, budget or option, before Ray starts.
        RobustftError: Ray is not installed, or output_dir holds a different search.
        SearchInterrupted: stopped (SIGINT) before every trial ended; trials.csv holds the trials so far, best.json
            and best.yaml are not written (a re-run resumes and writes them).
    """
    status = on_status or log.info
    preset = protocol(protocol_name, load_config(config, list(fixed)))
    search = dict(search) if search else tune_space.parse_search(preset.search)
    if metric is None:
        metric, mode = preset.metric, mode or preset.mode
    mode = mode or ("min" if metric.split("@")[0].endswith("/loss") else "max")
    reduction_factor = preset.reduction_factor if reduction_factor is None else reduction_factor
    if mode not in ("max", "min"):
        raise ConfigError(f"--mode must be max or min, got {mode!r}.")
    if trials < 1 or reduction_factor < 2:
        raise ConfigError("--trials must be at least 1 and --reduction-factor at least 2.")
    budget = _budget_overrides(epochs, steps)
    base = tune_space.check_search(config, search, fixed, metric)
    # trials only: best.yaml is the config as the user wrote it
    made_recorded = tune_space.metric_overrides(base, metric)
    trial_cfg = load_config(config, [*fixed, *budget, *made_recorded])
    by_epochs = trial_cfg.train.steps is None
    time_attr, max_t = ("epoch", int(trial_cfg.train.epochs)) if by_epochs else ("step", int(trial_cfg.train.steps))
    grace = grace_period if grace_period is not None else (1 if by_epochs else max(1, max_t // 8))
    if not 1 <= grace <= max_t:
        raise ConfigError(f"--grace-period {grace} must be between 1 and the budget ({max_t} {time_attr}s).")
    out = Path(output_dir) if output_dir is not None else Path(base.output_dir) / f"{base.name}-tune"
    out = out.resolve()
    spec = {"config": str(config), "search": {k: d.describe() for k, d in search.items()},
            "fixed": list(fixed), "budget": budget, "metric": metric, "mode": mode, "trials": trials,
            "grace_period": grace, "reduction_factor": reduction_factor, "seed": seed}
    _check_same_search(out, spec)
    try:
        from ray import tune
        from ray.tune.search import BasicVariantGenerator

        from robustft.sweep.tune_resume import ResumableASHA
    except ImportError:
        raise RobustftError("robustft tune needs Ray Tune: pip install 'robustft[ray]'.") from None

    base_dict = to_dict(trial_cfg)
    start = _start_point(base_dict, list(search))
    trainable = tune.with_resources(
        tune.with_parameters(_trial, base=base_dict, budget=budget, trials_dir=str(out / "trials"), metric=metric,
                             threads=max(1, int(cpus_per_trial))),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    _start_ray(address, cpus)
    experiment = out / "ray"
    if tune.Tuner.can_restore(str(experiment)):
        # Unfinished trials resume; errored ones too (a Ctrl-C reaches the trials' processes as well, and
        # fails the trials that were training). Their run directories hold where each one was.
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
        status(f"tune: resuming the search in {out}: {_ended(tuner)} of {trials} trials had ended (kept, not run "
               "again); the others continue from their last checkpoint")
    else:
        status(f"tune: starting a search of {trials} trials in {out}: protocol {preset.name}, {mode}imising "
               f"{metric} over {', '.join(search)}, ASHA reduction factor {reduction_factor}"
               + (f"; trials also set {' '.join(made_recorded)}" if made_recorded else ""))
        # stop_last_trials=False: a trial at the budget ends by itself and writes its summary.json (Ray's default
        # stops it at its last report, before the trainer finishes); the rungs and early stops are the same.
        scheduler = ResumableASHA(str(out / "trials"), metric, time_attr=time_attr, max_t=max_t,
                                  grace_period=grace, reduction_factor=reduction_factor, stop_last_trials=False)
        tuner = tune.Tuner(
            trainable, param_space={key: dist.to_ray() for key, dist in search.items()},
            # reuse_actors: a worker that has imported torch and robustft takes the next trial (seconds per trial)
            tune_config=tune.TuneConfig(metric=tune_results.SCORE, mode=mode, scheduler=scheduler,
                                        num_samples=trials, reuse_actors=True,
                                        search_alg=BasicVariantGenerator(points_to_evaluate=[start],
                                                                         random_state=seed)),
            run_config=tune.RunConfig(name=experiment.name, storage_path=str(out), verbose=0))
    grid = tuner.fit()
    # Ray Tune returns normally after a SIGINT, with the experiment state saved (and the trials it stopped on
    # the way out counted as terminated): a trial ended if its last result is ``done`` (run to the budget or
    # stopped by ASHA) or it failed. A partial search must not write a best.yaml that looks final.
    ended = sum(1 for result in grid if (result.metrics or {}).get("done") or result.error is not None)
    if ended < trials:
        tune_results.write_trials(out, grid, list(search), time_attr, max_t)
        raise SearchInterrupted(f"the search was interrupted with {ended} of {trials} trials ended; its state is "
                                f"saved in {out}: run the same command again to resume it.")
    return tune_results.write_results(out, grid, list(search), config, fixed, base.name, time_attr, max_t, mode,
                                      metric)


def _ended(tuner: Any) -> str:
    """How many trials of a restored search had ended (run to the budget, stopped by ASHA or failed)."""
    try:
        saved = tuner.get_results()  # the experiment state as it was saved
        return str(saved.num_terminated + saved.num_errors)
    except Exception:  # noqa: BLE001  an unreadable state is Ray's to report when it resumes; the count is a courtesy
        return "?"


def _start_point(base: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The first trial: the config's own value of each searched key; a key it leaves unset (``optim.head_lr``:
    the head trains at the body's lr) starts from the value it falls back to in training."""
    return {key: _get(base, key) if _get(base, key) is not None else _get(base, START_FALLBACK.get(key, key))
            for key in keys}


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _check_same_search(out: Path, spec: dict[str, Any]) -> None:
    path = out / "tune.json"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != json.loads(json.dumps(spec)):
            given = json.loads(json.dumps(spec))
            changed = "; ".join(f"{k}: {saved.get(k)!r} there, {given[k]!r} now" for k in sorted(given)
                                if saved.get(k) != given[k])
            raise RobustftError(f"{out} holds a search with other settings ({changed}); a search is resumed only "
                                "with the settings it started with. Re-run with those to resume it, or pick another "
                                "--output-dir for the new search.")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(spec, indent=2) + "\n")
