"""The papers' findings, tested on a set of runs: ``findings(runs) -> list[Finding]``.

Each finding states a claim of paper A or paper B, the numbers measured on the runs, and a verdict decided
from those numbers' uncertainty (``robustft.analysis.evidence``): **holds** when the contrast the claim makes is
resolved in its favour, **does not hold** when it is resolved against it, **inconclusive** when the interval
straddles zero. Nothing is canned: a finding is emitted only when the runs contain what it needs, and its
sentence is written from the numbers (where a claim does not hold, it says how this setting differs from the
paper's).

The intervals are paired where the runs allow it: runs evaluated on the same seeded images are compared image by
image from their per-image outcomes (``findings_paired``: Newcombe's paired interval, a bootstrap over the images,
two levels with several seeds), and a claim that picks a maximum accounts for the pick (``simultaneous``). Runs
without outcomes, or sharing no evaluated images, fall back to the unpaired intervals and say so. Each finding
states its ``method`` and ``n``, the ``interval`` its verdict rests on, and for an inconclusive one the sample size
that would ``resolve`` it. ``findings(runs, method="unpaired")`` computes the unpaired ones on purpose.

Which runs play which role is read from their resolved configs, so any set of run directories works (the demo,
``robustft reproduce``, a user's own sweep):

- paper A study: standard-objective runs that agree on everything but strategy, optimiser and seed, with at
  least two strategies; standard fine-tuning is the ``full`` strategy;
- paper B study: adversarial runs that agree on everything but the eps schedule and seed, with ``constant``
  (RFT-fix) and ``scheduled`` (Epsilon-Scheduling) schedules; the reference is a standard-objective run equal to
  them but for objective and eps (or the run named by ``detect.reference_run``);
- several runs of one arm differing only in seed are replicates: intervals then come from the seeds' spread;
- the cross-study claims (``findings_claims``) compare paper A studies equal but for the task, RFT-fix runs equal but
  for eps_g, or equal but for backbone and task; a claim the runs cannot support is returned with the verdict
  ``SKIPPED`` and a line saying which runs it needs, whenever the runs hold a study of that claim's paper.
"""

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robustft.analysis.findings_base import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, VERDICTS, Finding, get
from robustft.analysis.findings_claims import claims_a, claims_b, study_claims_a, study_claims_b
from robustft.analysis.findings_claims_base import SKIPPED
from robustft.analysis.findings_paired import N_BOOT, PAIRED, UNPAIRED, Inference
from robustft.analysis.findings_paper_a import paper_a_findings
from robustft.analysis.findings_paper_b import paper_b_findings
from robustft.runs import Run, load_runs

__all__ = ["DOES_NOT_HOLD", "HOLDS", "INCONCLUSIVE", "PAIRED", "SKIPPED", "UNPAIRED", "VERDICTS", "Finding",
           "findings", "paper_b_run_names"]

# Keys that do not change what a run measures (where it is written, how it is logged), and the keys each study
# varies between its arms; configs equal outside them are comparable.
_BOOKKEEPING = ("name", "output_dir", "seed", "device", "checkpoint", "logging", "detect")
_PAPER_A_VARIED = ("strategy", "optim")
_PAPER_B_VARIED = ("eps.schedule", "eps.t1", "eps.t2", "eps.per", "eps.patience", "eps.tolerance")
_REFERENCE_VARIED = ("objective", "eps")


