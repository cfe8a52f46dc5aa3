"""What every attack shares: the calling contract, model-state hygiene, fp32 input gradients, projections.

Contract: ``attack(model, images, labels, eps) -> x_adv`` with images float N x C x H x W in [0, 1], labels int64
N, eps a float in pixel units. The result stays in the [0, 1] box and within eps of the images in the attack's
norm; at eps == 0 the images come back unchanged. While attacking, the model is in eval mode and its
parameters do not require grad (so backward computes only the input gradient); both are restored on return and
no parameter's ``.grad`` is touched (gradients come from ``torch.autograd.grad``). Gradients are fp32 even when
the caller runs under autocast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustft.attacks.threads import attack_threads
from robustft.config.units import check_eps_value, parse_eps
from robustft.errors import ConfigError

NORMS = ("linf", "l2")
_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
_warned_train_mode = False


@dataclass(frozen=True)
class Attack:
    """A named attack with fixed options; call it like the function it wraps.

    Attributes:
        name: registry name (``pgd``, ``apgd-ce``, ...).
        fn: ``fn(model, images, labels, eps, **options) -> x_adv``.
        options: keyword options passed to ``fn``.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
        """Returns x_adv (N x C x H x W in [0, 1]) for images (N x C x H x W in [0, 1]) and labels (N)."""
        return self.fn(model, images, labels, eps, **self.options)

    def with_options(self, **options: Any) -> Attack:
        """A copy with some options replaced (attacks are immutable)."""
        return Attack(self.name, self.fn, {**self.options, **options})

    def accepts(self, option: str) -> bool:
        """Whether the wrapped function takes keyword ``option``."""
        import inspect

        return option in inspect.signature(self.fn).parameters

    def describe(self) -> str:
        """``name(opt=value, ...)`` for logs and JSON."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k != "generator")
        return f"{self.name}({opts})" if opts else self.name


def check_eps(eps: float | str, norm: str = "linf") -> float:
    """Checks an epsilon in pixel units (catches ``8`` meant as ``8/255`` for L-inf; L2 radii may exceed 1).

    A number (what the config and the trainer hand over: eps is parsed once, by the config) is range-checked,
    not parsed; text (``"4/255"`` from a Python caller) goes through the one parser, ``config.units.parse_eps``.
    """
    if isinstance(eps, str):
        return parse_eps(eps)
    if norm == "l2" and float(eps) > 1:
        eps = float(eps)
        if eps != eps or eps == float("inf"):
            raise ConfigError(f"eps={eps!r} must be a finite non-negative number.")
        return eps
    return check_eps_value(eps)


def radius_of_each(eps: float, radii: torch.Tensor | None, images: torch.Tensor) -> float | torch.Tensor:
    """The radius each sample is attacked at: ``eps``, or given ``radii`` (N, each in (0, eps]) those radii as an
    N x 1 x 1 x 1 tensor of the images' dtype (broadcasts over an image; ``project`` takes it).

    ``radii`` is how ``attacks.curve_levels`` runs several eps of a robust curve in one batch: each row is a
    (sample, eps) pair; ``eps`` stays the largest radius, what the checks and the returned ball are about.
    """
    if radii is None:
        return eps
    if radii.dim() != 1 or radii.shape[0] != images.shape[0]:
        raise ConfigError(f"radii must hold one radius per image, shape ({images.shape[0]},); got "
                          f"{tuple(radii.shape)}.")
    if radii.numel() and (not bool(torch.isfinite(radii).all()) or float(radii.min()) <= 0
                          or float(radii.max()) > eps * (1 + 1e-6)):  # a float32 radius may round up
        raise ConfigError(f"radii must lie in (0, eps] with eps={eps:.6g}; got values in "
                          f"[{float(radii.min()):.6g}, {float(radii.max()):.6g}].")
    return radii.to(images.device, images.dtype).view(-1, 1, 1, 1)


def check_inputs(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Raises ConfigError for images that are not float N x C x H x W in [0, 1] or labels that do not match."""
    if not torch.is_floating_point(images) or images.dim() != 4:
        raise ConfigError(
            f"attacks need float images N x C x H x W in [0, 1]; got {images.dtype} {tuple(images.shape)}.")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ConfigError(f"labels must be int64 of shape ({images.shape[0]},); got {tuple(labels.shape)}.")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ConfigError(
            "attack images must be in [0, 1] (robustft models normalise inside forward); got values in "
            f"[{images.min().item():.3g}, {images.max().item():.3g}]. Pass unnormalised images."
        )


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ConfigError(f"norm={norm!r} is not supported; use one of {', '.join(NORMS)}.")
    return norm


