"""Paper A's task-complexity and OOD claims, tested across studies (``robustft.analysis.findings`` matches the runs).

- ``A.attention_on_complex``: on the more complex task Compacter's Pareto area is above the strategies' average
  (paper A: +57.5% on Caltech-256, +34.6% on CUB-200); the numbers add its rank on each task and the change of its
  % above average between the tasks, and every attention strategy's (lora, ia3, adapter) for comparison;
- ``A.steeper_with_complexity``: the Pareto frontier is steeper on the more complex task. Steepness of a run's
  frontier: the robust accuracy lost per clean point gained between its most robust and its most accurate
  evaluation (both ends of the frontier); per strategy (seeds averaged) the complex task's minus the simple task's,
  and a Student-t interval over the strategies run on both tasks (each strategy is its own pair);
- ``A.ood_shift_not_method`` (per study with OOD splits): OOD accuracy depends on the domain shift and the extent of
  adaptation rather than on the strategy. Two least-squares fits over every evaluation of every run and OOD split:
  OOD accuracy ~ shift + clean accuracy (+ their interaction) and OOD accuracy ~ strategy; the contrast is their
  R^2 difference, with a bootstrap over whole runs (a run's evaluations are not independent).

Which task is more complex is measured, not assumed: the frozen backbone's linear-probe balanced accuracy rescaled
so chance is 0 (``findings_claims_base.complexity``, from ``data/complexity.json``); lower is more complex. Two
studies are compared when they agree on everything but the task (the backbone included). With three tasks the most
and the least complex are compared; every task's measurement is in the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Finding,
    clean_series,
    get,
    series,
    setting_text,
    smallest_robust_eps,
)
from robustft.analysis.findings_claims_base import (
    complexity,
    in_unit,
    measured_tasks,
    run_bootstrap,
    signed,
    skip,
)
from robustft.analysis.findings_paired import Inference, evidence_fields, percentile
from robustft.analysis.findings_paper_a import _area, _area_evidence, _unpaired_above
from robustft.analysis.findings_paper_a_paired import area_points
from robustft.runs import Run, records

ATTENTION = ("compacter", "adapter", "lora", "ia3")
CLAIM_ATTENTION = ("Fine-tuning intermediate / attention layers (Compacter) gives a Pareto area above the average on "
                   "the more complex task (paper A: +57.5% on Caltech-256, +34.6% on CUB-200).")
CLAIM_STEEPER = ("The Pareto frontier is steeper on the more complex task, less similar to upstream: more robust "
                 "accuracy lost per clean point (paper A's poster, RQ2).")
CLAIM_OOD = ("OOD accuracy depends on the domain shift and the extent of adaptation (clean accuracy) rather than on "
             "the fine-tuning method (paper A's poster, RQ3).")

Arms = dict[str, list[Run]]


def task_claims(groups: Sequence[Arms], family: Callable[[Run], str], inference: Inference) -> list[Finding]:
    """``A.attention_on_complex`` and ``A.steeper_with_complexity`` for paper A studies that differ only in their
    task (``family(run)``: the run's config without task, strategy, seed); skip lines when no two tasks compare."""
    if not groups:
        return []
    families: dict[str, dict[str, Arms]] = {}
    for arms in groups:
        first = next(iter(arms.values()))[0]
        task = str(get(first.config, "data.name", "?"))
        families.setdefault(family(first), {}).setdefault(task, arms)
    out: list[Finding] = []
    for tasks in families.values():
        if len(tasks) < 2:
            continue
        measured = {task: complexity(next(iter(arms.values()))[0].config) for task, arms in tasks.items()}
        known = {task: c for task, c in measured.items() if c is not None}
        if len(known) < 2:
            missing = ", ".join(t for t, c in measured.items() if c is None)
            need = [f"the complexity of {missing} measured for this backbone (scripts/measure_complexity.py)"]
            for key, claim in (("A.attention_on_complex", CLAIM_ATTENTION), ("A.steeper_with_complexity",
                                                                               CLAIM_STEEPER)):
                out.append(skip(key, claim, need, f"tasks {', '.join(tasks)}, complexity measured for "
                                f"{', '.join(known) or 'none'}"))
            continue
        order = sorted(known, key=lambda t: known[t]["separability"])
        complex_task, simple_task = order[0], order[-1]
        pair = {"complex": (complex_task, tasks[complex_task]), "simple": (simple_task, tasks[simple_task])}
        out.append(_attention_on_complex(pair, known, inference))
        out.append(_steeper(pair, known))
    if not out:
        first = next(iter(groups[0].values()))[0]
        others = measured_tasks(first.config)
        need = [f"paper A runs of the same strategies (compacter among them) on a second task with "
                f"{get(first.config, 'model.name', '?')}, of different measured complexity"
                + (f" (e.g. data.name={others[0]}; measured: {', '.join(others)})" if others else "")]
        setting = setting_text(first.config)
        have = f"one task per backbone ({setting})"
        out = [skip("A.attention_on_complex", CLAIM_ATTENTION, need, have, setting),
               skip("A.steeper_with_complexity", CLAIM_STEEPER, need, have, setting)]
    return out


def _pair_setting(pair: dict[str, tuple[str, Arms]], known: dict[str, dict[str, Any]]) -> str:
    first = next(iter(pair["complex"][1].values()))[0]
    text = lambda role: (f"{pair[role][0]} (probe separability {known[pair[role][0]]['separability']:.2f}, "  # noqa: E731
                         f"{known[pair[role][0]]['classes']} classes)")
    return (f"{get(first.config, 'model.name', '?')}: more complex {text('complex')} vs simpler "
            f"{text('simple')}")


def _complexity_numbers(pair: dict[str, tuple[str, Arms]], known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    a, b = known[pair["complex"][0]]["interval"], known[pair["simple"][0]]["interval"]
    return {"complex_task": pair["complex"][0], "simple_task": pair["simple"][0], "complexity": known,
            # the tasks' order is measured on finite probe samples: resolved when the intervals are apart
            "order_resolved": bool(a and b and a[1] < b[0])}


def _names(*arms: Arms) -> tuple[str, ...]:
    return tuple(run.name for group in arms for runs in group.values() for run in runs)


def _attention_on_complex(pair: dict[str, tuple[str, Arms]], known: dict[str, dict[str, Any]],
                          inference: Inference) -> Finding:
    (complex_task, hard), (simple_task, easy) = pair["complex"], pair["simple"]
    setting = _pair_setting(pair, known)
    missing = [task for task, arms in ((complex_task, hard), (simple_task, easy)) if "compacter" not in arms]
    if missing or min(len(hard), len(easy)) < 3:
        need = [f"compacter runs on {', '.join(missing)}" if missing else "",
                "at least three strategies on each task" if min(len(hard), len(easy)) < 3 else ""]
        return skip("A.attention_on_complex", CLAIM_ATTENTION, [n for n in need if n],
                    f"{complex_task}: {', '.join(hard)}; {simple_task}: {', '.join(easy)}", setting,
                    [r for g in (hard, easy) for runs in g.values() for r in runs])
    per_task = {}
    for role, (task, arms) in pair.items():
        eps = smallest_robust_eps([run for runs in arms.values() for run in runs])
        areas = {name: _area(runs, eps) for name, runs in arms.items()} if eps is not None else {}
        areas = {name: a for name, a in areas.items() if a is not None}
        if len(areas) < 3 or "compacter" not in areas:
            return skip("A.attention_on_complex", CLAIM_ATTENTION, [f"robust accuracy of compacter and two other "
                        f"strategies on {task}"], f"Pareto areas for {', '.join(areas) or 'no strategy'}", setting)
        measured = _area_evidence(areas, {name: arms[name] for name in areas}, eps, inference)
        above = {name: (measured.paired.above_average[name] if measured.paired is not None
                        else _unpaired_above(name, measured.areas)) for name in measured.areas}
        ranked = sorted(measured.areas, key=lambda name: measured.areas[name].value, reverse=True)
        per_task[role] = {"task": task, "measured": measured, "above": above, "ranked": ranked, "eps": eps}
    hard_above = per_task["complex"]["above"]["compacter"]
    easy_above = per_task["simple"]["above"]["compacter"]
    rank = {role: per_task[role]["ranked"].index("compacter") + 1 for role in per_task}
    numbers: dict[str, Any] = {
        **_complexity_numbers(pair, known),
        "percent_above_average": {role: {name: a.as_dict() if a else None for name, a in per_task[role]["above"].items()
                                         if name in ATTENTION} for role in per_task},
        "areas": {role: {name: a.as_dict() for name, a in per_task[role]["measured"].areas.items()}
                  for role in per_task},
        "compacter_rank": rank, "compacter_rank_gain": rank["simple"] - rank["complex"],
        "strategies": {role: len(per_task[role]["ranked"]) for role in per_task}}
    runs = _names(hard, easy)
    base = {"key": "A.attention_on_complex", "paper": "A", "claim": CLAIM_ATTENTION, "setting": setting,
            "runs": runs, "numbers": numbers}
    measured = per_task["complex"]["measured"]
    if hard_above is None:
        return Finding(verdict=INCONCLUSIVE, why=f"every Pareto area on {complex_task} is zero.",
                       method=measured.method, n=measured.n, **base)
    if easy_above is not None:
        change = evidence.difference(hard_above, easy_above)  # two tasks: independent runs and images
        numbers["change_between_tasks"] = change.as_dict()
    text = signed(hard_above, digits=0, unit="%")
    verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(evidence.sign(hard_above), INCONCLUSIVE)
    ranks = (f"rank {rank['complex']} of {len(per_task['complex']['ranked'])} on {complex_task}, "
             f"{rank['simple']} of {len(per_task['simple']['ranked'])} on {simple_task}")
    move = (f"; {signed(easy_above, digits=0, unit='%')} on {simple_task}" if easy_above else "")
    leader = per_task["complex"]["ranked"][0]
    why = {HOLDS: f"Compacter's area on the more complex {complex_task} is {text} against the average ({ranks}{move}).",
           DOES_NOT_HOLD: (f"Compacter's area on the more complex {complex_task} is measurably below the average: "
                           f"{text} ({ranks}{move}); the largest is {leader}."),
           INCONCLUSIVE: f"Compacter's area on {complex_task}: {text} against the average, the interval includes 0 "
                         f"({ranks}{move})."}[verdict]
    model = str(get(next(iter(hard.values()))[0].config, "model.name", ""))
    if "vit" not in model.lower():
        why += f" {model} has no attention layer: Compacter and LoRA adapt its convolution blocks here."
    if not numbers["order_resolved"]:
        why += " The tasks' probe accuracies are not measurably apart, so which is more complex is itself uncertain."
    fields = evidence_fields(hard_above, f"Compacter's area above the average on {complex_task}", text, verdict,
                             measured.method, measured.n, measured.seeds)
    return Finding(verdict=verdict, why=why, **base, **fields)


def steepness(run: Run, eps: float) -> float | None:
    """Robust accuracy lost per clean point gained along the run's Pareto frontier, from its most robust evaluation
    to its most accurate one (0 when one evaluation is both: a flat frontier); None without robust accuracy."""
    points = area_points(run, eps)
    if points.empty:
        return None
    clean, robust = points["clean"].to_numpy(float), points["robust"].to_numpy(float)
    peak = max(range(len(clean)), key=lambda i: (robust[i], clean[i]))
    end = max(range(len(clean)), key=lambda i: (clean[i], robust[i]))
    gained = clean[end] - clean[peak]
    return float((robust[peak] - robust[end]) / gained) if gained > 0 else 0.0


def _strategy_steepness(arms: Arms) -> dict[str, float]:
    eps = smallest_robust_eps([run for runs in arms.values() for run in runs])
    out = {}
    for name, runs in arms.items():
        values = [v for run in runs if eps is not None and (v := steepness(run, eps)) is not None]
        if values:
            out[name] = float(np.mean(values))
    return out


def _steeper(pair: dict[str, tuple[str, Arms]], known: dict[str, dict[str, Any]]) -> Finding:
    (complex_task, hard), (simple_task, easy) = pair["complex"], pair["simple"]
    setting = _pair_setting(pair, known)
    hard_slopes, easy_slopes = _strategy_steepness(hard), _strategy_steepness(easy)
    common = [name for name in hard_slopes if name in easy_slopes]
    if len(common) < 2:
        return skip("A.steeper_with_complexity", CLAIM_STEEPER, [f"robust accuracy of at least two strategies run "
                    f"on both {complex_task} and {simple_task}"], f"{len(common)} strategy on both", setting)
    differences = [hard_slopes[name] - easy_slopes[name] for name in common]
    estimate = evidence.from_seeds(differences)
    estimate = Estimate(estimate.value, estimate.low, estimate.high, f"{len(common)} strategies")
    verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(evidence.sign(estimate), INCONCLUSIVE)
    numbers = {**_complexity_numbers(pair, known), "difference": estimate.as_dict(),
               "steepness": {"complex": {n: hard_slopes[n] for n in common},
                             "simple": {n: easy_slopes[n] for n in common}}}
    mean = lambda slopes: float(np.mean([slopes[n] for n in common]))  # noqa: E731
    text = signed(estimate, scale=1, digits=2)
    lead = (f"robust points lost per clean point along the frontier: {mean(hard_slopes):.2f} on the more complex "
            f"{complex_task}, {mean(easy_slopes):.2f} on {simple_task} (mean of {len(common)} strategies; "
            f"difference {text})")
    why = {HOLDS: f"{lead}.", DOES_NOT_HOLD: f"{lead}: the frontier is measurably flatter on the more complex task.",
           INCONCLUSIVE: f"{lead}: the interval includes 0."}[verdict]
    if not numbers["order_resolved"]:
        why += " The tasks' probe accuracies are not measurably apart, so which is more complex is itself uncertain."
    n = min((int(area_points(run, e)["n_robust"].min()) for arms in (hard, easy) for runs in arms.values()
             for run in runs if (e := smallest_robust_eps([run])) is not None and not area_points(run, e).empty),
            default=None)
    fields = in_unit(evidence_fields(estimate, "steepness on the complex minus the simple task", text, verdict,
                                     f"Student-t over {len(common)} strategies run on both tasks (seeds averaged "
                                     "per strategy), each its own pair", n, len(common)), "strategies")
    return Finding(key="A.steeper_with_complexity", paper="A", claim=CLAIM_STEEPER, verdict=verdict, why=why,
                   numbers=numbers, setting=setting, runs=_names(hard, easy), **fields)


def _ood_rows(arms: Arms) -> tuple[pd.DataFrame, list[str]]:
    """One row per (run, OOD split, evaluation step): run (index into the returned names), strategy, shift, clean,
    ood, n."""
    frames, names = [], []
    for strategy, runs in arms.items():
        for run in runs:
            clean, _ = clean_series(run)
            mask = records.is_clean(run.metrics) & ~records.is_final(run.metrics) & records.is_ood(run.metrics)
            for split in sorted(set(run.metrics.loc[mask, "split"])):
                merged = clean.merge(series(run, mask, split), on="step", suffixes=("_clean", "_ood"))
                frames.append(pd.DataFrame({"run": len(names), "strategy": strategy, "shift": split,
                                            "clean": merged["value_clean"].astype(float),
                                            "ood": merged["value_ood"].astype(float), "n": merged["n_ood"]}))
            names.append(run.name)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["run", "strategy", "shift", "clean", "ood", "n"])
    return rows, names


def _r2(y: np.ndarray, design: np.ndarray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    if np.ptp(y) < 1e-9:  # a constant up to round-off: no variance, R^2 undefined
        return float("nan")
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return 1.0 - float(np.sum((y - design @ beta) ** 2)) / total


def _dummies(codes: np.ndarray, levels: int) -> np.ndarray:
    """One column per level but the first (the intercept carries it): float (rows, levels - 1)."""
    return np.eye(levels)[codes][:, 1:]


def explained(ood: np.ndarray, clean: np.ndarray, shift: np.ndarray, strategy: np.ndarray, both: bool = True
              ) -> np.ndarray:
    """R^2 of OOD accuracy on (shift + clean + shift x clean), on the strategy, and (``both``) on both: array (3,)
    or (2,).

    Args:
        ood, clean: accuracies (rows,); shift, strategy: integer codes (rows,) of the OOD split and the strategy.
    """
    ones = np.ones((len(ood), 1))
    shifts = _dummies(shift, int(shift.max()) + 1)
    context = np.hstack([ones, shifts, clean[:, None], shifts * clean[:, None]])
    strategies = _dummies(strategy, int(strategy.max()) + 1)
    r2 = [_r2(ood, context), _r2(ood, np.hstack([ones, strategies]))]
    return np.array([*r2, _r2(ood, np.hstack([context, strategies]))] if both else r2)


def has_ood(arms: Arms) -> bool:
    """Whether any run of the study was evaluated on an OOD split."""
    return any(records.is_ood(run.metrics).any() for runs in arms.values() for run in runs)


def ood_shift_not_method(arms: Arms, inference: Inference) -> Finding | None:
    """``A.ood_shift_not_method`` for one paper A study; None when it has no OOD split (``ood_skip`` says so once)."""
    rows, names = _ood_rows(arms)
    if rows.empty:
        return None
    runs = [run for group in arms.values() for run in group]
    setting = setting_text(runs[0].config)
    # Three strategies at least: with two runs the bootstrap's draws hold one strategy or both as given, and the
    # interval collapses onto the estimate (a newcomer got "holds, +93 [+93, +100]" from two runs).
    if rows["strategy"].nunique() < 3 or len(rows) < 6:
        count = rows["strategy"].nunique()
        return skip("A.ood_shift_not_method", CLAIM_OOD, ["OOD evaluations (data.ood) of at least three strategies"],
                    f"OOD accuracy of {count} {'strategy' if count == 1 else 'strategies'}", setting, runs)
    columns = (rows["ood"].to_numpy(float), rows["clean"].to_numpy(float),
               pd.factorize(rows["shift"], sort=True)[0], pd.factorize(rows["strategy"], sort=True)[0])
    value = explained(*columns)
    if not np.isfinite(value[0] - value[1]):  # OOD accuracy constant over every evaluation: no variance to explain
        return Finding(key="A.ood_shift_not_method", paper="A", claim=CLAIM_OOD, verdict=INCONCLUSIVE,
                       why=(f"OOD accuracy is the same at all {len(rows)} evaluations "
                            f"({100 * float(rows['ood'].iloc[0]):.1f}%): there is no variance to explain."),
                       numbers={"points": len(rows)}, setting=setting, runs=tuple(names),
                       method="R^2 of two least-squares fits", n=int(pd.to_numeric(rows["n"]).min()))
    runs_of = rows["run"].to_numpy()
    blocks = [np.flatnonzero(runs_of == r) for r in range(len(names))]

    def contrast(draw: np.ndarray) -> float:
        index = np.concatenate([blocks[r] for r in draw])
        ood, clean, shift, strategy = (column[index] for column in columns)
        r2 = explained(ood, clean, shift, strategy, both=False)
        return float(r2[0] - r2[1])

    # one stratum per strategy when it has several runs (seeds); with one run each the runs are resampled together
    strata = [rows.loc[rows["run"] == r, "strategy"].iloc[0] for r in range(len(names))]
    several = min(pd.Series(strata).value_counts()) >= 2
    draws = run_bootstrap(len(names), contrast, inference.n_boot, inference.seed, strata if several else None)
    basis = f"bootstrap over {len(names)} runs" + (" within strategies" if several else "")
    (estimate,) = percentile(np.array([value[0] - value[1]]), draws[:, None], basis=basis)
    verdict = {evidence.GREATER: HOLDS, evidence.LESS: DOES_NOT_HOLD}.get(evidence.sign(estimate), INCONCLUSIVE)
    shifts = sorted(rows["shift"].unique())
    numbers = {"r2_shift_and_clean": value[0], "r2_strategy": value[1], "r2_both": value[2],
               "strategy_beyond_shift_and_clean": value[2] - value[0], "difference": estimate.as_dict(),
               "shifts": [s.removeprefix("ood:") for s in shifts], "points": len(rows)}
    text = signed(estimate, digits=0, unit=" points")
    lead = (f"shift and clean accuracy explain {100 * value[0]:.0f}% of OOD accuracy's variance, the strategy "
            f"{100 * value[1]:.0f}% (difference {text}); the strategy adds {100 * (value[2] - value[0]):.0f} points "
            f"beyond them, over {len(rows)} evaluations of {len(shifts)} shift{'s' if len(shifts) > 1 else ''}")
    why = {HOLDS: f"{lead}.", DOES_NOT_HOLD: f"{lead}: the strategy explains measurably more.",
           INCONCLUSIVE: f"{lead}: the interval includes 0."}[verdict]
    n = int(pd.to_numeric(rows["n"]).min())
    # n is the images behind each evaluated accuracy; the interval's unit of resampling is the run (say both)
    method = (f"R^2 of two least-squares fits (OOD ~ shift x clean; OOD ~ strategy), {basis} (each evaluated on "
              f"{n} images), {inference.n_boot} draws")
    fields = in_unit(evidence_fields(estimate, "R^2(shift, clean) - R^2(strategy)", text, verdict, method, n,
                                     max(len(names), 2)), "runs")
    return Finding(key="A.ood_shift_not_method", paper="A", claim=CLAIM_OOD, verdict=verdict, why=why,
                   numbers=numbers, setting=setting, runs=tuple(names), **fields)


def ood_skip(groups: Sequence[Arms]) -> Finding:
    """The skip line when no paper A study has OOD evaluations."""
    first = next(iter(groups[0].values()))[0]
    return skip("A.ood_shift_not_method", CLAIM_OOD,
                [f"paper A runs of at least two strategies with OOD evaluations on {get(first.config, 'data.name')} "
                 "(data.ood=[<task>@<corruption>, ...], ideally two shifts or more)"],
                "no OOD split evaluated", setting_text(first.config))
