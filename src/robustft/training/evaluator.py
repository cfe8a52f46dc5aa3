"""Continuous evaluation: records of clean / robust / OOD accuracy on FIXED seeded subsets.

``Evaluator`` draws, once, a seeded subset of each split (the same samples at every evaluation point, so curves
over training compare like with like) and at each call yields records in the long schema of DESIGN.md:

    {"step", "epoch", "split", "metric", "attack", "eps", "value", "n", "ci_low", "ci_high"}

* clean accuracy per split: ``attack="clean", eps=0``;
* robust accuracy per split and eval eps with the configured attack (``attack=<name>``);
* the robust curve on a 1/255 grid + expected robustness on the test split when ``eval.curve`` is set;
* one clean accuracy per OOD split (``split="ood:<name>"``);
* on the splits of ``eval.loss``, the mean cross-entropy (``metric="loss"``), clean and under the attack at each
  eval eps with every sample attacked (``robustft.attacks.adversarial_loss``): paper B's tuning metric;
* gradient-masking warnings as ``metric="check:<name>"`` records (value 1) when ``checks`` is on.

Accuracy records carry ``n`` and a 95% Wilson interval. Behind each evaluation of a split is an ``OutcomeBlock``
(``robustft.runs.outcomes``): every evaluated image's verdict, keyed by its index in the split's source order,
from the same robust evaluation (no extra pass); ``evaluate`` returns both, the trainer stores the blocks in
``outcomes.bin``. Every evaluation runs under its own RNG seeded by
(seed, step), forked from the training RNG: random starts are reproducible and the training RNG stream is
untouched, which exact resume relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from robustft.analysis.statistics import wilson_interval
from robustft.attacks import RobustAccuracy, expected_robustness, robust_curve, run_checks
from robustft.attacks.adversarial_loss import adversarial_loss
from robustft.attacks.prepare import PreparedModel
from robustft.attacks.registry import make_attack
from robustft.config.schema import EvalConfig
from robustft.config.units import eps_grid
from robustft.data.splits import stratified_subset
from robustft.runs.outcomes import OutcomeBlock
from robustft.training.crafting import CraftingCopy

log = logging.getLogger("robustft.training.evaluator")


Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]


def record(step: int, epoch: float, split: str, metric: str, value: float, attack: str | None = None,
           eps: float | None = 0.0, n: int | None = None, correct: int | None = None, **extra: Any) -> dict:
    """One metrics.jsonl record; accuracy records (``correct`` given) carry n and a Wilson interval."""
    low = high = None
    if correct is not None and n:
        low, high = wilson_interval(correct, n)
    out = {"step": int(step), "epoch": float(epoch), "split": split, "metric": metric, "attack": attack,
           "eps": None if eps is None else float(eps), "value": float(value), "n": n, "ci_low": low, "ci_high": high}
    if extra:
        out["extra"] = extra
    return out


@dataclass
class Subset:
    """A split's fixed evaluation samples, stacked once: images N x C x H x W in [0, 1], labels N, and ids N (int64,
    each sample's index in the split's source order: the same image has the same id in every run)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor | None = None

    def batches(self, batch_size: int, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.labels), batch_size):
            yield (self.images[start:start + batch_size].to(device),
                   self.labels[start:start + batch_size].to(device))


def fixed_subset(name: str, dataset: Dataset, size: int | None, seed: int) -> Subset:
    """The same ``size`` samples of ``dataset`` for a seed (all of it when size is None or larger).

    Drawn per class in proportion to the class counts by ``robustft.data.splits.stratified_subset``, the code that
    draws the validation hold-out and ``data.limit_*``, so a small evaluation subset has the split's class mix.
    The ids are the samples' ``dataset.indices`` (their index in the source split before the validation hold-out and
    ``limit``) where the dataset has them, else their position in ``dataset``.
    """
    total = len(dataset)
    if size is None or size >= total:
        indices = list(range(total))
    else:
        labels = getattr(dataset, "labels", None)
        if labels is None:  # a Dataset without a label tensor: read the labels once
            labels = [int(dataset[i][1]) for i in range(total)]
        indices = stratified_subset(torch.as_tensor(labels, dtype=torch.long), size, seed).tolist()
    pairs = [dataset[i] for i in indices]
    images = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image, _ in pairs])
    labels = torch.tensor([int(label) for _, label in pairs], dtype=torch.long)
    source = getattr(dataset, "indices", None)
    ids = torch.as_tensor(indices, dtype=torch.int64)
    if source is not None and len(source) == total:
        ids = torch.as_tensor(source, dtype=torch.int64)[ids]
    return Subset(name, images, labels, ids)


