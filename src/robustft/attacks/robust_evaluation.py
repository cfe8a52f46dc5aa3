"""Robust accuracy, nested robust curves and expected robustness.

- ``robust_accuracy``: per-sample worst case; clean-misclassified samples count as non-robust and are not
  attacked; every verdict is the classification of the returned point, which must be admissible (in [0, 1] and
  within eps, else a ConfigError), so an attack cannot claim a success it did not reach; Wilson 95% interval;
  the model is prepared for speed (a folded, frozen copy) automatically.
- Passes: one clean forward pass (clean accuracy, and which samples to attack), then the attack's own passes.
  Attacks that record the fp32 logits of the points they return (``attacks.record``: pgd, fgsm, apgd, square,
  cascade) give the verdict without classifying those points again, so PGD-10 costs 12 forward and 10 backward
  passes, as a plain loop with a clean pass does. Other attacks (a callable, bf16 passes) are re-classified;
  ``recheck=True`` re-classifies always and warns where the recorded verdict differs (tests, ``eval --checks``).
- ``robust_curve``: accuracies at increasing eps with nesting: a point fooling at eps_i is admissible at every
  larger eps, so only samples still robust are attacked at the next eps. Non-increasing by construction and
  no higher than independent runs of the same attack. With pgd or untargeted apgd (L-inf, one restart) the
  survivors are attacked at several eps in one batch (``attacks.curve_levels``: the same verdicts as level by
  level, without paying a pass's fixed cost per level on a few dozen images).
- ``expected_robustness``: paper B's E.adv, the trapezoid mean of the curve over [0, eps_max].
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import nn

from robustft.analysis.statistics import wilson_interval
from robustft.attacks.base import Attack, attack_mode, check_eps
from robustft.attacks.curve_levels import LevelNoise, nested_verdicts, runs_side_by_side
from robustft.attacks.prepare import prepare_for_attack
from robustft.attacks.prepared_cache import prepared_copy
from robustft.attacks.record import ReturnedLogits
from robustft.attacks.registry import build_attack
from robustft.attacks.threads import attack_threads
from robustft.device import resolve_device
from robustft.errors import ConfigError

CPU_BATCH_SIZE = 256  # CPU default: per-sample cost is flat beyond ~128 on small images; bounded memory


@dataclass
class RobustAccuracy:
    """Accuracy under attack at one eps, with its sample size and Wilson 95% interval.

    ``per_sample`` is the per-sample verdict behind ``correct``: bool (n,), in the order the samples were given,
    True where the sample is classified correctly under every attack point tried up to this eps (the nested
    worst case; at eps 0 the clean verdict). ``robust_curve`` fills it from the masks it keeps anyway (no extra
    pass); None when the result was built from counts alone. Left out of ``as_dict`` (a summary, not an array).
    """

    correct: int
    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    clean_correct: int
    eps: float
    attack: str
    seconds: float
    per_sample: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_sample"}

    @classmethod
    def from_counts(cls, correct: int, n: int, clean_correct: int, eps: float, attack: str,
                    seconds: float, per_sample: np.ndarray | None = None) -> RobustAccuracy:
        low, high = wilson_interval(correct, n)
        return cls(correct, n, correct / n if n else float("nan"), low, high, clean_correct, eps, attack, seconds,
                   per_sample)


AttackLike = Attack | str | Callable[..., torch.Tensor]


def _resolve_attack(attack: AttackLike, early_stop: bool | None, prepare: bool
                    ) -> tuple[Callable[..., torch.Tensor], str]:
    if isinstance(attack, str):
        attack = build_attack(attack)
    if isinstance(attack, Attack):
        if early_stop is not None and attack.accepts("early_stop"):
            attack = attack.with_options(early_stop=early_stop)
        name = attack.describe()
        if not prepare and attack.accepts("prepare"):  # attack the caller's model object, not a copy of it
            attack = attack.with_options(prepare=False)
        return attack, name
    return attack, getattr(attack, "__name__", type(attack).__name__)


def _iter_batches(batches) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        yield batches
        return
    for item in batches:
        if isinstance(item, dict):
            yield item["image"], item["label"]
        else:
            yield item[0], item[1]


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes (N) in fp32 and eval mode, as the attacks classify (the model's mode is restored)."""
    with attack_mode(model), torch.no_grad(), torch.autocast(device_type=images.device.type, enabled=False):
        return model(images.float()).argmax(1)


