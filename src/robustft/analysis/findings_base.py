"""What the findings modules share: the Finding record, the verdicts, a run's curves with their sample counts.

``robustft.analysis.findings`` says what the findings are and how runs are matched to the papers' roles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustft.analysis import evidence
from robustft.analysis.evidence import Estimate
from robustft.analysis.paired import Point
from robustft.runs import Run, records

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)
PERIPHERAL = ("bitfit", "linear")

SPLIT_PREFERENCE = ("test", "val", "train")
ONSET_PREFERENCE = ("val", "test", "train")


@dataclass(frozen=True)
class Finding:
    """One claim of a paper tested on runs.

    Attributes:
        key: stable identifier, e.g. ``"A.robust_peak"``.
        paper: ``"A"`` or ``"B"``.
        claim: what the paper says, one sentence.
        verdict: ``holds``, ``does not hold`` or ``inconclusive``.
        why: one sentence from the numbers.
        numbers: the measured values (accuracies in [0, 1]; estimates as ``{"value", "low", "high", "basis"}``).
        setting: the model, data and threat model the runs share.
        runs: names of the runs the finding used.
        method: how its intervals were obtained, e.g. ``"paired bootstrap over 256 images, 2000 draws"`` or
            ``"unpaired (Wilson, n=256): runs share no evaluated images"``.
        n: the images behind each accuracy (per run and evaluation; per seed with several), None when unknown.
        interval: the contrast the verdict rests on, ``{"value", "low", "high", "basis", "what", "text"}`` (``what``
            names it, ``text`` formats it in the finding's unit); None when there is none (the onset's rule).
        resolve: for an inconclusive verdict, the sample size at which the observed effect would be resolved with 80%
            power, ``{"count", "unit"}`` (unit ``images`` per run, or ``seeds``; count None: no effect observed).
    """

    key: str
    paper: str
    claim: str
    verdict: str
    why: str
    numbers: dict[str, Any] = field(default_factory=dict)
    setting: str = ""
    runs: tuple[str, ...] = ()
    method: str = ""
    n: int | None = None
    interval: dict[str, Any] | None = None
    resolve: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"key": self.key, "paper": self.paper, "claim": self.claim, "verdict": self.verdict, "why": self.why,
                "numbers": self.numbers, "setting": self.setting, "runs": list(self.runs), "method": self.method,
                "n": self.n, "interval": self.interval, "resolve": self.resolve}


def get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def setting_text(config: Mapping[str, Any]) -> str:
    size = get(config, "data.image_size") or get(config, "model.image_size")
    text = f"{get(config, 'model.name', '?')} on {get(config, 'data.name', '?')}"
    return text + (f" at {size} px" if size else "")


def series(run: Run, mask: pd.Series, split: str) -> pd.DataFrame:
    """step-sorted (step, epoch, value, n, point) of the records under ``mask`` on ``split`` (last record per step;
    ``point`` keys its per-image outcomes, :func:`outcome_point`)."""
    df = run.metrics
    rows = df[mask & (df["split"] == split)]
    if rows.empty:
        return pd.DataFrame(columns=["step", "epoch", "value", "n", "point"])
    # Records written without a sample size (by hand or by other tools) have no interval: they are left out, so a
    # claim resting only on them is inconclusive rather than an error.
    sizes = pd.to_numeric(rows["n"], errors="coerce") if "n" in rows else np.nan
    rows = rows.assign(_order=range(len(rows)), value=pd.to_numeric(rows["value"], errors="coerce"), n=sizes)
    rows = rows.dropna(subset=["value", "n"]).sort_values(["step", "_order"]).drop_duplicates("step", keep="last")
    rows = rows.assign(point=[outcome_point(row) for row in rows.itertuples(index=False)])
    return rows[["step", "epoch", "value", "n", "point"]].reset_index(drop=True)


def outcome_point(record: Any) -> Point:
    """The (step, split, metric, attack, eps) key of a record's per-image outcomes (``robustft.runs.outcomes``): a
    clean record written without attack or eps is the evaluator's ``clean`` at eps 0."""
    attack = getattr(record, "attack", None)
    eps = pd.to_numeric(getattr(record, "eps", None), errors="coerce")
    return (int(record.step), str(record.split), str(record.metric),
            "clean" if attack is None or (isinstance(attack, float) and math.isnan(attack)) else str(attack),
            0.0 if pd.isna(eps) else float(eps))


def pick_split(run: Run, mask: pd.Series, preference: Sequence[str]) -> str | None:
    present = set(run.metrics.loc[mask, "split"])
    return next((s for s in preference if s in present), None)


