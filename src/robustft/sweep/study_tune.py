"""``robustft reproduce ... --tune``: an ASHA search per run before the study trains it, as paper B tuned lr / weight
decay for each configuration (Ray Tune ASHA on validation clean accuracy).

For every arm, ``robustft.sweep.tune.run_tune`` searches with ``robustft tune``'s settings from the arm's own
config and overrides (plus the study's fixed ones) into ``<study>/tune/<arm>/``, its trials on the same Ray
cluster the study uses (``ray_address``) with the same resources per trial as per run; the arm then trains with
the best values as overrides. Searches are resumable like ``robustft tune``: an unfinished one carries on, and one
that has written best.json for the same config and overrides is not run again (re-running ``reproduce --tune``
goes straight to the runs that are left).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustft.sweep.study import Study


def _finished(where: Path, config: Path, fixed: Sequence[str]) -> dict[str, Any] | None:
    """The best values of a search that finished in ``where`` with this config and these overrides, else None."""
    best, spec = where / "best.json", where / "tune.json"
    if not (best.is_file() and spec.is_file()):
        return None
    saved = json.loads(spec.read_text(encoding="utf-8"))
    if saved.get("config") != str(config) or saved.get("fixed") != list(fixed):
        return None  # another search: run_tune says so, with what differs
    return dict(json.loads(best.read_text(encoding="utf-8"))["values"])


def tune_study(study: Study, out: Path, *, fixed: Sequence[str] = (), ray_address: str | None = None,
               cpus_per_trial: float = 1, gpus_per_trial: float = 0, trials: int | None = None,
               on_status: Callable[[str], None] | None = None) -> Study:
    """Runs (or resumes) one ASHA search per arm and returns the study with each arm's best values as overrides.

    Args:
        study: the arms to tune.
        out: the study directory; searches go to ``out/tune/<arm name>/``.
        fixed: overrides applied to every arm (as ``run_study``'s).
        ray_address: the cluster the study runs on (None: ``run_tune``'s default, a local Ray instance).
        cpus_per_trial, gpus_per_trial: Ray resources of one trial.
        trials: trials per search (None: ``robustft tune``'s default).
        on_status: called with one line per search (started, resumed or reused).

    Raises:
        SearchInterrupted: a search was stopped; re-running the same command resumes it.
        RobustftError, ConfigError: as ``run_tune``.
    """
    from robustft.sweep.tune import run_tune

    say = on_status or (lambda line: None)
    tuned = []
    for arm in study.arms:
        where = out / "tune" / arm.name
        overrides = [*arm.overrides, *fixed]
        values = _finished(where, arm.config, overrides)
        if values is None:
            options: dict[str, Any] = {"trials": trials} if trials is not None else {}
            result = run_tune(arm.config, fixed=overrides, output_dir=where, address=ray_address,
                              cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, on_status=say, **options)
            values = dict(result.best_values)
        else:
            say(f"tune: {arm.name}: reusing the finished search in {where}")
        best = tuple(f"{key}={value}" for key, value in values.items())
        tuned.append(dataclasses.replace(arm, overrides=(*arm.overrides, *best)))
    return dataclasses.replace(study, arms=tuple(tuned))
