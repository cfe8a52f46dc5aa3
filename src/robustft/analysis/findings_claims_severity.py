"""``B.severity_by_model_and_data`` (paper B, Figure 1): suboptimal transfer's severity, the clean accuracy RFT-fix
loses against its standard reference, differs by backbone and by task. Per family of cells (the config without
model and data, so each eps_g of a grid is its own test): the gap per backbone x task (paired on seed: Newcombe for
one seed, Student-t over several), then backbone and task contrasts at a Bonferroni-corrected level; *holds* when some
cell loses measurably and both a backbone and a task contrast are resolved.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.findings_base import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Finding,
    clean_series,
    get,
    interval_text,
    seed_pairs,
    setting_text,
)
from robustft.analysis.findings_claims_b import CLAIM_SEVERITY, Refs, _fix_runs
from robustft.analysis.findings_claims_base import in_unit, skip
from robustft.analysis.findings_paired import evidence_fields
from robustft.analysis.findings_paper_b import _eps_text
from robustft.runs import Run


def _last_clean(run: Run) -> tuple[float, int] | None:
    clean, _ = clean_series(run)
    return None if clean.empty else (float(clean["value"].iloc[-1]), int(clean["n"].iloc[-1]))


def clean_gap(fix: Sequence[Run], references: Sequence[Run], confidence: float
              ) -> tuple[Estimate, int] | None:
    """Standard minus RFT-fix final clean accuracy, paired on seed, at ``confidence``: (gap, seed pairs) or None.
    One pair: the two Wilson intervals combined (Newcombe); several: the seeds' Student-t interval."""
    pairs, _ = seed_pairs(list(references), list(fix))
    measured = [(a, b) for a, b in ((_last_clean(r), _last_clean(f)) for r, f in pairs) if a and b]
    if not measured:
        return None
    if len(measured) == 1:
        (a, na), (b, nb) = measured[0]
        return evidence.difference(evidence.accuracy(a, na, confidence), evidence.accuracy(b, nb, confidence)), 1
    return evidence.from_seeds([a[0] - b[0] for a, b in measured], confidence, evidence.SIGNED_UNIT), len(measured)


def severity_by_model_and_data(runs: Sequence[Run], family: Callable[[Run], str], references: Refs
                               ) -> list[Finding]:
    """``B.severity_by_model_and_data`` once per family of RFT-fix runs with references that differ only in
    backbone and task (``family(run)``: the config without model, data, seed and bookkeeping; so each eps_g of a
    grid is its own test of Figure 1), or its one skip line."""
    fixes = [run for run in _fix_runs(runs) if references(run)]
    families: dict[str, dict[tuple[str, str], list[Run]]] = {}
    for run in fixes:
        cell = (str(get(run.config, "model.name", "?")), str(get(run.config, "data.name", "?")))
        families.setdefault(family(run), {}).setdefault(cell, []).append(run)
    found = []
    for cells in families.values():
        model_pairs = [(a, b) for a, b in itertools.combinations(sorted(cells), 2) if a[1] == b[1]]
        task_pairs = [(a, b) for a, b in itertools.combinations(sorted(cells), 2) if a[0] == b[0]]
        if model_pairs and task_pairs:
            found.append(_severity(cells, model_pairs, task_pairs, references))
    if found:
        return found
    have = "; ".join(dict.fromkeys(_cell(c) for cells in families.values() for c in sorted(cells))) \
        or "no RFT-fix with a reference"
    where = setting_text(fixes[0].config) if fixes else ""
    return [skip("B.severity_by_model_and_data", CLAIM_SEVERITY, [
        "RFT-fix runs with their standard references on two backbones (e.g. mobilenet_v2 and vit_small_dinov2) on "
        "one task, and on two tasks with one backbone, all else equal"], have, where, fixes)]


