"""Resuming an interrupted ``robustft tune`` search: what each trial reported, rebuilt from its run directory.

Ray Tune's ``Tuner.restore`` brings back the trials (their status, config and last result) and the searcher, but
not the scheduler's state: the scheduler restored is the one pickled when the search started, with empty rungs.
Then ASHA would judge the trials still to run against each other only, as if the finished and early-stopped
trials had never reported, and let through trials the interrupted search would have stopped.
:class:`ResumableASHA` puts those trials' results back in the rungs when Ray adds them to the restored search,
from the trials' own ``metrics.jsonl`` (the values they reported, in the order they reported them).

Imported only where Ray Tune is installed (``robustft.sweep.tune`` imports it after checking).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler

from robustft.runs.records import record_key
from robustft.runs.run_dir import Run


def reported(run_dir: str | Path, metric: str, *, until: int | None = None) -> list[tuple[int, float, dict]]:
    """What a trial reported at each evaluation: ``[(step, epoch, {record key: value}), ...]`` by step.

    Args:
        run_dir: the trial's robustft run directory (none yet: an empty list).
        metric: the tuned record key; evaluations without it are left out (the trial reported nothing there).
        until: the last step to include (a resumed run recomputes what follows its last checkpoint).
    """
    path = Path(run_dir)
    if not (path / "metrics.jsonl").is_file():
        return []
    records = pd.DataFrame(Run(path).read_records())
    if records.empty:
        return []
    out = []
    for step, part in records.groupby("step", sort=True):
        if until is not None and step > until:
            break
        values = {record_key(row): row["value"] for row in part.to_dict("records")}
        if values.get(metric) is not None:
            out.append((int(step), float(part["epoch"].iloc[0]), values))
    return out


class ResumableASHA(ASHAScheduler):
    """Ray Tune's ASHA, whose rungs survive ``Tuner.restore``.

    A trial Ray adds in status TERMINATED is one restored from an interrupted search that ran to its budget or
    that ASHA stopped (new trials are added PENDING; unfinished and errored ones are resumed and report their
    history again themselves). Its reported history is replayed through the bracket exactly as the live
    results went (the decisions are ignored: the trial is over), so each rung holds what it held at the
    interruption.

    Args:
        trials_dir: ``<search>/trials``, one run directory per Ray trial id.
        metric_key: the tuned record key (``val/clean/accuracy``); the reported values are read under it.
        **kwargs: ``ASHAScheduler``'s (time_attr must be ``step`` or ``epoch``).
    """

    def __init__(self, trials_dir: str, metric_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trials_dir = str(trials_dir)
        self.metric_key = metric_key
        self.replayed: list[str] = []

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if trial.status != Trial.TERMINATED:
            return
        bracket = self._trial_info[trial.trial_id]
        for step, epoch, values in reported(Path(self.trials_dir) / trial.trial_id, self.metric_key):
            time = step if self._time_attr == "step" else epoch
            bracket.on_result(trial, time, self._metric_op * float(values[self.metric_key]))
        self.replayed.append(trial.trial_id)
