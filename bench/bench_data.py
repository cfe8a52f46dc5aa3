"""Data benchmark on embedded Fashion-MNIST at 32 px, every figure a side-by-side ratio.

1. Loader vs training step: the time to get one shuffled batch of 256 from ``make_loader`` (plain, and with
   paper B's augmentation flip + color_jitter:0.25 + rotation:10) divided by the time of one forward + backward
   pass of the embedded MobileNetV2 on a batch of 256 at 32 px (target <= 0.1x: loading is not the bottleneck).
2. Cached vs first load: ``load("fashion-mnist", "train", image_size=32)`` (all 54,000 training images) with the
   decoded arrays already in the on-disk cache, divided by the same load into an empty cache (gzip decode +
   batched resize; target <= 0.5x). The absolute first-load seconds are printed too (target: seconds).

Run: ``python -m bench data`` (``BENCH_DATA_ROUNDS=5`` by default).
"""

from __future__ import annotations

import os
import tempfile
import time

import torch

from bench.timing import compare, report_line

BATCH = 256
SIZE = 32


def _fresh_memory() -> None:
    from robustft.data.loading import _MEMORY

    _MEMORY.clear()


def loader_vs_step(rounds: int) -> None:
    from robustft.data import load, make_loader
    from robustft.models import build

    dataset = load("fashion-mnist", "train", image_size=SIZE)
    plain = make_loader(dataset, BATCH, shuffle=True, seed=0, drop_last=True)
    augmented = make_loader(dataset, BATCH, shuffle=True, seed=0, drop_last=True,
                            augment=["flip", "color_jitter:0.25", "rotation:10"])
    iterators = {"plain": iter(plain), "augmented": iter(augmented)}

    def next_batch(key: str, loader) -> None:
        try:
            next(iterators[key])
        except StopIteration:
            iterators[key] = iter(loader)
            next(iterators[key])

    model = build("mobilenet_v2", 10, image_size=SIZE)
    model.train()
    images, labels = next(iter(plain))

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()

    timings = compare({"step": train_step, "loader": lambda: next_batch("plain", plain),
                       "loader+augment": lambda: next_batch("augmented", augmented)},
                      reference="step", rounds=rounds, warmup=1)
    step = timings["step"].seconds
    print(f"mobilenet_v2 forward+backward, batch {BATCH} at {SIZE} px: {step * 1000:.0f} ms (reference)")
    for name in ("loader", "loader+augment"):
        ratio = timings[name].ratio_to_reference
        print(f"  {name}: {timings[name].seconds * 1000:.1f} ms per batch")
        # four decimals: the plain loader's ratio is far below report_line's two
        print(f"{name} time per batch / forward+backward time per batch: {ratio:.4f}x (target <= 0.10x) "
              f"{'PASS' if ratio <= 0.10 else 'MISS'}")


def first_vs_cached_load(rounds: int) -> None:
    from robustft.data import load

    saved = os.environ.get("ROBUSTFT_CACHE")
    workspace = tempfile.TemporaryDirectory(prefix="robustft-bench-cache-")
    warm_dir = os.path.join(workspace.name, "warm")
    counter = iter(range(10**6))
    first_seconds = []

    def first() -> None:
        os.environ["ROBUSTFT_CACHE"] = os.path.join(workspace.name, f"cold{next(counter)}")
        _fresh_memory()
        start = time.perf_counter()
        load("fashion-mnist", "train", image_size=SIZE)
        first_seconds.append(time.perf_counter() - start)

    def cached() -> None:
        os.environ["ROBUSTFT_CACHE"] = warm_dir
        _fresh_memory()
        load("fashion-mnist", "train", image_size=SIZE)

    try:
        timings = compare({"first": first, "cached": cached}, reference="first", rounds=rounds, warmup=1)
    finally:
        if saved is None:
            os.environ.pop("ROBUSTFT_CACHE", None)
        else:
            os.environ["ROBUSTFT_CACHE"] = saved
        workspace.cleanup()
        _fresh_memory()
    print(f"first load of all Fashion-MNIST train at {SIZE} px (decode + resize, empty cache): "
          f"{timings['first'].seconds:.2f} s (median), cached load: {timings['cached'].seconds:.2f} s")
    seconds = timings["first"].seconds
    print(f"first load seconds (absolute, not a ratio): {seconds:.2f} s (target < 10 s) "
          f"{'PASS' if seconds < 10 else 'MISS'}")
    ratio = timings["cached"].ratio_to_reference
    print(report_line("cached load time / first load time", ratio, "<= 0.50x", ratio <= 0.5))


def main() -> None:
    torch.set_num_threads(2)
    rounds = int(os.environ.get("BENCH_DATA_ROUNDS", "5"))
    loader_vs_step(rounds)
    first_vs_cached_load(rounds)


if __name__ == "__main__":
    main()