def _severity(cells: dict[tuple[str, str], list[Run]], model_pairs: list, task_pairs: list, references: Refs
              ) -> Finding:
    contrasts = len(model_pairs) + len(task_pairs)
    confidence = 1 - (1 - evidence.CONFIDENCE) / contrasts  # Bonferroni: any of the contrasts may decide
    gaps: dict[tuple[str, str], tuple[Estimate, int]] = {}
    for cell, fix in cells.items():
        refs = list({r.name: r for run in fix for r in references(run)}.values())
        gap = clean_gap(fix, refs, confidence)
        if gap is not None:
            gaps[cell] = gap

    def compare(pairs: list) -> list[tuple[tuple, tuple, Estimate]]:
        return [(a, b, evidence.difference(gaps[a][0], gaps[b][0])) for a, b in pairs if a in gaps and b in gaps]

    by_model, by_task = compare(model_pairs), compare(task_pairs)
    used = [run for fix in cells.values() for run in fix]
    table = [{"model": m, "task": t, "gap": g.as_dict(), "seeds": s} for (m, t), (g, s) in sorted(gaps.items())]
    numbers: dict[str, Any] = {"cells": table, "confidence": confidence,
                               "model_contrasts": [_row(a, b, d) for a, b, d in by_model],
                               "task_contrasts": [_row(a, b, d) for a, b, d in by_task]}
    cells_text = "; ".join(f"{m} on {t} {interval_text(g, unit=' points')}" for (m, t), (g, _) in sorted(gaps.items()))
    lead = f"clean accuracy lost by RFT-fix against standard fine-tuning: {cells_text}"
    setting = f"{', '.join(_cell(c) for c in sorted(cells))}, eps_g = {_eps_text(get(used[0].config, 'eps.value'))}"
    suboptimal = any(g.low > 0 for g, _ in gaps.values())
    resolved = lambda rows: [r for r in rows if evidence.sign(r[2]) != evidence.UNRESOLVED]  # noqa: E731
    strongest = lambda rows: max(rows, key=lambda r: abs(r[2].value))  # noqa: E731
    if not (by_model and by_task):
        return skip("B.severity_by_model_and_data", CLAIM_SEVERITY, ["final clean accuracy in every cell"],
                    cells_text or "no cell measured", setting, used, numbers)
    if suboptimal and resolved(by_model) and resolved(by_task):
        verdict = HOLDS
        # the weaker of the two facts the verdict needs: the model contrast and the task contrast nearest to 0
        decisive = min((strongest(resolved(by_model)), strongest(resolved(by_task))),
                       key=lambda r: min(abs(r[2].low), abs(r[2].high)))
    elif all(g.high < 0 for g, _ in gaps.values()):
        verdict = DOES_NOT_HOLD
        decisive = None
    else:
        verdict = INCONCLUSIVE
        missing = [rows for rows, done in ((by_model, resolved(by_model)), (by_task, resolved(by_task))) if not done]
        decisive = strongest(missing[0]) if missing else None
    if decisive is None:
        worst = max(gaps.items(), key=lambda item: item[1][0].value)
        estimate, what = worst[1][0], f"the largest gap ({worst[0][0]} on {worst[0][1]})"
    else:
        estimate, what = decisive[2], f"gap {_cell(decisive[0])} minus gap {_cell(decisive[1])}"
    why = {HOLDS: f"{lead}; the gap differs measurably between backbones and between tasks.",
           DOES_NOT_HOLD: f"{lead}: RFT-fix loses no clean accuracy in any cell, so there is no suboptimal transfer "
                          "whose severity could vary.",
           INCONCLUSIVE: f"{lead}: " + ("no cell shows measurable suboptimal transfer." if not suboptimal else
                                        "the gaps are not measurably apart "
                                        + ("between backbones." if not resolved(by_model) else "between tasks."))
           }[verdict]
    seeds = min(s for _, s in gaps.values())
    sizes = [size[1] for run in used if (size := _last_clean(run))]
    method = (f"per cell standard - RFT-fix paired on seed ({'Newcombe' if seeds == 1 else f'{seeds} seeds'}), at "
              f"{100 * confidence:.1f}% (Bonferroni over {contrasts} contrasts); cells compared as independent")
    fields = in_unit(evidence_fields(estimate, what, interval_text(estimate, unit=" points"), verdict, method,
                                     min(sizes) if sizes else None, seeds), "seeds")
    return Finding(key="B.severity_by_model_and_data", paper="B", claim=CLAIM_SEVERITY, verdict=verdict, why=why,
                   numbers=numbers, setting=setting, runs=tuple(r.name for r in used), **fields)


def _cell(cell: tuple[str, str]) -> str:
    return f"{cell[0]} on {cell[1]}"


def _row(a: tuple[str, str], b: tuple[str, str], d: Estimate) -> dict[str, Any]:
    return {"a": _cell(a), "b": _cell(b), "difference": d.as_dict()}
