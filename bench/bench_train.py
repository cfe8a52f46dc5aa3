"""Trainer benchmark on the embedded default (ImageNet MobileNetV2 at 32 px, Fashion-MNIST), side by side.

1. Evaluation share of demo runs: each run named in ``BENCH_TRAIN_DEMO`` (default ``a-full``; any demo run name,
   e.g. ``a-full,a-linear,b-fix``; paper B's RFT-fix takes ~2 min) runs exactly as ``robustft demo`` configures
   it (its config file under ``sweep/study_configs/demo``), at the bench's thread count; the share is
   summary.json's ``eval_share`` (evaluation seconds / the trainer's wall seconds; target <= 25%).
2. One adversarial training step as the demo's paper B runs it (APGD-CE-7, batch 64, eps 32/255), through
   ``Trainer.update`` exactly as the loop runs it, against its parts timed alone in the same interleaved rounds:
   one standard training step + the 7-step attack on an already prepared copy (target <= 1.05x), and against one
   standard step. The per-step ``prepare_for_attack`` copy the step used to make is timed beside them.
3. The same adversarial step for each strategy, relative to full fine-tuning: parameter-efficient strategies
   should make the update part cheaper.
4. The CPU fast paths of training (``train.cpu_fast_paths``: channels_last and the small-map depthwise product,
   robustft.training.small_map_depthwise), per strategy of paper A: a standard step and an adversarial step with
   them against the same step without them (two trainers built alike but for the flag), side by side. Printed as
   speed-ups (time without / time with).

Threads: ``BENCH_TRAIN_THREADS`` (default 1: the demo runs one thread per run, one run per core).
Run: ``python -m bench train`` (``BENCH_TRAIN_PARTS=2,3`` to run only some parts).
"""

from __future__ import annotations

import itertools
import os
import tempfile

import torch

from bench.timing import compare, report_line
from robustft.config import from_dict
from robustft.training.objectives import frozen_parameters

BATCH = 64
K = 7
EPS = 32 / 255
ATTACK = "apgd-ce"
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


def demo_share(name: str, root: str) -> float:
    """Runs the demo's ``name`` run as the demo configures it; returns its evaluation share."""
    from robustft.sweep.study import shipped_configs
    from robustft.training.trainer import train

    paper, _, arm = name.partition("-")  # a-<strategy> / b-<schedule>, the demo's run names
    config = shipped_configs("demo") / f"paper_{paper}" / f"{arm}.yaml"
    summary = train(str(config), [f"output_dir={root}", f"name=share-{name}"], quiet=True).summary
    print(f"  {name}: {summary['steps']} steps, wall {summary['wall_seconds']:.1f}s, evaluation "
          f"{summary['eval_seconds']:.1f}s at {summary['evaluation_points']} points", flush=True)
    return summary["eval_share"]


def _trainer(splits: dict, root: str, name: str, objective: str, strategy: str = "full", options: dict | None = None,
             fast: bool = True):
    from robustft.training.trainer import build_trainer

    return build_trainer(from_dict(_config(root, name, objective={"name": objective, "attack": ATTACK, "steps": K},
                                 strategy={"name": strategy, "options": options or {}},
                                 train={"steps": 1000, "epochs": None, "cpu_fast_paths": fast})),
                         datasets=splits, quiet=True)


def step_costs(splits: dict, root: str) -> None:
    from robustft.attacks import prepare_for_attack

    images, labels = next(iter(_batches(splits["train"])))
    batch = itertools.repeat((images, labels))
    standard = _trainer(splits, root, "standard", "standard")
    adversarial = _trainer(splits, root, "adversarial", "adversarial")
    # The k attack steps alone, as the objective runs them (eval mode, frozen parameters), on a copy prepared
    # once outside the timing: what the step cannot avoid. Preparing a copy is timed on its own line.
    attack_model = adversarial.model
    attack_model.eval()
    prepared = prepare_for_attack(attack_model)

    def attack_alone() -> None:
        attack_model.eval()
        with frozen_parameters(attack_model):
            adversarial.context.attack(prepared, images, labels, EPS)

    def prepare_copy() -> None:
        attack_model.eval()
        prepare_for_attack(attack_model)

    timings = compare({"standard step": lambda: standard.update(batch, 0.0),
                       f"attack ({K} steps, prepared copy)": attack_alone,
                       "prepare_for_attack copy": prepare_copy,
                       f"adversarial step (k={K})": lambda: adversarial.update(batch, EPS)},
                      reference="standard step", rounds=7, warmup=1)
    for timing in timings.values():
        print(f"  {timing.name}: {timing.seconds * 1000:.0f} ms ({timing.ratio_to_reference:.2f}x standard)",
              flush=True)
    parts = timings["standard step"].seconds + timings[f"attack ({K} steps, prepared copy)"].seconds
    ratio = timings[f"adversarial step (k={K})"].seconds / parts
    print(report_line("adversarial step / (standard step + attack alone)", ratio, "<= 1.05", ratio <= 1.05))


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


PAPER_A_STRATEGIES = ("full", "linear", "bitfit", "lora", "ia3", "adapter", "compacter")


def _updater(trainer, batch, eps: float):
    return lambda: trainer.update(batch, eps)


def fast_path_costs(splits: dict, root: str) -> None:
    images, labels = next(iter(_batches(splits["train"])))
    batch = itertools.repeat((images, labels))
    for objective, eps in (("standard", 0.0), ("adversarial", EPS)):
        for name in os.environ.get("BENCH_TRAIN_STRATEGIES", ",".join(PAPER_A_STRATEGIES)).split(","):
            steps = {label: _updater(_trainer(splits, root, f"fast-{objective}-{name}-{label}", objective, name,
                                              fast=label == "fast"), batch, eps)
                     for label in ("reference", "fast")}
            timings = compare(steps, reference="reference", rounds=5, warmup=1)
            speedup = 1 / timings["fast"].ratio_to_reference
            print(f"  {objective} step, {name}: {speedup:.2f}x faster with the fast paths "
                  f"({timings['reference'].seconds * 1000:.0f} -> {timings['fast'].seconds * 1000:.0f} ms)", flush=True)


def _batches(dataset):
    images = torch.stack([dataset[i][0] for i in range(BATCH)])
    labels = torch.tensor([int(dataset[i][1]) for i in range(BATCH)])
    yield images, labels


def main() -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_TRAIN_THREADS", "1")))
    parts = os.environ.get("BENCH_TRAIN_PARTS", "1,2,3,4").split(",")
    with tempfile.TemporaryDirectory() as root:
        if "1" in parts:
            print("1. evaluation share of demo runs (as robustft demo configures them)", flush=True)
            for name in os.environ.get("BENCH_TRAIN_DEMO", "a-full").split(","):
                share = demo_share(name.strip(), root)
                print(f"{name.strip()}: evaluation time / wall time {share:.1%} (target <= 25%) "
                      f"{'PASS' if share <= 0.25 else 'MISS'}", flush=True)
        splits = fashion_splits(n_train=BATCH * 4, n_val=256, n_test=512) if {"2", "3", "4"} & set(parts) else {}
        if "2" in parts:
            print(f"2. adversarial step with {ATTACK}-{K} vs its parts (batch {BATCH}, eps 32/255)", flush=True)
            step_costs(splits, root)
        if "3" in parts:
            print("3. adversarial step per strategy, relative to full fine-tuning", flush=True)
            strategy_costs(splits, root)
        if "4" in parts:
            print("4. the CPU fast paths of training (channels_last, small-map depthwise product), per strategy",
                  flush=True)
            fast_path_costs(splits, root)


if __name__ == "__main__":
    main()