def warn_train_mode_batchnorm(model: nn.Module) -> None:
    """Says once per process that a model with BatchNorm in train mode is attacked in eval mode.

    A model with BatchNorm in train mode would attack a moving target (batch statistics) and update its running
    statistics with adversarial batches, so attacks always run in eval mode (on the model or on its prepared copy).
    """
    global _warned_train_mode
    if not _warned_train_mode and any(isinstance(m, _BN_TYPES) and m.training for m in model.modules()):
        _warned_train_mode = True
        warnings.warn("the attacked model has BatchNorm in train mode; robustft attacks it in eval mode and leaves "
                      "the model's own mode as it was", stacklevel=4)


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters and as many CPU threads as CPUs are free while attacking; all restored after.

    A model with BatchNorm in train mode would attack a moving target (batch statistics) and update its running
    statistics with adversarial batches; it is switched to eval, and said once. The thread count is
    ``attacks.threads.attack_threads``'s (on a busy machine two spinning OpenMP threads are many times slower
    than one); every attack enters this block, so none can forget it.
    """
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    warn_train_mode_batchnorm(model)
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        with attack_threads():
            yield
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)


@contextmanager
def cudnn_autotune(device: torch.device, fixed_shapes: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` on during the block, on CUDA, when the batch shape stays fixed.

    cuDNN then times its convolution algorithms once per input shape and keeps the fastest. An attack with early
    stop shrinks its batch at every step, so each step would pay the timing for a new shape: there (and on the
    CPU) the flag is left as it is. Restored after the block.
    """
    if device.type != "cuda" or not fixed_shapes:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def num_classes_of(model: nn.Module, logits: torch.Tensor | None = None) -> int:
    info = getattr(model, "info", None)
    if info is not None and getattr(info, "num_classes", None):
        return int(info.num_classes)
    if logits is not None:
        return int(logits.shape[1])
    raise ConfigError("cannot tell the model's number of classes; give it an .info.num_classes.")


