"""The embedded ViT-S/14 through robustft vs the same network in plain eager timm, side by side (bench/timing.py).

Setting: ``vit_small_dinov2`` (embedded weights, fresh 10-class head) at 56 px, the resolution of
``configs/vit_embedded/paper_a.yaml``, batch 32, CPU. The plain side is ``timm.create_model(
"vit_small_patch14_dinov2", img_size=56)`` holding the very same tensors, fed pre-normalised images, with no
robustft code on its path.

1. Training forward+backward (cross-entropy, gradients for every parameter): robustft's ``RobustModel`` (which
   normalises inside ``forward``) vs plain timm. Target: the wrapper costs nothing measurable (<= 1.05x time).
2. PGD-10 L-inf at 1/255 (step 0.25/255, random start, no early stop) scored into a clean and a robust accuracy:
   robustft's ``robust_accuracy`` (prepared model: eval mode, frozen parameters, the ViT rewrites of
   attacks/prepare_vit.py; its verdicts from the logits the attack recorded, attacks/record.py; the copy is made
   inside every timed call) vs a hand-written eager loop on plain timm (eval mode, ``requires_grad_(False)``, a
   clean forward, ``torch.autograd.grad`` w.r.t. the input, sign step, projection, clamp, a scoring forward): 12
   forward passes each, 10 of them with a backward, same images, eps, step and labels. Labels are the model's own
   clean predictions, so both attack every sample. Run with torch at 2 threads, then at 1; at 2 threads twice for
   robustft: as it runs (it picks its own thread count, attacks/threads.py, so on a busy machine it runs one
   thread beside the plain loop's two) and at equal threads (``ROBUSTFT_THREADS=keep``), each its own line.
   Target: no slower (throughput ratio >= 1.0x) at equal threads, robust accuracy within noise of each other.
3. What the ViT path keeps, measured side by side (forward + input-gradient backward, eval mode, frozen): timm's
   fused attention (``F.scaled_dot_product_attention``, on by default in timm 1.x; robustft leaves it on) against
   the unfused matmul-softmax path, and channels_last inputs (which prepare_for_attack gives CNNs only). Not
   here: ``torch.compile``, measured once on 2 cores at load 5-7: 110 s to compile, then 1.18x the eager time
   (slower), so robustft does not compile.

Run: ``python -m bench vit`` (or ``make bench``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from bench.images import fashion_images
from bench.timing import compare, report_line

BATCH, SIZE, STEPS, EPS = 32, 56, 10, 1 / 255
ROUNDS = 5  # interleaved rounds per PGD comparison (median of per-round ratios)
THREADS_ENV = "ROBUSTFT_THREADS"


def _models():
    """(robustft model, plain timm model with the same tensors)."""
    import timm

    from robustft.models import build

    ours = build("vit_small_dinov2", 10, image_size=SIZE)
    plain = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=SIZE, num_classes=10)
    plain.load_state_dict(ours.backbone.state_dict(), strict=True)
    return ours, plain


def _plain_pgd(model: torch.nn.Module, normalise, images: torch.Tensor, labels: torch.Tensor,
               generator: torch.Generator) -> float:
    """The textbook eager PGD-10 (random start) on plain timm, after a clean forward; returns robust accuracy."""
    with torch.no_grad():
        clean = model(normalise(images)).argmax(1) == labels  # clean accuracy, as robust_accuracy reports it
    step = 0.25 / 255
    x = (images + torch.empty_like(images).uniform_(-EPS, EPS, generator=generator)).clamp(0, 1)
    for _ in range(STEPS):
        x.requires_grad_(True)
        loss = F.cross_entropy(model(normalise(x)), labels)
        (grad,) = torch.autograd.grad(loss, x)
        x = torch.min(torch.max(x.detach() + step * grad.sign(), images - EPS), images + EPS).clamp(0, 1)
    with torch.no_grad():
        return float(((model(normalise(x)).argmax(1) == labels) & clean).float().mean())


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ours, plain = _models()
    images = fashion_images(BATCH, SIZE)
    mean, std = ours.mean.clone(), ours.std.clone()

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return (x - mean) / std

    normalised = normalise(images)
    with torch.no_grad():
        labels = ours.eval()(images).argmax(1)
        assert torch.equal(labels, plain.eval()(normalised).argmax(1)), "the two models disagree"

    # 1. Training forward + backward.
    ours.train()
    plain.train()

    def step(model, inputs):
        def run():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(inputs), labels).backward()
        return run

    timing = compare({"plain": step(plain, normalised), "robustft": step(ours, images)}, reference="plain",
                     rounds=5, warmup=1)
    ratio = timing["robustft"].ratio_to_reference
    print(f"forward+backward, batch {BATCH} at {SIZE}px: plain timm {BATCH / timing['plain'].seconds:.1f} img/s, "
          f"robustft {BATCH / timing['robustft'].seconds:.1f} img/s")
    print(report_line("ViT-S/14 forward+backward time, robustft / plain timm", ratio, "<= 1.05x", ratio <= 1.05))

    # 2. PGD-10: as `make bench` runs it (robustft picks its threads, timm keeps 2), then at equal threads.
    ours.eval()
    plain.eval().requires_grad_(False)
    _pgd_side_by_side(ours, plain, normalise, images, labels, threads=2)
    _pgd_side_by_side(ours, plain, normalise, images, labels, threads=1)
    torch.set_num_threads(2)
    _attention_variants(ours, images, labels)


@contextmanager
def _robustft_threads(value: str | None) -> Iterator[None]:
    """``ROBUSTFT_THREADS`` set to ``value`` during the block (None: as it was), restored after."""
    before = os.environ.get(THREADS_ENV)
    if value is not None:
        os.environ[THREADS_ENV] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = before


def _pgd_side_by_side(ours: torch.nn.Module, plain: torch.nn.Module, normalise, images: torch.Tensor,
                      labels: torch.Tensor, threads: int) -> None:
    """2. PGD-10 through ``robust_accuracy`` vs the plain loop, torch at ``threads``: robustft as it runs (its
    thread count its own, attacks/threads.py) and at the plain loop's thread count (``ROBUSTFT_THREADS=keep``)."""
    from robustft.attacks import build_attack, robust_accuracy

    torch.set_num_threads(threads)
    results: dict[str, float] = {}
    attack = build_attack("pgd", steps=STEPS, step_size=0.25 / 255, random_start=True, early_stop=False,
                          generator=torch.Generator().manual_seed(0))

    def theirs():
        results["plain"] = _plain_pgd(plain, normalise, images, labels, torch.Generator().manual_seed(0))

    def robustft_pgd(setting: str | None):
        def run():
            with _robustft_threads(setting):
                results["robustft"] = robust_accuracy(ours, (images, labels), attack, EPS, early_stop=False).accuracy
        return run

    candidates = {"plain": theirs, "equal threads": robustft_pgd("keep")}
    if threads > 1:  # with one thread there is nothing to pick: as run is equal threads
        candidates["as run"] = robustft_pgd(None)
    timing = compare(candidates, reference="plain", rounds=ROUNDS, warmup=1)
    print(f"PGD-10 at 1/255, batch {BATCH}, torch at {threads} thread(s): plain timm "
          f"{BATCH / timing['plain'].seconds:.1f} img/s, robustft at equal threads "
          f"{BATCH / timing['equal threads'].seconds:.1f} img/s; robust accuracy plain {results['plain']:.1%}, "
          f"robustft {results['robustft']:.1%}")
    for name in candidates:
        if name == "plain":
            continue
        speed = 1 / timing[name].ratio_to_reference
        print(report_line(f"ViT-S/14 PGD-10 throughput, robustft ({name}) / plain timm eager loop, {threads} "
                          "thread(s)", speed, ">= 1.0x", speed >= 1.0))


def _attention_variants(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """3. Fused vs unfused attention and channels_last, forward + input-gradient backward on prepared copies."""
    from robustft.attacks import prepare_for_attack

    fused = prepare_for_attack(model)
    unfused = prepare_for_attack(model)
    for module in unfused.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    variants = {"fused": fused, "unfused": unfused, "channels_last": prepare_for_attack(model, channels_last=True)}

    def step(prepared):
        def run():
            x = images.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(prepared(x), labels), x)
        return run

    timing = compare({name: step(m) for name, m in variants.items()}, reference="fused", rounds=5, warmup=1)
    print("ViT-S/14 forward+input gradient, time / fused attention (robustft's path): " + ", ".join(
        f"{name} {t.ratio_to_reference:.2f}x" for name, t in timing.items() if name != "fused"))


if __name__ == "__main__":
    main()