def findings(runs: str | Path | Iterable[str | Path | Run], method: str = PAIRED, n_boot: int = N_BOOT
             ) -> list[Finding]:
    """Tests paper A's and paper B's claims on ``runs``; returns the findings the runs support, paper A first.

    Args:
        runs: what ``robustft report`` takes (a study's folder, ``runs/``, run directories, globs; loaded by the
            one loader, ``robustft.runs.load_runs``, which names two runs of one folder name apart), or
            ``robustft.runs.Run`` objects (loaded, or held in memory), or a list mixing both.
        method: ``"paired"`` (default): intervals from the runs' per-image outcomes, comparing runs on the images
            they share (``findings_paired``), falling back to the unpaired ones, and saying so, where the runs
            cannot be paired; ``"unpaired"``: always the unpaired ones (Wilson bounds, seeds' spread), e.g. to
            measure what pairing gains on the same runs.
        n_boot: bootstrap draws of the paired intervals (>= 100).

    Raises:
        RunNotFoundError: a path holds no run directory.
        ConfigError: an unknown method or too few draws.
        TypeError: an item is neither a path nor a ``Run``.
    """
    inference = Inference(method, int(n_boot))
    loaded = _read_paths(runs)
    for run in loaded:  # series are kept for one call: a run held in memory may have been changed since the last
        run.memo.clear()
    out: list[Finding] = []
    a_groups = _paper_a_groups(loaded)
    a_labels = _group_labels([next(iter(arms.values()))[0].config for arms in a_groups], _PAPER_A_VARIED)
    for group, label in zip(a_groups, a_labels, strict=True):
        out.extend(_labelled([*paper_a_findings(group, inference), *study_claims_a(group, inference)], label))
    out.extend(claims_a(a_groups, lambda run: _without(run.config, (*_BOOKKEEPING, *_PAPER_A_VARIED, "data")),
                        inference))
    b_groups = _paper_b_groups(loaded)
    b_labels = _group_labels([fix[0].config for fix, _, _ in b_groups], _PAPER_B_VARIED)
    for (fix, scheduled, reference), label in zip(b_groups, b_labels, strict=True):
        out.extend(_labelled([*paper_b_findings(fix, scheduled, reference, inference),
                              *study_claims_b(fix, scheduled, inference)], label))
    out.extend(claims_b(loaded, len(b_groups), lambda run: _reference_runs(run, loaded), {
        # an eps_g grid moves the robust curve's end and the tracked eps with eps_g; the onset is clean accuracy's
        "eps": lambda run: _without(run.config, (*_BOOKKEEPING, "eps.value", "eval.curve", "eval.eps")),
        # a backbone or task brings its own recipe (image size, lr, epochs, evaluation steps: embedded_grid.py, and
        # paper B tuned each backbone's lr); each cell's gap is taken against its own reference with that recipe
        "cell": lambda run: _without(run.config, (*_BOOKKEEPING, "model", "data", "optim", "train",
                                                  "eval.schedule"))}, inference))
    return out


def _read_paths(runs: str | Path | Iterable[str | Path | Run]) -> list[Run]:
    """``runs`` with its paths loaded as ``robustft report`` loads them (all together, where the first one was)."""
    items = [runs] if isinstance(runs, (str, Path)) else list(runs)
    paths = [item for item in items if isinstance(item, (str, Path))]
    out: list[Run] = []
    for item in items:
        if isinstance(item, Run):
            out.append(item)
        elif not isinstance(item, (str, Path)):
            raise TypeError(f"findings take run directories (paths, globs, a study's folder) or robustft.runs.Run "
                            f"objects, not {type(item).__name__}; load runs with robustft.runs.load_runs(paths) or "
                            "build one in memory with Run(name=..., config=..., metrics=...).")
        elif paths:
            out.extend(load_runs(paths))
            paths = []
    return out


def paper_b_run_names(runs: Iterable[str | Path | Run]) -> set[str]:
    """The runs a paper B table is about: every run trained with a perturbing objective, and each standard run that
    is the reference of one (equal to it but for objective and eps, or named by its ``detect.reference_run``); not the
    standard runs of a paper A study reported beside them.

    Args:
        runs: as ``findings`` takes them.
    """
    loaded = _read_paths(runs)
    adversarial = [run for run in loaded if get(run.config, "objective.name", "standard") != "standard"]
    standard = [run for run in loaded if get(run.config, "objective.name", "standard") == "standard"]
    by_key: dict[str, list[str]] = {}
    for run in standard:  # keyed once: matching each adversarial run against every run is quadratic
        by_key.setdefault(_without(run.config, (*_BOOKKEEPING, *_REFERENCE_VARIED)), []).append(run.name)
    names = {run.name for run in adversarial}
    for run in adversarial:
        named = get(run.config, "detect.reference_run")
        if named:
            names |= {r.name for r in _named_reference(run.name, str(named), standard)}
        else:
            names |= set(by_key.get(_without(run.config, (*_BOOKKEEPING, *_REFERENCE_VARIED)), []))
    return names


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, default=str, sort_keys=True)
    return out