PRECISIONS = ("auto", "fp32", "bf16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype an attack's forward/backward passes run in under autocast; None: fp32 (no autocast).

    ``auto`` is bf16 on a CUDA device that supports it (about twice the throughput of fp32 there, and bf16 keeps
    fp32's range, so gradients need no scaling) and fp32 elsewhere (on most CPUs bf16 is slower). ``bf16`` on a
    CPU is what the tests use as a stand-in for the CUDA path. Verdicts stay fp32 whatever this says
    (``confirm_fooled``; an attack records no bf16 logits, so robust evaluation classifies its points in fp32).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is not supported; use one of {', '.join(PRECISIONS)} (auto: "
                          "bf16 on a CUDA device that supports it, else fp32).")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def _autocast(x: torch.Tensor, dtype: torch.dtype | None):
    # enabled=False also switches off an autocast the caller runs under: fp32 unless the attack asks otherwise.
    return torch.autocast(device_type=x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def logits_of(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (N x K, returned as fp32) without building a graph; computed in ``dtype`` under autocast if given."""
    with torch.no_grad(), _autocast(x, dtype):
        return model(x.float()).float()


def confirm_fooled(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, fooled: torch.Tensor,
                   dtype: torch.dtype | None) -> torch.Tensor:
    """``fooled`` (bool N) kept only where the fp32 logits agree, when the pass that proposed it ran in ``dtype``.

    A reduced-precision pass proposes, fp32 decides: a sample leaves an early-stopped batch, and a point is kept
    as fooling, only if the model in fp32 misclassifies it (an fp32 forward on the proposed samples alone).
    """
    if dtype is None or not bool(fooled.any()):
        return fooled
    idx = torch.nonzero(fooled).squeeze(1)
    confirmed = fooled.clone()
    confirmed[idx] = logits_of(model, x[idx]).argmax(1) != labels[idx]
    return confirmed


# Images per forward+backward pass on the CPU: a larger batch runs in pieces of this many (and the rest). Each
# sample's loss and gradient depend on that sample only, so the pieces give the same per-sample values, and the
# peak memory of a pass is bounded whatever batch the caller hands over. Measured side by side on the embedded
# MobileNetV2 at 32 px, PGD-10 through robust_accuracy at 60% robust, batch 256, idle (2026-12-06, with the
# allocator kept fault-free, robustft/allocator.py): pieces of 256 (one pass) 608-652 ms at 2 threads and
# 1,039-1,049 ms at 1 thread; pieces of 128 720 ms and 1,113 ms (an extra pass per step, and a small remainder
# piece once early stop shrinks the batch). An earlier measurement under load (3-5) had favoured 128: that gain was
# the page faults of glibc's malloc, which the allocator settings now remove.
CPU_PIECE = 256


def loss_and_grad(model: nn.Module, x: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor],
                  dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample loss (N), its gradient w.r.t. x (N x C x H x W) and the logits (N x K), all returned as fp32.

    ``loss_fn`` maps logits to per-sample losses. Works under an outer ``no_grad`` or autocast. The passes run in
    fp32, or in ``dtype`` under autocast if given (the loss is computed from the logits cast to fp32). On the CPU
    a batch of more than ``CPU_PIECE`` images is passed through the model in pieces (same per-sample values).
    """
    x = x.detach().float()
    size = CPU_PIECE if x.device.type == "cpu" and x.shape[0] > CPU_PIECE else x.shape[0]
    pieces = [piece.requires_grad_(True) for piece in x.split(max(size, 1))] if x.shape[0] else [
        x.requires_grad_(True)]
    with torch.enable_grad(), _autocast(x, dtype):
        outputs = [model(piece) for piece in pieces]
        logits = (outputs[0] if len(outputs) == 1 else torch.cat(outputs)).float()
        loss = loss_fn(logits)
        grads = torch.autograd.grad(loss.sum(), pieces)
    grad = grads[0] if len(grads) == 1 else torch.cat(grads)
    if 0 in grad.stride():
        # autograd may hand back an expanded tensor (logits depending on x through a plain sum); the attacks
        # update the gradient in place, which an expanded tensor does not allow.
        grad = grad.contiguous()
    return loss.detach(), grad.detach(), logits.detach()


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(x: torch.Tensor, images: torch.Tensor, eps: float | torch.Tensor, norm: str) -> torch.Tensor:
    """Projects x onto the eps-ball around images (linf or l2) intersected with the [0, 1] box."""
    delta = x - images
    if norm == "linf":
        if isinstance(eps, torch.Tensor):  # per-sample radii
            delta = torch.maximum(torch.minimum(delta, eps), -eps)
        else:
            delta = delta.clamp_(-eps, eps)
    else:
        # Box-clamping after the l2 projection only shrinks each coordinate of delta (images are in [0, 1]).
        delta = delta * torch.clamp(eps / (_flat_norm(delta) + 1e-12), max=1.0)
    return (images + delta).clamp_(0.0, 1.0)


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit norm: sign(grad) for linf, grad / ||grad||_2 for l2."""
    if norm == "linf":
        return grad.sign()
    return grad / (_flat_norm(grad) + 1e-12)


def random_start(images: torch.Tensor, eps: float | torch.Tensor, norm: str, generator: torch.Generator | None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
    """A uniform random point of the eps-ball (linf) or a random direction at uniform radius (l2), in the box.

    Noise is drawn for the whole batch at once on the CPU generator, so a sample's start does not depend on
    which other samples are still attacked (early stop gives the same verdict). ``eps``: a radius, or N x 1 x 1 x 1
    per-sample radii. ``noise``: L-inf only, the uniform [0, 1) draws (N x C x H x W) to start from instead of
    drawing them (``start_noise`` of pgd / apgd: a robust curve's levels run side by side, ``attacks.curve_levels``).
    """
    shape = images.shape
    if noise is None:
        noise = torch.rand(shape, generator=generator, device="cpu" if generator is not None else images.device)
    elif norm != "linf" or noise.shape != shape:
        raise ConfigError(f"start_noise must be uniform draws of the images' shape {tuple(shape)} for an L-inf "
                          f"attack; got {tuple(noise.shape)} for norm {norm!r}.")
    noise = noise.to(images.device, images.dtype)
    if norm == "linf":
        delta = (2 * noise - 1) * eps
    else:
        direction = torch.randn(shape, generator=generator,
                                device="cpu" if generator is not None else images.device).to(images.device)
        direction = direction / (_flat_norm(direction) + 1e-12)
        radius = torch.rand(shape[0], generator=generator,
                            device="cpu" if generator is not None else images.device).to(images.device)
        delta = direction * (radius.view(-1, 1, 1, 1) * eps)
    return project(images + delta, images, eps, norm)


def better(loss: torch.Tensor, fooled: torch.Tensor, best_loss: torch.Tensor, best_fooled: torch.Tensor
           ) -> torch.Tensor:
    """Per-sample 'is this iterate better': a fooling point beats a non-fooling one, then higher loss wins.

    This is the per-sample worst case: an evaluation sees every point that fooled the model, and training still
    gets the highest-loss iterate among equally (non-)fooling ones.
    """
    return (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