class Evaluator:
    """Evaluates a model at evaluation points on fixed seeded subsets and returns records.

    Args:
        splits: split name -> dataset (``ds[i] -> (image C x H x W in [0, 1], label)``).
        ood: OOD split name -> dataset.
        eval_cfg: the config's ``eval`` section (``robustft.config.section_from_dict("eval", tree)`` builds one
            from a plain tree): subset, batch_size, splits, attack, eps, curve, ood, checks, final. Its epsilons
            are floats in pixel units and its attacks AttackSpecs, used as they are.
        seed: the run seed (subsets and attack random starts derive from it).
        device: where to evaluate.
    """

    def __init__(self, splits: Mapping[str, Dataset], ood: Mapping[str, Dataset], eval_cfg: EvalConfig, seed: int,
                 device: torch.device) -> None:
        self.cfg, self.seed, self.device = eval_cfg, seed, device
        self.batch_size = int(eval_cfg.batch_size)
        size = eval_cfg.subset
        wanted = list(eval_cfg.splits or splits)
        self.subsets = [fixed_subset(n, splits[n], size, seed + i) for i, n in enumerate(wanted) if n in splits]
        self.ood = [fixed_subset(f"ood:{n}", d, size, seed) for n, d in ood.items()] if eval_cfg.ood else []
        self.eps_list = list(eval_cfg.eps)
        self.curve = eps_grid(eval_cfg.curve) if eval_cfg.curve else []
        self.curve_every = eval_cfg.curve_at != "final"
        self.attack_name = eval_cfg.attack.name
        self.attack = make_attack(eval_cfg.attack)
        self.loss_splits = set(eval_cfg.loss)
        self._copy = CraftingCopy()  # the prepared copy of the evaluated model, refreshed at each point
        self._tensors: tuple[int, ...] = ()  # ids of the model tensors the copy refreshes from

    def __call__(self, model: nn.Module, step: int, epoch: float, final: bool = False) -> list[dict]:
        """All records of one evaluation point (the model is left in eval mode)."""
        return self.evaluate(model, step, epoch, final)[0]

    def evaluate(self, model: nn.Module, step: int, epoch: float, final: bool = False
                 ) -> tuple[list[dict], list[OutcomeBlock]]:
        """The records of one evaluation point and the per-image outcome blocks behind its accuracy records."""
        devices = [self.device] if self.device.type == "cuda" else []
        blocks: list[OutcomeBlock] = []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + step)
            model.eval()
            prepared = self.prepared(model)
            return list(self._records(prepared, step, epoch, final, blocks)), blocks

    def prepared(self, model: nn.Module) -> nn.Module:
        """The prepared (attacked) copy of ``model`` (in eval mode) that every pass of a point uses as it is.

        One copy per run, refreshed in place at each point (``training.crafting.CraftingCopy``: bit for bit the
        tensors a fresh ``prepare_for_attack`` holds): 3-10 ms on the demo's MobileNetV2 at one thread, where a
        fresh deep copy and fold took 45-70 ms, a third of a paper B demo point (clean accuracy on 400 images). A
        model whose copy merged or dropped its strategy's hooked modules (LoRA, (IA)3; adapters at their zero init)
        gets a fresh copy every time; an already prepared model is used as it is.
        """
        if isinstance(model, PreparedModel):
            return model
        # The copy is refreshed from the tensor objects it was planned on: a parameter or buffer replaced by
        # another object (not written in place) needs a new plan, or the copy would keep the old values.
        tensors = tuple(map(id, [*model.parameters(), *model.buffers()]))
        if tensors != self._tensors:
            self._copy, self._tensors = CraftingCopy(), tensors
        return self._copy(model)

    def _correct(self, model: nn.Module, subset: Subset, eps_list: Sequence[float], attack: Attack | None
                 ) -> list[RobustAccuracy]:
        """``RobustAccuracy`` at each eps (ascending; 0 = clean) on ``subset``, nested per-sample worst case."""
        if attack is None or all(e == 0 for e in eps_list):
            attack, eps_list = self.attack, [0.0] * len(eps_list)
        return robust_curve(model, list(subset.batches(self.batch_size, self.device)), attack, list(eps_list),
                            device=self.device, batch_size=self.batch_size)

    def _records_for(self, model: nn.Module, subset: Subset, step: int, epoch: float, attack_name: str,
                     attack: Attack | None, eps_list: Sequence[float], blocks: list[OutcomeBlock],
                     metric: str = "accuracy") -> list[dict]:
        n = len(subset.labels)
        results = self._correct(model, subset, eps_list, attack)
        attacks = ["clean" if e == 0 else attack_name for e in eps_list]
        ids = subset.ids if subset.ids is not None else torch.arange(n)
        blocks.append(OutcomeBlock(step, subset.name, metric, tuple(attacks), tuple(float(e) for e in eps_list),
                                   ids.numpy(), np.stack([r.per_sample for r in results])))
        return [record(step, epoch, subset.name, metric, r.correct / max(n, 1), a, e, n, int(r.correct))
                for e, a, r in zip(eps_list, attacks, results, strict=True)]

    def _loss_records(self, model: nn.Module, subset: Subset, step: int, epoch: float) -> list[dict]:
        """Mean cross-entropy on ``subset``, clean (``split/clean/loss``) and at each eval eps
        (``split/<attack>/loss@eps``)."""
        eps_list = [0.0, *sorted(self.eps_list)]
        losses = adversarial_loss(model, list(subset.batches(self.batch_size, self.device)), self.attack, eps_list,
                                  batch_size=self.batch_size)
        return [record(step, epoch, subset.name, "loss", value, "clean" if eps == 0 else self.attack_name, eps,
                       len(subset.labels)) for eps, value in zip(eps_list, losses, strict=True)]

    def _records(self, model: nn.Module, step: int, epoch: float, final: bool, blocks: list[OutcomeBlock]
                 ) -> Iterator[dict]:
        for subset in self.subsets:
            yield from self._records_for(model, subset, step, epoch, self.attack_name, self.attack,
                                         [0.0, *sorted(self.eps_list)], blocks)
            if subset.name in self.loss_splits:
                yield from self._loss_records(model, subset, step, epoch)
        test = next((s for s in self.subsets if s.name == "test"), self.subsets[-1] if self.subsets else None)
        if self.curve and test is not None and (final or self.curve_every):
            curve = self._records_for(model, test, step, epoch, self.attack_name, self.attack, self.curve, blocks,
                                      metric="curve_accuracy")
            yield from curve
            yield record(step, epoch, test.name, "expected_robustness",
                         expected_robustness(self.curve, [a["value"] for a in curve]), self.attack_name,
                         self.curve[-1], len(test.labels))
        for subset in self.ood:
            yield from self._records_for(model, subset, step, epoch, "clean", None, [0.0], blocks)
        if final:
            yield from self._final_records(model, step, epoch, test, blocks)

    def _final_records(self, model: nn.Module, step: int, epoch: float, test: Subset | None,
                       blocks: list[OutcomeBlock]) -> Iterator[dict]:
        final_spec = self.cfg.final
        if test is None:
            return
        # Every eps a number is reported at on the final model: the tracked eps and the curve's end (paper B's eps_g).
        reported_eps = self.eps_list + ([self.curve[-1]] if self.curve else [])
        # The number at the largest eps comes from the final attack when there is one, else from the tracked attack:
        # that attack is the one the checks test for convergence.
        name, attack = (f"final:{final_spec.name}", make_attack(final_spec)) if final_spec is not None else \
            (self.attack_name, self.attack)
        if final_spec is not None:
            yield from self._records_for(model, test, step, epoch, name, attack, sorted(set(reported_eps)), blocks)
        if self.cfg.checks and reported_eps:
            yield from self._check_records(model, step, epoch, test, max(reported_eps), name, attack)

    def _check_records(self, model: nn.Module, step: int, epoch: float, test: Subset, eps: float, attack_name: str,
                       attack: Attack) -> Iterator[dict]:
        warnings = run_checks(model, list(test.batches(self.batch_size, self.device)), eps, attack=attack)
        for warning in warnings:
            log.warning("gradient-masking check %s: %s", warning.check, warning.message)
            yield record(step, epoch, test.name, f"check:{warning.check}", 1.0, attack_name, eps, len(test.labels),
                         message=warning.message)
