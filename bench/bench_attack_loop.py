"""Attack engine internals, as ratios measured side by side (bench/timing.py ``compare``; both sides warmed up).

Setting as bench_attacks.py (embedded MobileNetV2, 32 px, batch 256, CPU, 2 threads, Fashion-MNIST images
labelled with the model's own predictions), at the eps where about a third of the samples stay robust:

1. PGD-k time vs k forward+backward passes (w.r.t. the input) of the same prepared model (<= 1.1x).
2. ``robust_curve`` over 9 eps (0..8/255, APGD-CE-10) vs 9 independent ``robust_accuracy`` runs (<= 0.5x), with
   the curve's accuracy no higher than the independent runs' at every eps.

Run: ``python -m bench attack_loop`` (or ``make bench``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.bench_attacks import BATCH, SIZE, STEPS, model_and_data, pick_eps, robustft_attack
from bench.timing import compare, report_line
from robustft.attacks import build_attack, prepare_for_attack, robust_accuracy, robust_curve
from robustft.attacks.base import loss_and_grad
from robustft.config.units import eps_grid


def main() -> None:
    torch.set_num_threads(2)
    model, images, labels = model_and_data(BATCH, SIZE)
    eps = pick_eps(model, images, labels, "pgd", 0.30)

    # 1. Loop overhead: PGD-k vs k forward+backward of the same prepared model.
    prepared = prepare_for_attack(model)
    pgd_plain = robustft_attack("pgd", eps).with_options(early_stop=False)

    def k_passes():
        for _ in range(STEPS):
            loss_and_grad(prepared, images, lambda z: F.cross_entropy(z, labels, reduction="none"))

    # 5 rounds: this ratio is close to its target (the unavoidable part is one extra forward to score the last
    # iterate, ~3% at k=10), so it needs more samples than the others to be read reliably on a noisy machine.
    timing = compare({"k_fwd_bwd": k_passes, "pgd": lambda: pgd_plain(prepared, images, labels, eps)},
                     reference="k_fwd_bwd", rounds=5, warmup=1)
    ratio = timing["pgd"].ratio_to_reference
    print(report_line(f"PGD-{STEPS} time vs {STEPS} x forward+backward", ratio, "<= 1.1x", ratio <= 1.1))

    # 2. Nested curve vs independent runs.
    grid = eps_grid(8 / 255)
    # Deterministic APGD (start at the clean image, as in the paper's Algorithm 1): then a sample's attack at an eps
    # is the same in both runs, and "nested accuracy no higher than independent" is exact, not just in expectation.
    apgd = build_attack("apgd-ce", steps=STEPS, random_start=False)
    curves: dict[str, list[float]] = {}

    def nested():
        curves["nested"] = [r.accuracy for r in robust_curve(model, (images, labels), apgd, grid)]

    def independent():
        curves["independent"] = [robust_accuracy(model, (images, labels), apgd, e).accuracy for e in grid]

    timing = compare({"independent": independent, "nested": nested}, reference="independent", rounds=3, warmup=1)
    ratio = timing["nested"].ratio_to_reference
    no_higher = all(n <= i for n, i in zip(curves["nested"], curves["independent"], strict=True))
    print("curve (nested):      " + " ".join(f"{a:.1%}" for a in curves["nested"]))
    print("curve (independent): " + " ".join(f"{a:.1%}" for a in curves["independent"]))
    print(report_line("robust_curve (9 eps) time vs 9 independent APGD runs", ratio,
                      "<= 0.5x, accuracy no higher at every eps", ratio <= 0.5 and no_higher))


if __name__ == "__main__":
    main()
