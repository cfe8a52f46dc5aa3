"""The cross-study claims of issue 18 as ``robustft.analysis.findings`` calls them: per study (``study_claims_a``,
``study_claims_b``) and across studies (``claims_a``, ``claims_b``), each returning findings or skip lines.

A claim's skip line appears whenever the runs hold a study of that claim's paper (paper A: two strategies or more;
paper B: a run trained with a perturbing objective), so ``robustft reproduce`` and the demo say what each claim
still needs; unrelated runs (one strategy, standard fine-tuning only) give none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from robustft.analysis.findings_base import Finding, get, setting_text
from robustft.analysis.findings_claims_a import Arms, has_ood, ood_shift_not_method, ood_skip, task_claims
from robustft.analysis.findings_claims_b import (
    CLAIM_EADV,
    delay_grows_with_eps,
    eadv_when_adv_equal,
)
from robustft.analysis.findings_claims_base import skip
from robustft.analysis.findings_claims_severity import severity_by_model_and_data
from robustft.analysis.findings_paired import Inference
from robustft.runs import Run

CLAIM_KEYS = ("A.attention_on_complex", "A.steeper_with_complexity", "A.ood_shift_not_method",
              "B.delay_grows_with_eps", "B.severity_by_model_and_data", "B.eadv_when_adv_equal")


def study_claims_a(arms: Arms, inference: Inference) -> list[Finding]:
    """``A.ood_shift_not_method`` for one paper A study with OOD splits (none without)."""
    found = ood_shift_not_method(arms, inference)
    return [found] if found is not None else []


def claims_a(groups: Sequence[Arms], family: Callable[[Run], str], inference: Inference) -> list[Finding]:
    """The task-complexity claims across paper A studies, and the OOD claim's skip line when no study has OOD.

    Args:
        groups: the paper A studies (strategy -> runs).
        family: a run's config without task, strategy, seed and bookkeeping (studies equal but for the task).
    """
    if not groups:
        return []
    out = task_claims(groups, family, inference)
    if not any(has_ood(arms) for arms in groups):
        out.append(ood_skip(groups))
    return out


def study_claims_b(fix: list[Run], scheduled: list[Run], inference: Inference) -> list[Finding]:
    """``B.eadv_when_adv_equal`` for one paper B study."""
    return [eadv_when_adv_equal(fix, scheduled, inference)]


def claims_b(runs: Sequence[Run], studies: int, references: Callable[[Run], list[Run]],
             families: Mapping[str, Callable[[Run], str]], inference: Inference) -> list[Finding]:
    """The eps_g and model x task claims across RFT-fix runs, and ``B.eadv_when_adv_equal``'s skip line when no
    paper B study was found (``studies`` = 0).

    Args:
        references: a run's standard reference runs.
        families: ``"eps"``: a run's config without eps_g, seed and bookkeeping; ``"cell"``: without model and data.
    """
    adversarial = [run for run in runs if get(run.config, "objective.name", "standard") != "standard"]
    if not adversarial:
        return []
    out = [*delay_grows_with_eps(runs, families["eps"], references, inference),
           *severity_by_model_and_data(runs, families["cell"], references)]
    if not studies:
        out.append(skip("B.eadv_when_adv_equal", CLAIM_EADV, [
            "RFT-fix (eps.schedule=constant) and Epsilon-Scheduling (eps.schedule=scheduled) runs equal but for the "
            "schedule, with a robust curve to eps_g"], "no such pair of schedules", setting_text(adversarial[0].config),
            adversarial))
    return out
