"""Training-step time of each strategy relative to full fine-tuning, side by side, on the embedded MobileNetV2.

One step = forward + backward + AdamW step, batch 64 at 32 px, model in ``StrategyInfo.train_mode``. Target: the
parameter-efficient strategies are not slower than full fine-tuning (ratio <= 1.0, with 10% noise allowance on
these shared machines). Run: ``python -m bench strategies``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.timing import compare, report_line

BATCH, SIZE = 64, 32
TOLERANCE = 1.10  # ratios within 10% of full count as "not slower" (2 shared cores: noisy)


def _backbone():
    """The embedded MobileNetV2 with real weights when installed, else the same architecture at random init."""
    from robustft.models import build

    try:
        return build("mobilenet_v2", 10, pretrained=True), "embedded weights"
    except Exception as error:  # noqa: BLE001 - the cost is the same without the weights
        return build("mobilenet_v2", 10, pretrained=False), f"random init ({type(error).__name__})"


def make_step(name: str, options: dict, images: torch.Tensor, labels: torch.Tensor):
    """A zero-argument training step of ``name`` on a fresh model."""
    from robustft.strategies import apply

    model, _ = _backbone()
    info = apply(model, name, **options)
    info.train_mode(model)
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW([params[n] for n in info.trainable_names], lr=1e-4, weight_decay=0.05)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step


def main() -> None:
    from robustft.strategies import STRATEGIES, resolve_name

    # one thread: on shared cores, OpenMP threads spin-waiting on each other swamp the differences measured
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images, labels = torch.rand(BATCH, 3, SIZE, SIZE), torch.randint(0, 10, (BATCH,))
    _, source = _backbone()
    print(f"mobilenet_v2 ({source}), batch {BATCH} at {SIZE} px, forward+backward+AdamW step; ratio = time / full")
    steps = {}
    for name in STRATEGIES.names():
        probe = "peft:lora" if name == "peft" else name
        strategy, _ = resolve_name(probe, {})
        if "cnn" not in strategy.families:
            print(f"{probe}: n/a on a CNN ({'/'.join(strategy.families)} only)")
            continue
        steps[probe] = make_step(probe, {} if ":" in probe else strategy.example_options, images, labels)
    timings = compare(steps, reference="full", rounds=5, warmup=1)
    for name, timing in sorted(timings.items(), key=lambda item: item[1].ratio_to_reference):
        if name == "full":
            print(f"full: {timing.seconds * 1000:.0f} ms/step (reference)")
            continue
        # lp-ft is timed in its linear-probing phase; after the switch a step costs what "full" costs
        label = "lp-ft (linear-probing phase)" if name == "lp-ft" else name
        print(report_line(f"{label} step time / full", timing.ratio_to_reference, "<= 1.0",
                          timing.ratio_to_reference <= TOLERANCE))


if __name__ == "__main__":
    main()