def _group_labels(configs: Sequence[Mapping[str, Any]], varied: Sequence[str]) -> list[str]:
    """For studies found side by side (e.g. a sweep over strategy x schedule gives one paper B study per
    strategy), the settings that tell them apart, ``strategy.name=bitfit``; empty when there is one study. Without
    it two findings of the same claim would show the same setting and a reader could not tell them apart."""
    if len(configs) < 2:
        return [""] * len(configs)
    flats = [_flat(c) for c in configs]
    ignored = (*_BOOKKEEPING, *varied)
    keys = sorted(k for k in set().union(*flats) if not any(k == i or k.startswith(i + ".") for i in ignored))
    differing = [k for k in keys if len({f.get(k) for f in flats}) > 1]
    return [", ".join(f"{k}={json.loads(f[k]) if k in f else '-'}" for k in differing) for f in flats]


def _labelled(found: list[Finding], label: str) -> list[Finding]:
    return [dataclasses.replace(f, setting=f"{f.setting}; {label}" if f.setting else label) if label else f
            for f in found]


def _without(config: Mapping[str, Any], dotted_keys: Sequence[str]) -> str:
    """The config minus ``dotted_keys``, as canonical JSON (equal strings: comparable runs)."""
    tree = json.loads(json.dumps(config, default=str))
    for dotted in dotted_keys:
        *parents, last = dotted.split(".")
        node = tree
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return json.dumps(tree, sort_keys=True)


def _paper_a_groups(runs: Sequence[Run]) -> list[dict[str, list[Run]]]:
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        if get(run.config, "objective.name", "standard") != "standard":
            continue
        key = _without(run.config, (*_BOOKKEEPING, *_PAPER_A_VARIED))
        groups.setdefault(key, {}).setdefault(str(get(run.config, "strategy.name", "?")), []).append(run)
    return [arms for arms in groups.values() if len(arms) >= 2]


def _paper_b_groups(runs: Sequence[Run]) -> list[tuple[list[Run], list[Run], list[Run]]]:
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        if get(run.config, "objective.name", "standard") == "standard":
            continue
        key = _without(run.config, (*_BOOKKEEPING, *_PAPER_B_VARIED))
        groups.setdefault(key, {}).setdefault(str(get(run.config, "eps.schedule", "?")), []).append(run)
    out = []
    for arms in groups.values():
        if "constant" in arms and "scheduled" in arms:
            # every RFT-fix run's reference: a reference named per seed (detect.reference_run) belongs to its seed
            references = {ref.name: ref for fix in arms["constant"] for ref in _reference_runs(fix, runs)}
            out.append((arms["constant"], arms["scheduled"], list(references.values())))
    return out


def _named_reference(name: str, named: str, runs: Sequence[Run]) -> list[Run]:
    """The runs called ``named`` (a folder name); where two loaded studies both have one, their names carry the
    study folder (``demo1/a-full``, runs.load_runs), and the one beside the run ``name`` is its reference."""
    wanted = Path(named).name
    found = [run for run in runs if run.name == wanted or run.name.endswith("/" + wanted)]
    study = name.rpartition("/")[0]
    beside = [run for run in found if run.name.rpartition("/")[0] == study]
    return beside or found


def _reference_runs(fix: Run, runs: Sequence[Run]) -> list[Run]:
    named = get(fix.config, "detect.reference_run")
    if named:
        return _named_reference(fix.name, str(named), runs)
    key = _without(fix.config, (*_BOOKKEEPING, *_REFERENCE_VARIED))
    return [run for run in runs if get(run.config, "objective.name", "standard") == "standard"
            and _without(run.config, (*_BOOKKEEPING, *_REFERENCE_VARIED)) == key]
