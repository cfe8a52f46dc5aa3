"""Calibrating the cost model: the shipped reference table, or a short measured probe on this machine.

``reproduce ... --plan`` prices runs with the reference table (``robustft.sweep.cost_tables``: timm's published
throughput on an RTX 3090). ``--plan --calibrate`` measures instead: for each backbone of the plan it builds the
architecture with random weights (timm ``pretrained=False``: nothing is downloaded), then times, after one
warm-up each, a few training steps (forward, cross-entropy, backward, AdamW step; mixed precision on CUDA as the
trainer uses) and a few no-grad forward passes of a random batch at 224 px, and divides by the batch size. The
GPU-hours of the plan are then hours of this device.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from robustft.sweep.cost_model import Throughput
from robustft.sweep.cost_tables import REFERENCE_GPU, REFERENCE_SOURCE, reference_throughput

PROBE_SIZE = 224  # px: the papers' input size, at which the reference table is priced too


@dataclass(frozen=True)
class Calibration:
    """Throughput per timm architecture and how it was obtained.

    Attributes:
        kind: ``reference`` (the shipped table) or ``measured`` (the probe).
        speeds: architecture -> :class:`Throughput`.
        description: one paragraph for the plan's output, saying which calibration priced it.
    """

    kind: str
    speeds: dict[str, Throughput] = field(default_factory=dict)
    description: str = ""


def reference_calibration(archs: Sequence[str]) -> Calibration:
    """The shipped table's throughput for ``archs``.

    Raises:
        ConfigError: an architecture without a published figure (``--calibrate`` measures it).
    """
    speeds = {}
    for arch in dict.fromkeys(archs):
        train, infer = reference_throughput(arch)
        speeds[arch] = Throughput(1.0 / train, 1.0 / infer)
    return Calibration("reference", speeds,
                       f"calibration: the shipped reference table, not a measurement: timm's published training "
                       f"and inference throughput at 224 px on an {REFERENCE_GPU} ({REFERENCE_SOURCE}); GPU-hours "
                       "are hours of that GPU (A100-class GPUs are faster: an upper bound there). Add --calibrate "
                       "to measure this machine's device instead.")


def probe(arch: str, *, image_size: int | None = None, batch_size: int | None = None, repeats: int = 3,
          device: str = "auto", num_classes: int = 200,
          clock: Callable[[], float] = time.perf_counter) -> Throughput:
    """Measures one architecture: seconds per image of a training step and of a forward pass.

    Args:
        arch: a timm architecture (``vit_base_patch16_224``; ``test_vit`` for a tiny one), built with random weights.
        image_size: square input size in pixels (default :data:`PROBE_SIZE`).
        batch_size: images per pass (default 32 on CUDA, 2 on CPU).
        repeats: timed passes of each kind (after one warm-up each), >= 1.
        device: ``auto``, ``cpu``, ``cuda``... (``robustft.device.resolve_device``).
        num_classes: the head's width.
        clock: the timer (seconds).

    Returns:
        Throughput with seconds per image (> 0).
    """
    import timm
    import torch
    import torch.nn.functional as F

    from robustft.device import resolve_device

    where = resolve_device(device)
    batch = batch_size or (32 if where.type == "cuda" else 2)
    size = image_size or PROBE_SIZE
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes).to(where)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-6)
    images = torch.rand(batch, 3, size, size, device=where)
    labels = torch.randint(0, num_classes, (batch,), device=where)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if where.type == "cuda" else contextlib.nullcontext()

    def step() -> None:
        with autocast():
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    def forward() -> None:
        with torch.no_grad(), autocast():
            model(images)

    def timed(work: Callable[[], None]) -> float:
        work()  # warm-up: allocation, kernel selection
        if where.type == "cuda":
            torch.cuda.synchronize(where)
        start = clock()
        for _ in range(max(1, repeats)):
            work()
        if where.type == "cuda":
            torch.cuda.synchronize(where)
        return max(clock() - start, 1e-9) / (max(1, repeats) * batch)

    model.train()
    train = timed(step)
    model.eval()
    return Throughput(train, timed(forward))


def measured_calibration(archs: Sequence[str], *, image_size: int | None = None, batch_size: int | None = None,
                         repeats: int = 3, device: str = "auto") -> Calibration:
    """Probes every architecture of ``archs`` (see :func:`probe`) and says how in ``description``."""
    from robustft.device import resolve_device

    where = resolve_device(device)
    batch = batch_size or (32 if where.type == "cuda" else 2)
    image_size = image_size or PROBE_SIZE
    speeds = {arch: probe(arch, image_size=image_size, batch_size=batch, repeats=repeats, device=device)
              for arch in dict.fromkeys(archs)}
    name = where.type
    if where.type == "cuda":
        import torch

        name = f"cuda ({torch.cuda.get_device_name(where)})"
    return Calibration("measured", speeds,
                       f"calibration: measured on this machine's {name} by a probe: per backbone, random weights "
                       f"(timm pretrained=False, no download), batch {batch} at {image_size} px, 1 warm-up then "
                       f"{repeats} timed training steps (forward, backward, AdamW) and {repeats} forward passes, "
                       "scaled to the plan's image counts; GPU-hours are hours of this device.")
