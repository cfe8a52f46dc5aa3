"""Trainer benchmark on the embedded default (ImageNet MobileNetV2 at 32 px, Fashion-MNIST), side by side.

1. Evaluation overhead of a paper-A-schedule run: a short run (``BENCH_TRAIN_STEPS``, default 200 steps of
   batch 128) with paper A's schedule and attack (PGD-15, 0.25/255 steps, eps 1/255) on fixed 128-sample subsets
   of train and test; the share is evaluation seconds / wall seconds of that run (target <= 25%).
2. One adversarial training step with a k = 7 step attack, through ``Trainer.update`` exactly as the loop runs
   it, against its parts timed alone in the same interleaved rounds: one standard training step + one k-step
   attack call (target <= 1.1x), and against one standard step (target well under 3x).
3. The same adversarial step for each strategy, relative to full fine-tuning: parameter-efficient strategies
   should make the update part cheaper.

Run: ``python -m bench train`` (``BENCH_TRAIN_STEPS=100`` for a quicker look, ``BENCH_TRAIN_PARTS=2,3`` to run
only some parts).
"""

from __future__ import annotations

import itertools
import os
import tempfile

import torch

from bench.timing import compare, report_line
from robustft.config import from_dict
from robustft.training.objectives import crafting_model, frozen_parameters

BATCH = 128
K = 7
EPS = 4 / 255
# Registry entries that need a member or an option to mean something on MobileNetV2.
STRATEGY_NAMES = {"peft": "peft:lora"}
STRATEGY_OPTIONS = {"partial": {"patterns": [r"features\.18\.", "classifier"]}}


def fashion_splits(n_train: int, n_val: int, n_test: int) -> dict:
    """Embedded Fashion-MNIST at 32 px through robustft.data (the same loader the trainer uses)."""
    from robustft.data import load

    common = {"image_size": 32, "seed": 0}
    return {"train": load("fashion-mnist", "train", limit=n_train, **common),
            "val": load("fashion-mnist", "val", limit=n_val, **common),
            "test": load("fashion-mnist", "test", limit=n_test, **common), "ood": {}}



def _config(root: str, name: str, **sections) -> dict:
    config = {"name": name, "output_dir": root, "device": "auto", "seed": 0,
              "model": {"name": "mobilenet_v2", "pretrained": True, "image_size": 32},
              "optim": {"batch_size": BATCH, "lr": 1.0e-3},
              "eval": {"schedule": "paper-a", "attack": "paper-a", "eps": ["1/255"], "subset": 128,
                       "batch_size": 256, "splits": ["train", "test"], "final": None, "ood": False},
              "logging": {"progress": False}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def eval_overhead(splits: dict, root: str, steps: int) -> float:
    from robustft.training.trainer import train

    result = train(from_dict(_config(root, "overhead", train={"steps": steps, "epochs": None})), datasets=splits,
                   quiet=True)
    summary = result.summary
    print(f"  paper-A run: {steps} steps of {BATCH}, wall {summary['wall_seconds']:.1f}s, "
          f"evaluation {summary['eval_seconds']:.1f}s, final test clean "
          f"{summary['final'].get('test/clean/accuracy', float('nan')):.3f}")
    return summary["eval_seconds"] / summary["wall_seconds"]


def _trainer(splits: dict, root: str, name: str, objective: str, strategy: str = "full", options: dict | None = None):
    from robustft.training.trainer import build_trainer

    return build_trainer(from_dict(_config(root, name, objective={"name": objective, "attack": "pgd", "steps": K},
                                           strategy={"name": strategy, "options": options or {}},
                                           train={"steps": 1000, "epochs": None})),
                         datasets=splits, quiet=True)


def step_costs(splits: dict, root: str) -> None:
    images, labels = next(iter(_batches(splits["train"])))
    batch = itertools.repeat((images, labels))
    standard = _trainer(splits, root, "standard", "standard")
    adversarial = _trainer(splits, root, "adversarial", "adversarial")
    # The k attack steps alone, exactly as the objective runs them: eval mode, frozen parameters, on the
    # prepared copy of the current weights (the copy is part of the attack's cost, so it is timed too).
    attack_model = adversarial.model

    def attack_alone() -> None:
        attack_model.eval()
        with frozen_parameters(attack_model):
            adversarial.context.attack(crafting_model(attack_model, adversarial.context), images, labels, EPS)

    timings = compare({"standard step": lambda: standard.update(batch, 0.0),
                       f"attack ({K} steps)": attack_alone,
                       f"adversarial step (k={K})": lambda: adversarial.update(batch, EPS)},
                      reference="standard step", rounds=5, warmup=1)
    for timing in timings.values():
        print(f"  {timing.name}: {timing.seconds * 1000:.0f} ms ({timing.ratio_to_reference:.2f}x standard)",
              flush=True)
    parts = timings["standard step"].seconds + timings[f"attack ({K} steps)"].seconds
    ratio = timings[f"adversarial step (k={K})"].seconds / parts
    print(report_line("adversarial step / (standard step + attack alone)", ratio, "<= 1.1", ratio <= 1.1))
    adv = timings[f"adversarial step (k={K})"].ratio_to_reference
    print(report_line("adversarial step / standard step", adv, "< 3", adv < 3))


def strategy_costs(splits: dict, root: str) -> None:
    from robustft.strategies import STRATEGIES

    images, labels = next(iter(_batches(splits["train"])))
    batch = itertools.repeat((images, labels))
    candidates = {}
    for name in STRATEGIES.names():
        try:
            trainer = _trainer(splits, root, f"strategy-{name}", "adversarial", STRATEGY_NAMES.get(name, name),
                               STRATEGY_OPTIONS.get(name, {}))
        except Exception as error:  # noqa: BLE001 - a strategy that does not apply to a CNN says so; the rest run
            print(f"  {name}: skipped ({type(error).__name__}: {str(error)[:100]})")
            continue
        candidates[name] = (lambda t: lambda: t.update(batch, EPS))(trainer)
    timings = compare(candidates, reference="full", rounds=3, warmup=1)
    for name, timing in timings.items():
        print(f"  adversarial step, {name}: {timing.ratio_to_reference:.2f}x full ({timing.seconds * 1000:.0f} ms)")


def _batches(dataset):
    images = torch.stack([dataset[i][0] for i in range(BATCH)])
    labels = torch.tensor([int(dataset[i][1]) for i in range(BATCH)])
    yield images, labels


def main() -> None:
    torch.set_num_threads(2)
    steps = int(os.environ.get("BENCH_TRAIN_STEPS", "200"))
    parts = os.environ.get("BENCH_TRAIN_PARTS", "1,2,3").split(",")
    splits = fashion_splits(n_train=BATCH * steps, n_val=256, n_test=512)
    with tempfile.TemporaryDirectory() as root:
        if "1" in parts:
            print("1. evaluation overhead (paper-A schedule and attack)", flush=True)
            share = eval_overhead(splits, root, steps)
            print(f"eval time / wall time: {share:.1%} (target <= 25%) {'PASS' if share <= 0.25 else 'MISS'}",
                  flush=True)
        if "2" in parts:
            print(f"2. adversarial step with a {K}-step PGD vs its parts (batch {BATCH}, eps 4/255)", flush=True)
            step_costs(splits, root)
        if "3" in parts:
            print("3. adversarial step per strategy, relative to full fine-tuning", flush=True)
            strategy_costs(splits, root)


if __name__ == "__main__":
    main()
