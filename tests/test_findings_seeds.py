"""Findings over several seeds: runs of two arms are paired on their seed (as ``analysis.paired_tests`` pairs
them), never on their position in a list, and every seed counts."""

from __future__ import annotations

import random

import pytest
from tests.test_findings import paper_b_run, verdict

from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, findings

# Per seed a different level, the same advantage of the schedule: paired on seed the difference is clear, paired
# on anything else it drowns in the seeds' spread.
LEVEL = {0: 0.30, 1: 0.55, 2: 0.40, 3: 0.70}


def schedule_study(seeds=(0, 1, 2, 3)):
    runs = []
    for seed in seeds:
        level = LEVEL[seed]
        fix = paper_b_run("fix", [0.1, level - 0.2, level], [level, 0.5 * level, 0.3 * level, 0.2 * level, 0.0],
                          seed=seed)
        gain = 0.05 + 0.002 * seed
        scheduled = paper_b_run("scheduled", [0.1, level - 0.1, level + gain],
                                [level + gain, 0.5 * level + gain, 0.3 * level + gain, 0.2 * level + gain, gain],
                                seed=seed)
        runs += [fix, scheduled]
    return runs


def judged(runs):
    return {f.key: (f.verdict, f.numbers.get("difference")) for f in findings(runs)
            if f.key in ("B.clean", "B.expected_robustness")}


def test_schedule_findings_pair_seeds_not_list_positions():
    ordered = schedule_study()
    complete = judged(ordered)
    assert {v for v, _ in complete.values()} == {HOLDS}, complete
    shuffled = list(ordered)
    random.Random(3).shuffle(shuffled)
    assert judged(shuffled) == complete  # the order runs come in says nothing about which belong together
    # a seed missing on one side: the verdict of the complete study restricted to the common seeds
    missing = [r for r in ordered if not (r.name == "b-scheduled-1")]
    restricted = [r for r in ordered if r.config["seed"] != 1]
    assert judged(missing) == judged(restricted)
    assert {v for v, _ in judged(missing).values()} == {HOLDS}
    assert "b-fix-1" in verdict(findings(missing), "B.clean").why  # the run left without a partner is named


def onset_study(fix_clean_by_seed, reference_clean=(0.1, 0.6, 0.8, 0.85)):
    runs = []
    for seed, clean in fix_clean_by_seed.items():
        runs.append(paper_b_run("standard", list(reference_clean), [0.85, 0.0, 0.0, 0.0, 0.0], seed=seed))
        runs.append(paper_b_run("fix", clean, [clean[-1], 0.3, 0.2, 0.1, 0.0], seed=seed))
        runs.append(paper_b_run("scheduled", [0.1, 0.6, 0.7, 0.7], [0.7, 0.4, 0.3, 0.2, 0.1], seed=seed))
    return runs


DELAYED, PROMPT = [0.1, 0.05, 0.1, 0.5], [0.1, 0.6, 0.7, 0.75]


def test_the_onset_finding_reads_every_seed():
    # Seed 0 delays, seeds 1 and 2 adapt as early as standard fine-tuning: one seed is not the study.
    runs = onset_study({0: DELAYED, 1: PROMPT, 2: PROMPT})
    onset = verdict(findings(runs), "B.onset_delay")
    assert onset.verdict == INCONCLUSIVE, onset.why
    assert "1 of 3 seeds" in onset.why
    assert {r.name for r in runs if r.name.startswith(("b-fix", "b-standard"))} <= set(onset.runs)
    every = verdict(findings(onset_study({0: DELAYED, 1: DELAYED, 2: DELAYED})), "B.onset_delay")
    none = verdict(findings(onset_study({0: PROMPT, 1: PROMPT, 2: PROMPT})), "B.onset_delay")
    assert (every.verdict, none.verdict) == (HOLDS, DOES_NOT_HOLD)


def test_the_onset_finding_pairs_seeds_not_list_positions():
    runs = onset_study({0: DELAYED, 1: DELAYED, 2: PROMPT})
    runs = [r for r in runs if r.name != "b-standard-2"]  # seed 2's reference is missing: seed 2 is left out
    restricted = [r for r in runs if r.config["seed"] != 2]
    for order in (runs, runs[::-1]):
        onset = verdict(findings(order), "B.onset_delay")
        expected = verdict(findings(restricted), "B.onset_delay")
        assert (onset.verdict, onset.numbers["pairs"]) == (expected.verdict, expected.numbers["pairs"])
        assert onset.verdict == HOLDS, onset.why


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_an_onset_delay_where_neither_run_adapts_is_inconclusive(seeds):
    never = [0.1, 0.05, 0.06, 0.05]  # measurably below 20% at every evaluation after step 0
    runs = onset_study({seed: never for seed in seeds}, reference_clean=never)
    onset = verdict(findings(runs), "B.onset_delay")
    assert onset.verdict == INCONCLUSIVE, onset.why
    assert "neither" in onset.why


