"""What the cross-study claims (``findings_claims_a``, ``findings_claims_b``) share: the skip line, a task's measured
complexity, and a bootstrap over whole runs.

These claims compare studies with each other (two tasks, several eps_g, two backbones), so a set of runs often
cannot support them: such a claim is not dropped silently but returned as a ``Finding`` whose verdict is
:data:`SKIPPED` and whose ``why`` says which runs are needed (backbone, task, eps_g, strategy) and
``numbers["needs"]`` lists them. A skip is no verdict: ``VERDICTS`` stays the three a claim can be given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import Finding, get
from robustft.data.complexity import read_complexity_table, separability, task_complexity
from robustft.runs import Run

SKIPPED = "skipped"


def skip(key: str, claim: str, needs: Sequence[str], have: str, setting: str = "",
         runs: Sequence[Run] = (), numbers: dict[str, Any] | None = None) -> Finding:
    """The line for a claim the runs cannot support: ``needs`` names the runs that would (one item each), ``have``
    says what the runs offer instead; ``numbers`` adds what was measured on the way (e.g. why a premise fails)."""
    why = f"skipped: needs {'; and '.join(needs)}. Have: {have}."
    return Finding(key=key, paper=key[0], claim=claim, verdict=SKIPPED, why=why,
                   numbers={**(numbers or {}), "needs": list(needs), "have": have}, setting=setting,
                   runs=tuple(run.name for run in runs), method="not tested: the runs lack what the claim compares")


def probe_key(config: dict[str, Any]) -> str:
    """``model@size`` of a run's backbone as the complexity table keys it (``mobilenet_v2@32``)."""
    size = get(config, "model.image_size") or get(config, "data.image_size")
    return f"{get(config, 'model.name', '?')}@{size}"


def complexity(config: dict[str, Any], path: str | None = None) -> dict[str, Any] | None:
    """The measured complexity of a run's task for its backbone (``data/complexity.json``), or None when not measured.

    Returns:
        ``{"task", "probe", "classes", "accuracy", "balanced_accuracy", "separability", "n_test", "interval"}``:
        the frozen backbone's linear-probe accuracy (in [0, 1]) with its Wilson interval on ``n_test`` images, and
        its balanced accuracy rescaled so chance is 0 and perfect 1 (``separability``, comparable across class
        counts). Lower separability: less similar to upstream, the more complex task (paper A's ordering). The
        probe of the run's own ``model@size`` is preferred, else the same model at another size.
    """
    task = str(get(config, "data.name", "?")).split("@", 1)[0]
    entry = task_complexity(task, path)
    if not entry:
        return None
    probes = entry.get("probes", {})
    key = probe_key(config)
    model = key.split("@", 1)[0]
    chosen = key if key in probes else next((k for k in probes if k.split("@", 1)[0] == model), None)
    if chosen is None:
        return None
    probe = probes[chosen]
    n = int(probe.get("n_test") or 0)
    accuracy = float(probe["accuracy"])
    balanced = float(probe.get("balanced_accuracy", accuracy))
    interval = evidence.accuracy(balanced, n) if n else None
    classes = int(entry["classes"])
    return {"task": task, "probe": chosen, "classes": classes, "accuracy": accuracy,
            "balanced_accuracy": balanced, "separability": separability(balanced, classes), "n_test": n,
            "interval": None if interval is None else [separability(interval.low, classes),
                                                       separability(interval.high, classes)]}


def measured_tasks(config: dict[str, Any], path: str | None = None) -> list[str]:
    """The tasks whose complexity is measured for the run's backbone, other than its own (for a skip line)."""
    model = probe_key(config).split("@", 1)[0]
    own = str(get(config, "data.name", "?")).split("@", 1)[0]
    return [name for name, entry in read_complexity_table(path)["datasets"].items()
            if name != own and any(k.split("@", 1)[0] == model for k in entry.get("probes", {}))]


def run_bootstrap(clusters: int, statistic: Callable[[np.ndarray], float], n_boot: int, seed: int,
                  strata: Sequence[Any] | None = None) -> np.ndarray:
    """``statistic(indices)`` over ``n_boot`` resamples of ``clusters`` whole runs (with replacement; within each
    stratum when ``strata`` gives one label per run, so every stratum keeps its size); NaN draws are kept for the
    caller's ``findings_paired.percentile`` to ignore. Runs, not evaluations, are resampled: the evaluations of one
    run are not independent."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(strata if strata is not None else [0] * clusters, dtype=object)
    groups = [np.flatnonzero(labels == label) for label in dict.fromkeys(labels.tolist())]
    out = np.empty(n_boot)
    for b in range(n_boot):
        draw = np.concatenate([rng.choice(group, size=group.size, replace=True) for group in groups])
        out[b] = statistic(draw)
    return out


def in_unit(fields: dict[str, Any], unit: str) -> dict[str, Any]:
    """``evidence_fields``' output with its ``resolve`` counted in ``unit`` (``strategies``, ``runs``): it says
    ``seeds`` for any interval from replicates, which here are other things."""
    if fields.get("resolve") and fields["resolve"]["unit"] == "seeds":
        fields = {**fields, "resolve": {**fields["resolve"], "unit": unit}}
    return fields


def signed(estimate: Estimate, scale: float = 100, digits: int = 1, unit: str = "") -> str:
    """``+2.0 [-6.0, +10.7]`` (a signed contrast with its interval, times ``scale``)."""
    f = f"{{:+.{digits}f}}"
    return f"{f.format(scale * estimate.value)}{unit} [{f.format(scale * estimate.low)}, " \
           f"{f.format(scale * estimate.high)}]"
