"""Attack engine internals, as ratios measured side by side (bench/timing.py ``compare``; both sides warmed up).

Setting as bench_attacks.py (embedded MobileNetV2, 32 px, batch 256, CPU, 2 threads, Fashion-MNIST images
labelled with the model's own predictions), at the eps where about a third of the samples stay robust:

1. PGD-k time vs k forward+backward passes (w.r.t. the input) of the same prepared model (<= 1.1x).
2. ``robust_curve`` over 9 eps (0..8/255, APGD-CE-10) vs 9 independent ``robust_accuracy`` runs (<= 0.5x), with
   the curve's accuracy no higher than the independent runs' at every eps.
3. PGD-10 through ``robust_accuracy`` on a NEW batch of 256 test images at every call (as when a study evaluates
   new images or a new model), with batch sizes rounded (``attacks.prepare.BATCH_STEP``, the default) vs not
   rounded (``BATCH_STEP = 1``), on 2 and 1 threads (>= 1.0x, robust accuracy within 2 samples of 256). The
   other figures repeat one batch, whose shapes oneDNN has compiled after the first call; here the unrounded side
   meets new shapes.
4. PGD-10 through ``robust_accuracy`` on the same batch, the prepared copy with its ``InPlaceReLU6``
   (``attacks.prepare.swap_relu6``, the default) vs with torch's ``nn.ReLU6(inplace=True)``, whose autograd copies
   every activated tensor first (attacks/relu6_in_place.py), on 2 and 1 threads (>= 1.0x, the same robust
   accuracy: both compute the same values and gradients).
5. PGD-10 through ``robust_accuracy`` on the same batch, the prepared copy's 1 x 1 convolutions run as matrix
   products on small maps (1 x 1, and up to 4 x 4 in channels_last: ``attacks.prepare.swap_pointwise``, the default;
   attacks/pointwise_linear.py) vs as oneDNN convolutions, on 2 and 1 threads (>= 1.0x, robust accuracy within 2
   samples: another summation order).
   Figures 4, 5 and 8 prepare a fresh copy at every call (``ROBUSTFT_PREPARED_CACHE=off``): a kept copy would
   be the same on both sides.
6. PGD-10 through ``robust_accuracy`` on the same model, the prepared copy kept across calls and refreshed in place
   (attacks/prepared_cache.py, the default) vs prepared afresh at every call (``ROBUSTFT_PREPARED_CACHE=off``), on
   2 and 1 threads (>= 1.0x, the same robust accuracy: the refreshed copy holds a fresh copy's tensors bit for bit).
7. PGD-10 through ``robust_accuracy`` on the same model, ReLU6's backward masking the gradient in place where nobody
   else reads it (``attacks.relu6_in_place.mask_in_place``, the default) vs always writing a new tensor, on 2 and 1
   threads (>= 1.0x, the same robust accuracy: the same values bit for bit).
8. As figure 5, the stem's input gradient as one matrix product and four phase sums (``swap_stem``;
   attacks/stem_input_grad.py) vs oneDNN's backward of the stride-2 convolution.
9. PGD-10 through ``robust_accuracy`` on the embedded MobileNetV2 with Compacter (trained-like: every trainable
   tensor moved by seeded noise), the prepared copy's PHM projections as the plain frozen 1 x 1 convolutions they
   compute (``strategies.plain_projections``, the default) vs rebuilt from their Kronecker factors at every pass, a
   fresh copy per call on both sides, on 2 and 1 threads (>= 1.0x, robust accuracy within 2 samples).
10. PGD-10 through ``robust_accuracy`` on the same backbone with bottleneck adapters (trained-like), the prepared copy
   kept and refreshed in place (hooked models refresh since 2026-12-07: the copy keeps the adapters' hooks) vs
   prepared afresh per call (what every hooked model got before), on 2 and 1 threads (>= 1.0x, the same robust
   accuracy).
11. ``robust_curve`` over 33 eps (0 to twice the eps of figure 1, as paper B's 33-point E.adv grid; APGD-CE-10 with
   random starts), the levels attacked side by side (attacks/curve_levels.py, the default) vs level by level
   (depth 1: the plain nested loop), on 2 and 1 threads (>= 1.0x, the same verdicts sample by sample at every eps:
   both draw each level's start noise alike).

Run: ``python -m bench attack_loop`` (or ``make bench``).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from bench.bench_attacks import BATCH, SIZE, STEPS, model_and_data, pick_eps, robustft_attack
from bench.images import fashion_images
from bench.timing import compare, report_line
from robustft import strategies
from robustft.attacks import (
    build_attack,
    curve_levels,
    prepare,
    prepare_for_attack,
    prepared_cache,
    relu6_in_place,
    robust_accuracy,
    robust_curve,
)
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

    # 11. A 33-point curve: levels side by side vs level by level (the same verdicts).
    for count in (2, 1):
        torch.set_num_threads(count)
        speedup, same = side_by_side_or_not(model, images, labels, [eps * k / 16 for k in range(33)])
        print(report_line(f"robust_curve (33 eps, APGD-CE-{STEPS}), {count} thread(s): levels side by side vs level "
                          "by level", speedup, ">= 1.0x, the same verdicts", speedup >= 1.0 and same))
    torch.set_num_threads(2)

    # 3. New images at every call: rounded batch sizes vs not.
    rounds, warmup = 4, 1
    pool = fashion_images(BATCH * 2 * (rounds + warmup) + BATCH, SIZE)
    with torch.no_grad():
        pool_labels = torch.cat([model(pool[i:i + BATCH]).argmax(1) for i in range(0, len(pool), BATCH)])
    default_step = prepare.BATCH_STEP
    for count in (2, 1):
        torch.set_num_threads(count)
        calls = {"unrounded": 0, "rounded": 0}
        accuracy = {"unrounded": [], "rounded": []}

        def on_new_batch(name: str, step: int, calls=calls, accuracy=accuracy):
            def run():
                prepare.BATCH_STEP = step
                batch = slice(calls[name] * BATCH, (calls[name] + 1) * BATCH)
                calls[name] += 1
                result = robust_accuracy(model, (pool[batch], pool_labels[batch]), robustft_attack("pgd", eps), eps)
                accuracy[name].append(result.accuracy)
            return run

        try:
            sides = {"unrounded": on_new_batch("unrounded", 1), "rounded": on_new_batch("rounded", default_step)}
            timing = compare(sides, reference="unrounded", rounds=rounds, warmup=warmup)
        finally:
            prepare.BATCH_STEP = default_step
        speedup = 1 / timing["rounded"].ratio_to_reference
        # Padding may move a logit in its last bits; a sample near its decision boundary may then flip.
        same = all(abs(a - b) <= 2 / BATCH for a, b in zip(accuracy["rounded"], accuracy["unrounded"], strict=True))
        print(report_line(f"PGD-{STEPS} on a new batch per call, {count} thread(s): rounded batch sizes vs not",
                          speedup, ">= 1.0x, robust accuracy within 2 samples", speedup >= 1.0 and same))

    # 4. The prepared copy's ReLU6: in place without autograd's copy vs torch's in-place ReLU6 (same values: the
    # same robust accuracy). 5. Its 1 x 1 layers on small maps: matrix products vs oneDNN's 1 x 1 convolution
    # (another summation order: within 2 samples).
    # 8. The stem's input gradient as a product vs oneDNN's backward-data (another summation order: within 2
    # samples).
    for step, what, exact in (("swap_relu6", "prepared copy with InPlaceReLU6 vs torch's ReLU6", True),
                              ("swap_pointwise", "prepared copy's 1 x 1 layers on small maps as matrix products vs "
                                                 "as convolutions", False),
                              ("swap_stem", "prepared copy's stem input gradient as one product vs oneDNN's", False)):
        for count in (2, 1):
            torch.set_num_threads(count)
            speedup, same = with_and_without_step(step, exact, model, images, labels, eps)
            target = ">= 1.0x, the same robust accuracy" if exact else ">= 1.0x, robust accuracy within 2 samples"
            print(report_line(f"PGD-{STEPS}, {count} thread(s): {what}", speedup, target, speedup >= 1.0 and same))

    # 6. The prepared copy kept per model and refreshed in place vs a fresh copy per call (same tensors). 7. ReLU6's
    # backward masking the gradient in place where nobody else reads it vs always out of place (same values). Both:
    # the same robust accuracy.
    def keep_copy(on: bool) -> None:
        os.environ[prepared_cache.ENV] = "on" if on else "off"

    def mask_in_place(on: bool) -> None:
        relu6_in_place.mask_in_place = masking if on else (lambda grad, like, references: False)

    # 10. An adapter model's copy kept and refreshed vs prepared per call (same tensors, same robust accuracy).
    masking = relu6_in_place.mask_in_place
    adapter, adapter_labels = trained_like("adapter", images)
    for what, toggle, attacked, truth in (
            ("prepared copy kept and refreshed vs prepared per call", keep_copy, model, labels),
            ("ReLU6 backward masking in place vs out of place", mask_in_place, model, labels),
            ("adapter model's copy kept and refreshed vs prepared per call", keep_copy, adapter, adapter_labels)):
        for count in (2, 1):
            torch.set_num_threads(count)
            try:
                speedup, same = on_or_off(toggle, attacked, images, truth, eps)
            finally:
                os.environ.pop(prepared_cache.ENV, None)
                relu6_in_place.mask_in_place = masking
            print(report_line(f"PGD-{STEPS}, {count} thread(s): {what}", speedup,
                              ">= 1.0x, the same robust accuracy", speedup >= 1.0 and same))

    # 9. Compacter's PHM projections as plain layers in the prepared copy vs rebuilt at every pass (another
    # summation order: within 2 samples).
    compacter, compacter_labels = trained_like("compacter", images)
    for count in (2, 1):
        torch.set_num_threads(count)
        speedup, same = with_and_without_step("plain_projections", False, compacter, images, compacter_labels, eps,
                                              owner=strategies)
        print(report_line(f"PGD-{STEPS}, {count} thread(s): Compacter's copy with plain projections vs PHM",
                          speedup, ">= 1.0x, robust accuracy within 2 samples", speedup >= 1.0 and same))
    torch.set_num_threads(2)


def trained_like(strategy: str, images: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor]:
    """The bench's backbone with ``strategy`` applied and every trainable tensor moved by seeded noise (10% of its
    RMS; 0.05 where it is zero, as a zero-initialised up-projection), eval mode; and its own labels for ``images``."""
    from robustft.models import build

    torch.manual_seed(0)
    try:
        model = build("mobilenet_v2", 10).eval()
    except Exception:  # noqa: BLE001 - weights missing: same architecture, same cost
        model = build("mobilenet_v2", 10, pretrained=False).eval()
    info = strategies.apply(model, strategy)
    generator = torch.Generator().manual_seed(1)
    trainable = set(info.trainable_names)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in trainable:
                rms = float(param.pow(2).mean().sqrt())
                param.add_((0.1 * rms if rms > 0 else 0.05) * torch.randn(param.shape, generator=generator))
        labels = model.eval()(images).argmax(1)
    return model, labels


def side_by_side_or_not(model, images, labels, grid: list[float]) -> tuple[float, bool]:
    """Speedup of ``robust_curve`` over ``grid`` with its levels side by side (the default ``curve_levels.depth``)
    against depth 1, and whether both gave the same verdicts, sample by sample at every eps."""
    attack = build_attack("apgd-ce", steps=STEPS)
    default = curve_levels.depth
    verdicts: dict[str, np.ndarray] = {}

    def curve_with(name: str, depth):
        def run():
            curve_levels.depth = depth
            torch.manual_seed(0)  # the same start noise on both sides
            try:
                curve = robust_curve(model, (images, labels), attack, grid)
            finally:
                curve_levels.depth = default
            verdicts[name] = np.stack([r.per_sample for r in curve])
        return run

    timing = compare({"level by level": curve_with("level by level", lambda survivors, remaining, rows: 1),
                      "side by side": curve_with("side by side", default)},
                     reference="level by level", rounds=3, warmup=1)
    return 1 / timing["side by side"].ratio_to_reference, bool(np.array_equal(*verdicts.values()))


def on_or_off(toggle, model, images, labels, eps: float) -> tuple[float, bool]:
    """PGD-10 through ``robust_accuracy`` with ``toggle(True)`` against ``toggle(False)``, side by side:
    (speed-up, whether the robust accuracies are equal)."""
    found: dict[bool, set[float]] = {False: set(), True: set()}

    def side(on: bool):
        def run():
            toggle(on)
            found[on].add(robust_accuracy(model, (images, labels), robustft_attack("pgd", eps), eps).accuracy)
        return run

    timing = compare({"off": side(False), "on": side(True)}, reference="off", rounds=5, warmup=1)
    return 1 / timing["on"].ratio_to_reference, found[False] == found[True] and len(found[True]) == 1


def with_and_without_step(step: str, exact: bool, model, images, labels, eps: float, owner=prepare
                          ) -> tuple[float, bool]:
    """PGD-10 through ``robust_accuracy`` with one of ``prepare_for_attack``'s steps (``<owner>.<step>``, a function
    of the copy looked up at call time: ``prepare.swap_relu6``, ``strategies.plain_projections``) against the same
    with that step doing nothing, side by side: (speed-up, whether the robust accuracies agree: equal when
    ``exact``, else within 2 samples)."""
    original = getattr(owner, step)
    found: dict[str, set[float]] = {"without": set(), "with": set()}
    os.environ[prepared_cache.ENV] = "off"  # a kept copy would be made once, with or without the step

    def side(name: str, swapping):
        def run():
            setattr(owner, step, swapping)
            found[name].add(robust_accuracy(model, (images, labels), robustft_attack("pgd", eps), eps).accuracy)
        return run

    try:
        timing = compare({"without": side("without", lambda module: 0), "with": side("with", original)},
                         reference="without", rounds=5, warmup=1)
    finally:
        setattr(owner, step, original)
        os.environ.pop(prepared_cache.ENV, None)
    if exact:
        same = found["without"] == found["with"] and len(found["with"]) == 1
    else:
        same = all(abs(a - b) <= 2 / BATCH for a in found["without"] for b in found["with"])
    return 1 / timing["with"].ratio_to_reference, same


if __name__ == "__main__":
    main()