def test_a_run_whose_objective_never_perturbed_is_not_a_schedule_result():
    runs = onset_study({0: DELAYED})
    for run in runs:
        run.summary = {**run.summary, "perturbed_steps": 0 if run.name == "b-scheduled-0" else 40}
    found = findings(runs)
    for key in ("B.clean", "B.expected_robustness"):
        finding = verdict(found, key)
        assert finding.verdict == INCONCLUSIVE and "b-scheduled-0 never perturbed" in finding.why, finding.why
    assert verdict(found, "B.onset_delay").verdict == HOLDS  # the RFT-fix run did perturb: its onset counts
    for run in runs:
        run.summary["perturbed_steps"] = 0 if run.name == "b-fix-0" else 40
    onset = verdict(findings(runs), "B.onset_delay")
    assert onset.verdict == INCONCLUSIVE and "b-fix-0 never perturbed" in onset.why
    for run in runs:  # old runs do not record it: unknown, not "never"
        run.summary.pop("perturbed_steps")
    assert verdict(findings(runs), "B.onset_delay").verdict == HOLDS


def test_the_robust_peak_reads_every_seed():
    from tests.test_findings import paper_a_run

    clean = [0.2, 0.7, 0.8, 0.85, 0.88]
    peaked, rising = [0.02, 0.2, 0.3, 0.15, 0.08], [0.02, 0.1, 0.2, 0.25, 0.32]
    mixed = [paper_a_run("full", clean, peaked, 512, seed=0), paper_a_run("full", clean, rising, 512, seed=1),
             paper_a_run("full", clean, rising, 512, seed=2), paper_a_run("linear", clean, [0.01] * 5, seed=0)]
    found = verdict(findings(mixed), "A.robust_peak")
    # seed 0 alone holds (peak at step 100); with all three the mean curve peaks at the last step
    assert found.verdict != HOLDS and found.numbers["seeds"] == 3, found.why
    assert (found.numbers["peak_step"], found.numbers["peak"]["value"]) == (200, pytest.approx(0.24))
    assert set(found.runs) == {"a-full-0", "a-full-1", "a-full-2"}
    jitter = [paper_a_run("full", [c + 0.01 * s for c in clean], [r + 0.005 * s for r in peaked], 512, seed=s)
              for s in range(3)]
    held = verdict(findings([*jitter, mixed[-1]]), "A.robust_peak")
    assert held.verdict == HOLDS and held.numbers["drop"]["basis"] == "3 seeds", held.why


def test_each_seeds_named_reference_run_is_its_reference():
    runs = onset_study({0: DELAYED, 1: DELAYED})
    for run in runs:
        run.config["detect"] = {"reference_run": f"runs/b-standard-{run.config['seed']}"}
    onset = verdict(findings(runs), "B.onset_delay")
    assert [pair["reference_run"] for pair in onset.numbers["pairs"]] == ["b-standard-0", "b-standard-1"]
    assert onset.verdict == HOLDS, onset.why


def test_a_named_reference_is_the_one_in_the_same_study_when_two_studies_share_its_name():
    """Two studies (here at two learning rates) loaded together name their runs ``demo1/b-standard-0`` and
    ``demo2/b-standard-0`` (runs.collection); each fix run's named reference ``runs/b-standard-0`` is the one in its
    own study."""
    runs = []
    for study, lr in (("demo1", 1e-3), ("demo2", 3e-4)):
        for run in onset_study({0: DELAYED}):
            run.name = f"{study}/{run.name}"
            run.config.setdefault("optim", {})["lr"] = lr
            run.config["detect"] = {"reference_run": "runs/b-standard-0"}
            runs.append(run)
    onsets = [f for f in findings(runs) if f.key == "B.onset_delay"]
    pairs = sorted((p["fix_run"], p["reference_run"]) for f in onsets for p in f.numbers["pairs"])
    assert pairs == [("demo1/b-fix-0", "demo1/b-standard-0"), ("demo2/b-fix-0", "demo2/b-standard-0")]