def _memo(run: Run, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per run, key and metrics table: every finding reads the same few series of a run, and
    building one from the long-form records is most of the findings' time. Callers must not modify the result."""
    key = (id(run.metrics), *key)
    if key not in run.memo:
        run.memo[key] = compute()
    return run.memo[key]


def clean_series(run: Run, preference: Sequence[str] = SPLIT_PREFERENCE) -> tuple[pd.DataFrame, str | None]:
    def compute() -> tuple[pd.DataFrame, str | None]:
        mask = records.is_clean(run.metrics) & ~records.is_final(run.metrics) & ~records.is_ood(run.metrics)
        split = pick_split(run, mask, preference)
        return (series(run, mask, split), split) if split else (series(run, mask, ""), None)

    return _memo(run, ("clean", tuple(preference)), compute)


def robust_series(run: Run, eps: float, split: str) -> pd.DataFrame:
    def compute() -> pd.DataFrame:
        df = run.metrics
        mask = records.is_robust(df) & np.isclose(pd.to_numeric(df["eps"], errors="coerce").fillna(-1.0), eps)
        return series(run, mask, split)

    return _memo(run, ("robust", float(eps), split), compute)


def smallest_robust_eps(runs: Iterable[Run]) -> float | None:
    values = [pd.to_numeric(run.metrics.loc[records.is_robust(run.metrics), "eps"], errors="coerce").min()
              for run in runs]
    values = [float(v) for v in values if pd.notna(v)]
    return min(values) if values else None


def last_estimate(series: pd.DataFrame) -> Estimate | None:
    if series.empty:
        return None
    row = series.iloc[-1]
    return evidence.accuracy(float(row["value"]), int(row["n"]))


def combine(per_run: Sequence[Estimate | None], bounds: tuple[float, float] = evidence.UNIT) -> Estimate | None:
    """One arm's estimate: the run's own interval, or the seeds' spread when there are several runs, clipped to
    ``bounds`` (default [0, 1]: accuracies, Pareto areas and E.adv)."""
    values = [e for e in per_run if e is not None]
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return evidence.from_seeds([e.value for e in values], bounds=bounds)


def pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def interval_text(estimate: Estimate, scale: float = 100, unit: str = "%") -> str:
    return f"{scale * estimate.value:.1f}{unit} [{scale * estimate.low:.1f}, {scale * estimate.high:.1f}]"


def final_clean(run: Run) -> Estimate | None:
    clean, _ = clean_series(run)
    return last_estimate(clean)


def never_perturbed(run: Run) -> bool:
    """An adversarial-objective run whose objective perturbed at no training step (summary.json's
    ``perturbed_steps == 0``, e.g. an ``auto`` schedule whose plateau never came): standard fine-tuning under a
    schedule's name. False when the summary does not say (runs written before the key existed)."""
    return get(run.config, "objective.name", "standard") != "standard" and run.summary.get("perturbed_steps") == 0


def seed_pairs(a: Sequence[Run], b: Sequence[Run]) -> tuple[list[tuple[Run, Run]], list[str]]:
    """The runs of two arms matched on their config's seed, as ``analysis.paired_tests`` matches them (never on their
    order in a list); one run on each side is a pair whatever their seeds (one comparison needs no matching: it
    rests on the runs' own intervals).

    Returns:
        (pairs sorted by seed, names of the runs left without a partner: their seed is missing on the other side,
        or repeated within an arm, where a pairing would be a guess).
    """
    if len(a) == 1 and len(b) == 1:
        return [(a[0], b[0])], []

    def by_seed(runs: Sequence[Run]) -> dict[str, list[Run]]:
        out: dict[str, list[Run]] = {}
        for run in runs:
            out.setdefault(str(get(run.config, "seed")), []).append(run)
        return out

    seeds_a, seeds_b = by_seed(a), by_seed(b)
    common = [s for s in seeds_a if s in seeds_b and len(seeds_a[s]) == 1 and len(seeds_b[s]) == 1]
    common.sort(key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))
    paired = set(common)
    left_out = [run.name for run in (*a, *b) if str(get(run.config, "seed")) not in paired]
    return [(seeds_a[s][0], seeds_b[s][0]) for s in common], left_out


@dataclass(frozen=True)
class Contrast:
    """Two arms compared on one quantity: each arm's estimate, their difference ``a - b`` and which runs it used.

    ``pairs`` counts the seed pairs (0: no seed in common, the arms compared as independent estimates).
    """

    a: Estimate | None
    b: Estimate | None
    difference: Estimate | None
    pairs: int
    left_out: tuple[str, ...]


def paired_contrast(a: Sequence[Run], b: Sequence[Run],
                    value: Callable[[Run], Estimate | None]) -> Contrast:
    """``value(a) - value(b)`` over the arms' runs paired on seed (``seed_pairs``): one pair -> the two runs'
    intervals combined (``evidence.difference``); several -> the mean of the per-seed differences with the seeds'
    Student-t interval, clipped to [-1, 1]. Without a seed in common, the arms' own estimates are compared as
    independent ones. The arms' estimates are over the paired runs only, so that they and the difference agree.
    """
    pairs, left_out = seed_pairs(a, b)
    measured = [(va, vb) for va, vb in ((value(x), value(y)) for x, y in pairs) if va is not None and vb is not None]
    if not pairs:
        arm_a, arm_b = combine([value(r) for r in a]), combine([value(r) for r in b])
        difference = evidence.difference(arm_a, arm_b) if arm_a and arm_b else None
        return Contrast(arm_a, arm_b, difference, 0, tuple(left_out))
    arm_a, arm_b = combine([x for x, _ in measured]), combine([y for _, y in measured])
    if not measured:
        difference = None
    elif len(measured) == 1:
        difference = evidence.difference(*measured[0])
    else:
        difference = evidence.from_seeds([x.value - y.value for x, y in measured], bounds=evidence.SIGNED_UNIT)
    return Contrast(arm_a, arm_b, difference, len(measured), tuple(left_out))
