"""A nested robust curve's eps levels attacked side by side: one batch holds the survivors at several levels.

Why: a nested curve (``robust_evaluation.robust_curve``) attacks at each eps only the samples still robust at the
previous one, so the batches shrink to a few dozen images while the curve climbs (paper B's 33-point E.adv curve
on the demo's 200 test images: 80 clean-correct images at 1/255, about 20 from 12/255 on). A forward+backward pass
of the embedded MobileNetV2 costs about 11 ms plus 0.55 ms per image on one thread (measured 2026-12-07: 24 ms
for 24 images, 122 ms for 200), so a curve of small batches pays the fixed part 33 x 11 times: over a third of
its time. Here the survivors S of level i are attacked at levels i, i+1, ..., i+d-1 in one batch of d x |S| rows
(each row a sample and its own radius: ``radii`` of pgd / apgd), with d chosen to fill about one batch.

Same verdicts: a row is attacked exactly as the sample would be alone at its radius (every quantity pgd and apgd
keep is per sample; their random starts come from ``start_noise``). A level's start noise is drawn for the whole
chunk when the level is first attacked, levels in ascending order, so a sample's start at a level does not depend
on d or on which other samples survived. The verdicts are then resolved in level order: a sample is robust at
level i+j if it was at level i+j-1 and its row at i+j was not fooled; its rows above the level it fell at are
spent for nothing (the price of the larger batch: they are cheap, since a point that fools at a smaller radius is
admissible at the larger one and those rows mostly fool, and leave the early-stopped batch, within a step or two).
Depth 1 is the plain nested loop; tests/test_curve_levels.py holds every depth to it, sample by sample.

What runs this way: pgd and untargeted apgd (apgd-ce, apgd-dlr) in L-inf with one restart; any other attack
(several restarts or targets draw noise for the samples a run attacks; square draws at every step; a callable
is opaque) runs level by level as before. No library attacks several radii in one batch, hence this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from robustft.attacks.base import Attack

# Rows are (sample, level) pairs, so their count is what a pass costs.
RowsCall = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def runs_side_by_side(attack: object) -> bool:
    """Whether ``attack`` can attack several radii in one batch with the same per-sample verdicts: an ``Attack``
    taking ``radii`` and ``start_noise``, L-inf, one untargeted run."""
    if not isinstance(attack, Attack) or not (attack.accepts("radii") and attack.accepts("start_noise")):
        return False
    options = attack.options
    fixed = getattr(attack.fn, "keywords", None) or {}
    targeted = options.get("targeted", fixed.get("targeted", False))
    return (options.get("norm", "linf") == "linf" and int(options.get("restarts", 1)) == 1 and not targeted)


def depth(survivors: int, remaining: int, rows: int) -> int:
    """Levels to attack side by side: as many as fill ``rows`` rows with ``survivors`` samples each, at least 1,
    at most ``remaining``."""
    if survivors <= 0 or remaining <= 0:
        return max(0, min(1, remaining))
    return max(1, min(remaining, rows // survivors))


@dataclass
class LevelNoise:
    """Each attacked level's uniform start noise for a whole chunk (N x C x H x W), drawn at its first use from
    ``generator`` (on the CPU) or the global RNG (on ``device``), as ``base.random_start`` draws. Levels are asked
    for in ascending order; one never attacked (eps 0, or nobody left) draws nothing."""

    shape: torch.Size
    device: torch.device
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        self._drawn: dict[int, torch.Tensor] = {}
        self._last = -1

    def of(self, level: int) -> torch.Tensor:
        """The noise of ``level``, drawn now if it is the first time (then kept until ``forget``)."""
        if level not in self._drawn:
            if level <= self._last:
                raise ValueError(f"level {level} asked for after level {self._last}: the draws would depend on "
                                 "the order levels are attacked in")
            draw = torch.rand(self.shape, generator=self.generator,
                              device="cpu" if self.generator is not None else self.device)
            self._drawn[level], self._last = draw.to(self.device), level
        return self._drawn[level]

    def held(self) -> list[int]:
        """The levels whose noise is kept, ascending."""
        return sorted(self._drawn)

    def forget(self, below: int) -> None:
        """Drops the noise of levels below ``below`` (no longer attacked)."""
        for level in [k for k in self._drawn if k < below]:
            del self._drawn[level]


def nested_verdicts(call: RowsCall, images: torch.Tensor, labels: torch.Tensor, robust: torch.Tensor,
                    eps_values: list[float], rows: int, noise: LevelNoise
                    ) -> tuple[list[torch.Tensor], list[float]]:
    """Per level, which samples of a chunk are still robust (nested), attacking levels side by side.

    Args:
        call: ``call(images, labels, radii, noise) -> still`` attacks rows (images R x C x H x W, labels R, radii R,
            start noise R x C x H x W) and says per row (bool R) whether the returned point is still classified
            correctly.
        images, labels: the chunk, N x C x H x W in [0, 1] and N.
        robust: bool N, the clean verdicts (narrowed in place: the last level's verdicts on return).
        eps_values: ascending radii; 0 leaves the verdicts as they are.
        rows: the batch to fill (rows per call, about).
        noise: the chunk's per-level start noise.

    Returns:
        (per level a bool N copy of the verdicts, per level the seconds spent: a side-by-side call's time is
        shared evenly among its levels).
    """
    levels = len(eps_values)
    masks: list[torch.Tensor | None] = [None] * levels
    seconds = [0.0] * levels
    i = 0
    while i < levels:
        if eps_values[i] == 0:
            masks[i], i = robust.clone(), i + 1
            continue
        start = time.perf_counter()
        idx = torch.nonzero(robust).squeeze(1)
        count = idx.numel()
        if count == 0:  # nothing left to attack: every remaining level keeps the (empty) verdicts
            for level in range(i, levels):
                masks[level] = robust.clone()
            break
        group = list(range(i, i + depth(count, levels - i, rows)))
        radii = torch.cat([torch.full((count,), eps_values[level], dtype=images.dtype, device=images.device)
                           for level in group])
        starts = torch.cat([noise.of(level)[idx] for level in group])
        still = call(images[idx].repeat(len(group), 1, 1, 1), labels[idx].repeat(len(group)), radii, starts)
        alive = torch.ones(count, dtype=torch.bool, device=robust.device)
        for j, level in enumerate(group):
            alive &= still[j * count:(j + 1) * count].to(robust.device)
            robust[idx] = alive
            masks[level] = robust.clone()
        noise.forget(group[-1] + 1)
        spent = (time.perf_counter() - start) / len(group)
        for level in group:
            seconds[level] = spent
        i = group[-1] + 1
    return [m for m in masks if m is not None], seconds