def _with_oom_retry(fn, rows: tuple[torch.Tensor, ...], batch_size: int) -> torch.Tensor:
    """``fn(*rows)`` chunk by chunk (``rows``: tensors of the same length, images first, sliced alike); on CUDA
    out-of-memory halves the chunk size and retries (largest that fits). Returns the outputs concatenated."""
    images = rows[0]
    outputs, start = [], 0
    while start < images.shape[0]:
        chunk = slice(start, start + batch_size)
        try:
            outputs.append(fn(*(row[chunk] for row in rows)))
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            torch.cuda.empty_cache()
            batch_size = max(1, batch_size // 2)
            continue
        start += images[chunk].shape[0]
    return torch.cat(outputs) if outputs else torch.zeros(0, dtype=torch.bool, device=images.device)


def _default_batch_size(device: torch.device, batch_size: int | None) -> int:
    if batch_size is not None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        return batch_size
    return CPU_BATCH_SIZE if device.type == "cpu" else 4096  # CUDA: halved on out-of-memory until it fits


def _admissible(x_adv: torch.Tensor, images: torch.Tensor, eps: float, attack_name: str,
                radii: torch.Tensor | None = None) -> torch.Tensor:
    """x_adv if it is a perturbation the threat model allows, else a ConfigError: a fooling point outside the
    [0, 1] box or farther than eps (L-inf; any L2 ball of radius eps lies inside it) must not count as a success.
    With ``radii`` (N), each image against its own radius."""
    if x_adv.shape != images.shape:
        raise ConfigError(f"attack {attack_name} returned shape {tuple(x_adv.shape)} for images "
                          f"{tuple(images.shape)}; an attack returns one perturbed image per input.")
    if radii is not None and x_adv.numel():
        reach = (x_adv - images).abs().flatten(1).amax(1)
        distance, excess = float(reach.max()), float((reach - radii.to(reach.device, reach.dtype)).max())
    else:
        distance = float((x_adv - images).abs().amax()) if x_adv.numel() else 0.0
        excess = distance - eps
    low, high = (float(x_adv.min()), float(x_adv.max())) if x_adv.numel() else (0.0, 1.0)
    if excess > 1e-6 or low < 0 or high > 1:
        raise ConfigError(
            f"attack {attack_name} returned points outside the threat model (distance {distance:.5f} from the "
            f"images for eps={eps:.5f}, values in [{low:.3g}, {high:.3g}]); its successes cannot be counted. "
            "An attack must return images in [0, 1] within eps of its inputs (robustft.attacks.base.project).")
    return x_adv


def robust_accuracy(model: nn.Module, batches, attack: AttackLike, eps: float | str, *,
                    device: str | torch.device | None = None, batch_size: int | None = None, prepare: bool = True,
                    early_stop: bool | None = True, recheck: bool = False) -> RobustAccuracy:
    """Accuracy under ``attack`` at ``eps``, per-sample worst case.

    Args:
        model: classifier on [0, 1] images (left exactly as it was).
        batches: an iterable of (images, labels) (or dicts with "image"/"label"), or one (images, labels) tuple;
            images float N x C x H x W in [0, 1], labels int64 N.
        attack: an ``Attack`` from ``build_attack``, a registry name, or a callable
            ``(model, images, labels, eps) -> x_adv``.
        eps: radius in pixel units (``"4/255"`` accepted); 0 gives the clean accuracy.
        device: where to run; default the model's device.
        batch_size: attack chunk size; default 256 on CPU, the largest that fits on CUDA.
        prepare: attack a folded, frozen, eval-mode copy (same function, faster).
        early_stop: override the attack's early stop (True: fooled samples leave the batch; None: as built).
        recheck: classify every returned point again in an independent fp32 pass (one more forward pass) rather
            than trusting the logits the attack recorded for it, and warn where the two verdicts differ.

    Returns:
        RobustAccuracy with correct (robust samples), n, accuracy, Wilson CI, clean_correct, eps, attack, seconds.
    """
    return robust_curve(model, batches, attack, [eps], device=device, batch_size=batch_size, prepare=prepare,
                        early_stop=early_stop, recheck=recheck)[0]


def robust_curve(model: nn.Module, batches, attack: AttackLike, eps_list: Sequence[float | str], *,
                 device: str | torch.device | None = None, batch_size: int | None = None, prepare: bool = True,
                 early_stop: bool | None = True, recheck: bool = False) -> list[RobustAccuracy]:
    """Robust accuracy at each eps of ``eps_list`` (ascending), nested: only still-robust samples are attacked.

    Args: as ``robust_accuracy``; eps_list ascending radii (0 = clean accuracy; ``"0.25/255"`` strings accepted).

    Returns:
        One RobustAccuracy per eps, in the order given; accuracies are non-increasing. Each carries
        ``per_sample`` (bool n, samples in the order given), so a sample's verdicts are nested across eps too.
    """
    if isinstance(attack, (list, tuple, np.ndarray, torch.Tensor)):
        raise ConfigError("robust_curve takes (model, batches, attack, eps_list), in the order of robust_accuracy("
                          "model, batches, attack, eps); it got radii where the attack goes. Write "
                          "robust_curve(model, batches, attack, [0, 1/255, ...]) or pass attack= and eps_list= by "
                          "name.")
    eps_values = [check_eps(e) for e in eps_list]
    if not eps_values:
        raise ConfigError("robust_curve needs at least one eps, e.g. [0, 1/255, 2/255].")
    if any(b < a for a, b in zip(eps_values, eps_values[1:], strict=False)):
        raise ConfigError(f"robust_curve needs eps in ascending order, got {eps_list}.")
    attack_fn, attack_name = _resolve_attack(attack, early_stop, prepare)
    verdict = _Verdict(attack_fn, attack_name, recheck)

    device = _device_of(model) if device is None else resolve_device(device)
    with attack_threads():  # clean and verdict passes too: threads = free CPUs (attacks/threads.py says why)
        return _robust_curve(model, batches, verdict, eps_values, device, batch_size, prepare)


def _frames_to_caller() -> int:
    """``warnings.warn``'s stacklevel, for the function calling this, that names the first frame outside
    ``robustft.attacks``: the user's call of ``robust_accuracy`` or ``robust_curve``, however deep inside it runs."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("robustft.attacks"):
        frame, level = frame.f_back, level + 1
    return level


class _Verdict:
    """Attacks one chunk and says per sample whether it is still classified correctly at the returned point.

    From the logits the attack recorded for that point when it can (``attacks.record``); else, or with
    ``recheck``, by classifying the returned point (with ``recheck`` a differing recorded verdict is warned of).
    """

    def __init__(self, attack_fn: Callable[..., torch.Tensor], attack_name: str, recheck: bool) -> None:
        self.attack_fn, self.attack_name, self.recheck = attack_fn, attack_name, recheck
        self.records = isinstance(attack_fn, Attack) and attack_fn.accepts("record")

    def __call__(self, target: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                 radii: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """bool (N): True where the attack's point for the sample is still classified as its label.

        ``radii`` (N) and ``noise`` (N x C x H x W): each row's own radius (at most ``eps``) and random-start draws,
        for an attack that ``curve_levels.runs_side_by_side``."""
        record = ReturnedLogits()
        fn = self.attack_fn.with_options(record=record) if self.records else self.attack_fn
        if radii is not None:
            fn = fn.with_options(radii=radii, start_noise=noise)
        x_adv = _admissible(fn(target, images, labels, eps), images, eps, self.attack_name, radii)
        recorded = None if record.logits is None else record.logits.argmax(1) == labels
        if recorded is not None and not self.recheck:
            return recorded
        correct = _predict(target, x_adv) == labels
        if recorded is not None and not torch.equal(recorded, correct):
            differ = int((recorded != correct).sum())
            warnings.warn(f"attack {self.attack_name}: the logits it recorded for {differ} of its {labels.shape[0]} "
                          "returned points give another verdict than classifying those points again (recheck); "
                          "the re-classification counts. Report this: the two should agree.",
                          stacklevel=_frames_to_caller())
        return correct


def _robust_curve(model: nn.Module, batches, verdict: _Verdict, eps_values: list[float], device: torch.device,
                  batch_size: int | None, prepare: bool) -> list[RobustAccuracy]:
    # Preparing copies the model, so the user's object is never moved or changed; without it, it must be moved.
    # The copy kept for this model (attacks/prepared_cache.py) is reused only where it need not move.
    if prepare:
        target = prepared_copy(model) if device == _device_of(model) else prepare_for_attack(model).to(device)
    else:
        target = model.to(device)
    size = _default_batch_size(device, batch_size)
    # Two or more attacked eps with an attack that can: levels side by side (attacks/curve_levels.py).
    side_by_side = sum(e > 0 for e in eps_values) > 1 and runs_side_by_side(verdict.attack_fn)
    correct = [0] * len(eps_values)
    masks: list[list[torch.Tensor]] = [[] for _ in eps_values]  # per eps, one bool mask per batch
    seconds = [0.0] * len(eps_values)
    n = clean_total = 0
    for images, labels in _iter_batches(batches):
        images, labels = images.to(device).float(), labels.to(device).long()
        start = time.perf_counter()
        robust = _with_oom_retry(lambda x, y: _predict(target, x) == y, (images, labels), size)
        clean_total += int(robust.sum())
        n += images.shape[0]
        seconds[0] += time.perf_counter() - start
        if side_by_side:
            def attack_rows(x: torch.Tensor, y: torch.Tensor, radii: torch.Tensor, starts: torch.Tensor
                            ) -> torch.Tensor:
                """Verdicts of rows at their own radii (the largest as the attack's eps), chunked as any call."""
                return _with_oom_retry(lambda xs, ys, rs, zs: verdict(target, xs, ys, float(rs.max()), rs, zs),
                                       (x, y, radii, starts), size)

            noise = LevelNoise(images.shape, images.device, verdict.attack_fn.options.get("generator"))
            level_masks, level_seconds = nested_verdicts(attack_rows, images, labels, robust, eps_values, size, noise)
            for i, mask in enumerate(level_masks):
                correct[i] += int(mask.sum())
                masks[i].append(mask.to("cpu", copy=True))
                seconds[i] += level_seconds[i]
            continue
        for i, eps in enumerate(eps_values):
            start = time.perf_counter()
            idx = torch.nonzero(robust).squeeze(1)
            if eps > 0 and idx.numel():
                still = _with_oom_retry(lambda x, y, eps=eps: verdict(target, x, y, eps),
                                        (images[idx], labels[idx]), size)
                robust[idx[~still]] = False
            correct[i] += int(robust.sum())
            # A copy even on CPU (where .cpu() would alias): ``robust`` is narrowed in place at the next eps.
            masks[i].append(robust.to("cpu", copy=True))
            seconds[i] += time.perf_counter() - start
    if n == 0:
        raise ConfigError("robust evaluation got no samples; check the data split and --limit.")
    return [RobustAccuracy.from_counts(correct[i], n, clean_total, eps, verdict.attack_name, seconds[i],
                                       torch.cat(masks[i]).numpy())
            for i, eps in enumerate(eps_values)]


def expected_robustness(eps_list: Sequence[float | str], accuracies: Sequence[float | RobustAccuracy]) -> float:
    """Paper B's expected robustness E.adv: the trapezoid mean of accuracy over [0, eps_max].

    Args:
        eps_list: ascending radii starting at 0 (e.g. ``eps_grid(8/255)``: 9 points).
        accuracies: accuracy at each eps (floats in [0, 1] or RobustAccuracy); accuracy at 0 is the clean one.

    Returns:
        E.adv in [0, 1].
    """
    eps = [check_eps(e) for e in eps_list]
    acc = [a.accuracy if isinstance(a, RobustAccuracy) else float(a) for a in accuracies]
    if len(eps) != len(acc) or len(eps) < 2:
        raise ConfigError(f"expected_robustness needs >= 2 eps and one accuracy each; got {len(eps)} and {len(acc)}.")
    if eps[0] != 0 or any(b <= a for a, b in zip(eps, eps[1:], strict=False)):
        raise ConfigError(f"expected_robustness needs strictly ascending eps starting at 0; got {list(eps_list)}.")
    # The trapezoid rule written out: np.trapezoid exists only from numpy 2, and robustft supports numpy >= 1.24.
    area = sum((b - a) * (fa + fb) / 2 for a, b, fa, fb in zip(eps, eps[1:], acc, acc[1:], strict=False))
    return float(area / eps[-1])
