"""Findings on synthetic run records: every verdict of every claim is produced by the numbers, not canned."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from robustft.analysis import evidence
from robustft.analysis.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Finding, findings
from robustft.analysis.findings_claims import CLAIM_KEYS
from robustft.runs import Run

EPS_A = 1 / 255
EPS_B = 32 / 255


def held(name: str, config: dict, metrics: pd.DataFrame) -> Run:
    """A run held in memory, as the trainer would have summarised it (10 classes)."""
    return Run(name=name, config=config, metrics=metrics, summary={"detection": {"num_classes": 10}})


def _acc(step, epoch, split, value, n, attack="clean", eps=0.0, metric="accuracy"):
    return {"step": step, "epoch": epoch, "split": split, "metric": metric, "attack": attack, "eps": eps,
            "value": value, "n": n}


def _config(strategy="full", objective="standard", schedule="zero", lr=1e-3, seed=0, eps_value=EPS_B):
    return {"name": "x", "output_dir": "runs", "seed": seed, "model": {"name": "mobilenet_v2", "image_size": 32},
            "data": {"name": "fashion-mnist", "image_size": 32}, "strategy": {"name": strategy},
            "objective": {"name": objective}, "eps": {"schedule": schedule, "value": eps_value},
            "optim": {"lr": lr}, "eval": {"schedule": "paper-a"}}


def paper_a_run(strategy, clean, robust, n=256, ood=None, seed=0, steps=None):
    steps = steps or [50 * i for i in range(len(clean))]
    rows = []
    for i, step in enumerate(steps):
        rows.append(_acc(step, step / 100, "test", clean[i], n))
        rows.append(_acc(step, step / 100, "test", robust[i], n, "pgd", EPS_A))
        for name, values in (ood or {}).items():
            rows.append(_acc(step, step / 100, f"ood:{name}", values[i], n))
    return held(f"a-{strategy}-{seed}", _config(strategy, seed=seed), pd.DataFrame(rows))


def study_findings(runs, **options) -> list[Finding]:
    """The findings of one study alone, without the cross-study claims (tests/test_findings_claims_*.py)."""
    return [f for f in findings(runs, **options) if f.key not in CLAIM_KEYS]


def verdict(found: list[Finding], key: str) -> Finding:
    (match,) = [f for f in found if f.key == key]
    return match


# ----------------------------------------------------------------------------------------------------------------
# Paper A: robust peak


@pytest.mark.parametrize("robust, clean, n, expected", [
    # rises from 2% to 30%, falls to 8% while clean keeps rising: the paper's shape
    ([0.02, 0.20, 0.30, 0.15, 0.08], [0.2, 0.7, 0.8, 0.85, 0.88], 512, HOLDS),
    # still rising at the last evaluation: no degradation within the run
    ([0.02, 0.10, 0.20, 0.25, 0.32], [0.2, 0.7, 0.8, 0.85, 0.88], 512, DOES_NOT_HOLD),
    # robust falls, but clean collapses with it: the model got worse, not a trade-off
    ([0.02, 0.20, 0.30, 0.15, 0.08], [0.2, 0.7, 0.9, 0.6, 0.4], 512, DOES_NOT_HOLD),
    # the same shape at the noise level of 1-5% on 64 samples
    ([0.02, 0.03, 0.05, 0.03, 0.02], [0.2, 0.7, 0.8, 0.85, 0.88], 64, INCONCLUSIVE),
    # a clear rise, then a decline smaller than the sampling noise
    ([0.02, 0.20, 0.30, 0.28, 0.27], [0.2, 0.7, 0.8, 0.85, 0.88], 256, INCONCLUSIVE),
    # robust accuracy degrades, but clean accuracy has stopped rising: "while clean accuracy still rises" is untested
    ([0.02, 0.20, 0.30, 0.15, 0.08], [0.2, 0.7, 0.85, 0.86, 0.85], 512, INCONCLUSIVE),
])
def test_robust_peak_verdict_follows_the_curve_and_its_noise(robust, clean, n, expected):
    runs = [paper_a_run("full", clean, robust, n), paper_a_run("linear", clean, [0.01] * 5, n)]
    found = verdict(findings(runs), "A.robust_peak")
    assert found.verdict == expected, found.why
    assert found.numbers["peak"]["value"] == max(robust) and found.paper == "A"


@pytest.mark.parametrize("final, expected", [(121, HOLDS), (122, INCONCLUSIVE)])
def test_the_peak_is_widened_for_being_the_largest_of_m_evaluations(final, expected):
    # Peak 154/512 among 5 evaluations, final 121 or 122 of 512: both drops are significant at a plain 95%, but only
    # the larger one at 1 - 0.05 / 5, the level of the largest of 5 (Bonferroni): the boundary lies between them.
    robust = [0.02, 0.2, 154 / 512, 0.25, final / 512]
    runs = [paper_a_run("full", [0.2, 0.6, 0.7, 0.8, 0.9], robust, 512), paper_a_run("linear", [0.2] * 5, [0.01] * 5)]
    found = verdict(findings(runs), "A.robust_peak")
    assert found.verdict == expected, found.why
    plain = evidence.difference(evidence.accuracy(154 / 512, 512), evidence.accuracy(final / 512, 512))
    assert plain.low > 0  # unwidened, both would hold
    assert found.numbers["peak"]["high"] == pytest.approx(evidence.accuracy(154 / 512, 512, 0.99).high)


def test_the_same_drop_is_inconclusive_on_few_samples_and_holds_on_many():
    clean, robust = [0.2, 0.7, 0.8, 0.85, 0.88], [0.02, 0.2, 0.3, 0.22, 0.2]
    few = verdict(findings([paper_a_run("full", clean, robust, 64), paper_a_run("lora", clean, robust, 64)]),
                  "A.robust_peak")
    many = verdict(findings([paper_a_run("full", clean, robust, 4096), paper_a_run("lora", clean, robust, 4096)]),
                   "A.robust_peak")
    assert (few.verdict, many.verdict) == (INCONCLUSIVE, HOLDS)


# ----------------------------------------------------------------------------------------------------------------
# Paper A: Pareto areas

CLEAN = [0.2, 0.6, 0.8, 0.9]


def _strategies(robust_by_strategy, n=512):
    return [paper_a_run(name, CLEAN, robust, n) for name, robust in robust_by_strategy.items()]


def test_bitfit_largest_area_holds_when_its_interval_is_above_all_others():
    runs = _strategies({"bitfit": [0.1, 0.5, 0.5, 0.4], "full": [0.02, 0.1, 0.1, 0.05],
                        "linear": [0.02, 0.3, 0.35, 0.3], "lora": [0.02, 0.05, 0.05, 0.05]})
    found = findings(runs)
    largest = verdict(found, "A.largest_area")
    assert largest.verdict == HOLDS and largest.numbers["leader"] == "bitfit"
    assert verdict(found, "A.bitfit_above_average").verdict == HOLDS  # measurably above the mean area
    assert verdict(found, "A.linear_above_average").verdict == HOLDS


def test_peripheral_strategies_below_average_do_not_hold_and_the_sentence_says_why():
    runs = _strategies({"bitfit": [0.01, 0.01, 0.02, 0.01], "linear": [0.01, 0.01, 0.01, 0.01],
                        "full": [0.02, 0.3, 0.25, 0.2], "lora": [0.02, 0.25, 0.3, 0.2]})
    found = findings(runs)
    largest = verdict(found, "A.largest_area")
    assert largest.verdict == DOES_NOT_HOLD and largest.numbers["leader"] in ("full", "lora")
    bitfit = verdict(found, "A.bitfit_above_average")
    assert bitfit.verdict == DOES_NOT_HOLD
    assert "mobilenet_v2 on fashion-mnist at 32 px" in bitfit.why and "ViT-B/16" in bitfit.why
    assert bitfit.numbers["percent_above_average"]["high"] < 0


def test_bitfits_claim_is_bitfits_alone_and_linear_probing_is_its_own_line():
    # Paper A's abstract credits BitFit (+81.5% on CIFAR-10); its poster groups BitFit with linear probing. BitFit
    # well above the average and linear probing well below: BitFit's claim holds, linear probing's does not.
    runs = _strategies({"bitfit": [0.1, 0.5, 0.5, 0.4], "linear": [0.01, 0.01, 0.01, 0.01],
                        "full": [0.02, 0.2, 0.2, 0.15], "lora": [0.02, 0.2, 0.2, 0.15]})
    found = findings(runs)
    bitfit, linear = verdict(found, "A.bitfit_above_average"), verdict(found, "A.linear_above_average")
    assert (bitfit.verdict, linear.verdict) == (HOLDS, DOES_NOT_HOLD), (bitfit.why, linear.why)
    without_linear = findings([r for r in runs if r.config["strategy"]["name"] != "linear"])
    assert verdict(without_linear, "A.bitfit_above_average").verdict == HOLDS
    assert not [f for f in without_linear if f.key == "A.linear_above_average"]


def test_close_areas_are_inconclusive():
    runs = _strategies({"bitfit": [0.05, 0.2, 0.2, 0.15], "full": [0.05, 0.21, 0.19, 0.15],
                        "linear": [0.05, 0.19, 0.2, 0.15]}, n=128)
    found = findings(runs)
    assert verdict(found, "A.largest_area").verdict == INCONCLUSIVE
    assert verdict(found, "A.bitfit_above_average").verdict == INCONCLUSIVE


def test_seeds_replace_wilson_intervals_when_there_are_several():
    # Two seeds per strategy whose areas agree closely: the seeds' spread is small, so the ordering is resolved
    # even on 64 samples, where Wilson bounds alone would overlap.
    runs = []
    for seed, jitter in ((0, 0.0), (1, 0.01)):
        runs.append(paper_a_run("bitfit", CLEAN, [0.1, 0.4 + jitter, 0.4, 0.35], 64, seed=seed))
        runs.append(paper_a_run("full", CLEAN, [0.1, 0.3 + jitter, 0.3, 0.25], 64, seed=seed))
    largest = verdict(findings(runs), "A.largest_area")
    assert largest.numbers["areas"]["bitfit"]["basis"] == "2 seeds"
    assert largest.verdict == HOLDS
    single = verdict(findings([r for r in runs if r.config["seed"] == 0]), "A.largest_area")
    assert single.verdict == INCONCLUSIVE and single.numbers["areas"]["bitfit"]["basis"].startswith("Wilson")


# ----------------------------------------------------------------------------------------------------------------
# Paper A: OOD


@pytest.mark.parametrize("ood, expected", [
    ([0.1, 0.3, 0.5, 0.6, 0.7], HOLDS),
    ([0.7, 0.6, 0.5, 0.3, 0.1], DOES_NOT_HOLD),
    ([0.3, 0.5, 0.2, 0.6, 0.3], INCONCLUSIVE),
])
def test_ood_tracks_clean_from_the_correlation_interval(ood, expected):
    clean = [0.2, 0.5, 0.7, 0.8, 0.9]
    runs = [paper_a_run("full", clean, [0.1] * 5, ood={"noise": ood}),
            paper_a_run("bitfit", [c - 0.05 for c in clean], [0.1] * 5, ood={"noise": [o - 0.05 for o in ood]})]
    found = verdict(findings(runs), "A.ood_tracks_clean")
    assert found.verdict == expected, found.why
    assert found.numbers["pearson_r"]["noise"]["basis"] == "Fisher z, 10 points"


def test_a_single_strategy_is_not_a_paper_a_study_and_unrelated_runs_are_not_mixed():
    assert findings([paper_a_run("full", [0.2, 0.8, 0.9], [0.1, 0.3, 0.1])]) == []
    other = paper_a_run("lora", [0.2, 0.8, 0.9], [0.1, 0.3, 0.1])
    other.config["data"]["name"] = "mnist"  # another task: not comparable with the full run
    assert findings([paper_a_run("full", [0.2, 0.8, 0.9], [0.1, 0.3, 0.1]), other]) == []


# ----------------------------------------------------------------------------------------------------------------
# Paper B


def paper_b_run(kind, clean_by_epoch, curve, n=200, seed=0):
    """kind: standard | fix | scheduled. curve: accuracies at eps 0, 8/255, ..., 32/255 of the final model."""
    objective, schedule = ("standard", "zero") if kind == "standard" else ("adversarial",
                                                                            "constant" if kind == "fix" else kind)
    rows = []
    steps_per_epoch = 10
    for i, value in enumerate(clean_by_epoch):
        step = i * steps_per_epoch
        rows.append(_acc(step, float(i), "val", value, n))
        rows.append(_acc(step, float(i), "test", value, n))
    last = (len(clean_by_epoch) - 1) * steps_per_epoch
    grid = [k * 8 / 255 for k in range(len(curve))]
    for eps, value in zip(grid, curve, strict=True):
        rows.append(_acc(last, float(len(clean_by_epoch) - 1), "test", value, n, "apgd-ce", eps, "curve_accuracy"))
    config = _config("full", objective, schedule, seed=seed)
    return held(f"b-{kind}-{seed}", config, pd.DataFrame(rows))


def test_schedule_beats_fix_holds_on_clean_and_eadv_and_fix_delays_onset():
    runs = [paper_b_run("standard", [0.1, 0.8, 0.85, 0.9], [0.9, 0.1, 0.0, 0.0, 0.0]),
            paper_b_run("fix", [0.1, 0.12, 0.3, 0.45], [0.45, 0.35, 0.3, 0.25, 0.2]),
            paper_b_run("scheduled", [0.1, 0.8, 0.7, 0.65], [0.65, 0.5, 0.4, 0.3, 0.25])]
    found = study_findings(runs)
    assert [f.key for f in found] == ["B.clean", "B.expected_robustness", "B.onset_delay"]
    assert {f.verdict for f in found} == {HOLDS}, [f.why for f in found]
    onset = verdict(found, "B.onset_delay")
    assert onset.numbers["fix_onset_epoch"]["epoch"] == 2 and onset.numbers["reference_onset_epoch"]["epoch"] == 1
    assert onset.numbers["threshold"] == pytest.approx(0.2)  # max(5%, 2 x chance) for 10 classes


def test_side_by_side_studies_say_in_their_setting_what_tells_them_apart():
    # a sweep over strategy x schedule: one paper B study per strategy; their findings share claims, so each
    # finding's setting must name its strategy (or a reader sees two identical rows)
    runs = []
    for strategy in ("full", "bitfit"):
        for kind in ("fix", "scheduled"):
            run = paper_b_run(kind, [0.1, 0.5, 0.7], [0.6, 0.3, 0.2, 0.1, 0.0])
            run.config["strategy"]["name"] = strategy
            run.name = f"{run.name}-{strategy}"
            runs.append(run)
    found = study_findings(runs)
    assert len(found) == 4
    settings = sorted({f.setting for f in found})
    assert [s.rsplit("; ", 1)[-1] for s in settings] == ["strategy.name=bitfit", "strategy.name=full"]
    assert all(s.startswith("mobilenet_v2 on fashion-mnist at 32 px") for s in settings)
    # one study alone keeps the plain setting
    assert all(";" not in f.setting for f in study_findings(runs[:2]))


def test_fix_better_than_schedule_does_not_hold_and_says_how_the_setting_differs():
    runs = [paper_b_run("standard", [0.1, 0.8, 0.9], [0.9, 0.0, 0.0, 0.0, 0.0]),
            paper_b_run("fix", [0.1, 0.7, 0.85], [0.85, 0.6, 0.5, 0.4, 0.3]),
            paper_b_run("scheduled", [0.1, 0.75, 0.7], [0.7, 0.4, 0.3, 0.2, 0.1])]
    found = findings(runs)
    for key in ("B.clean", "B.expected_robustness"):
        assert verdict(found, key).verdict == DOES_NOT_HOLD
        assert "eps_g = 32/255" in verdict(found, key).why
        # the contrast with the paper's setting is stated as fact, not as a cause this run may contradict
        assert "4/255 and 8/255, over 30 backbone x task configurations" in verdict(found, key).why
    assert verdict(found, "B.onset_delay").verdict == DOES_NOT_HOLD  # both adapt in the first epoch


def test_close_schedules_and_an_ambiguous_onset_are_inconclusive():
    runs = [paper_b_run("standard", [0.1, 0.3, 0.8], [0.8, 0.1, 0.0, 0.0, 0.0], n=100),
            paper_b_run("fix", [0.1, 0.22, 0.5], [0.5, 0.3, 0.2, 0.1, 0.05], n=100),
            paper_b_run("scheduled", [0.1, 0.4, 0.52], [0.52, 0.31, 0.2, 0.11, 0.05], n=100)]
    found = study_findings(runs)
    assert {f.key: f.verdict for f in found} == {"B.clean": INCONCLUSIVE, "B.expected_robustness": INCONCLUSIVE,
                                                 "B.onset_delay": INCONCLUSIVE}


def test_the_untrained_head_at_step_0_is_not_an_onset():
    # 17% at step 0 on 200 samples: the interval reaches above 20%, but that is the fresh head, not adaptation.
    # RFT-fix stays measurably below 20% until epoch 2 while the reference is measurably above from epoch 1.
    runs = [paper_b_run("standard", [0.17, 0.6, 0.8, 0.85], [0.85, 0.0, 0.0, 0.0, 0.0]),
            paper_b_run("fix", [0.17, 0.12, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1, 0.0]),
            paper_b_run("scheduled", [0.17, 0.6, 0.5, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1])]
    onset = verdict(findings(runs), "B.onset_delay")
    assert onset.verdict == HOLDS, onset.why
    assert onset.numbers["fix_onset_epoch"]["earliest"] == 2 and onset.numbers["reference_onset_epoch"]["latest"] == 1
    # A threshold the fresh head already clears says nothing about adaptation.
    for run in runs:
        run.metrics.loc[run.metrics["step"] == 0, "value"] = 0.5
    onset = verdict(findings(runs), "B.onset_delay")
    assert onset.verdict == INCONCLUSIVE and "step 0" in onset.why


def test_a_single_noisy_crossing_leaves_the_onset_open():
    # RFT-fix crosses 20% once at epoch 1 (24% on 200 images), falls back, and is measurably above only from epoch 4:
    # paper B's onset (the first crossing) is epoch 1, but its range reaches epoch 4, which the reference's (epoch 1)
    # does not: the delay is neither shown nor ruled out.
    runs = [paper_b_run("standard", [0.17, 0.6, 0.7, 0.8, 0.85, 0.85], [0.85, 0.0, 0.0, 0.0, 0.0]),
            paper_b_run("fix", [0.17, 0.24, 0.08, 0.12, 0.3, 0.35], [0.35, 0.3, 0.2, 0.1, 0.0]),
            paper_b_run("scheduled", [0.17, 0.6, 0.7, 0.5, 0.5, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1])]
    onset = verdict(findings(runs), "B.onset_delay")
    assert onset.verdict == INCONCLUSIVE, onset.why
    fix = onset.numbers["fix_onset_epoch"]
    assert (fix["epoch"], fix["earliest"], fix["latest"]) == (1, 1, 4)
    assert onset.numbers["reference_onset_epoch"]["epoch"] == 1


def test_without_a_reference_run_there_is_no_onset_finding():
    runs = [paper_b_run("fix", [0.1, 0.2, 0.4], [0.4, 0.3, 0.2, 0.1, 0.0]),
            paper_b_run("scheduled", [0.1, 0.7, 0.7], [0.7, 0.5, 0.3, 0.2, 0.1])]
    assert [f.key for f in study_findings(runs)] == ["B.clean", "B.expected_robustness"]


# ----------------------------------------------------------------------------------------------------------------
# The intervals themselves


def test_difference_combines_half_widths_and_sign_is_three_way():
    a, b = evidence.accuracy(0.6, 100), evidence.accuracy(0.4, 100)
    d = evidence.difference(a, b)
    assert d.value == pytest.approx(0.2)
    assert d.low == pytest.approx(0.2 - math.hypot(a.value - a.low, b.high - b.value))
    assert evidence.sign(d) == evidence.GREATER and evidence.sign(evidence.difference(b, a)) == evidence.LESS
    assert evidence.sign(evidence.difference(a, evidence.accuracy(0.55, 100))) == evidence.UNRESOLVED


def test_findings_is_part_of_the_analysis_api():
    import robustft.analysis

    assert robustft.analysis.findings is findings and robustft.analysis.Finding is Finding


def test_records_without_a_sample_size_make_claims_inconclusive_not_an_error():
    # Records written by hand or by another tool may lack ``n``: no interval can be drawn, so no verdict either.
    runs = [paper_b_run("standard", [0.1, 0.8, 0.85, 0.9], [0.9, 0.1, 0.0, 0.0, 0.0]),
            paper_b_run("fix", [0.1, 0.12, 0.3, 0.45], [0.45, 0.35, 0.3, 0.25, 0.2]),
            paper_b_run("scheduled", [0.1, 0.8, 0.7, 0.65], [0.65, 0.5, 0.4, 0.3, 0.25])]
    for run in runs:
        run.metrics = run.metrics.drop(columns=["n"])
    found = findings(runs)
    assert found and all(f.verdict != HOLDS and f.verdict != DOES_NOT_HOLD for f in found), [f.why for f in found]


def test_a_study_directory_is_read_as_robustft_report_reads_it(tmp_path):
    """`findings("study")` takes what `robustft report study` takes: a study's folder (or runs/, run directories,
    globs), read by the report's loader; the verdicts are those of the same runs in memory."""
    from robustft.runs import load_runs

    runs = _strategies({"bitfit": [0.1, 0.5, 0.5, 0.4], "full": [0.02, 0.1, 0.1, 0.05],
                        "linear": [0.02, 0.3, 0.35, 0.3], "lora": [0.02, 0.05, 0.05, 0.05]})
    for run in runs:
        Run.create(tmp_path / "study" / run.name, run.config).metrics_writer().write(
            run.metrics.to_dict("records"))
    expected = [(f.key, f.verdict, f.numbers.get("leader")) for f in findings(runs)]
    assert expected and verdict(findings(runs), "A.largest_area").verdict == HOLDS
    for argument in (tmp_path / "study", str(tmp_path / "study"), str(tmp_path / "study" / "*"),
                     [tmp_path / "study"], load_runs(tmp_path / "study")):
        assert [(f.key, f.verdict, f.numbers.get("leader")) for f in findings(argument)] == expected, argument
