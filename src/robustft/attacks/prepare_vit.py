"""The attacked timm ViT doing less work for the same function: two rewrites of ``prepare_for_attack``'s copy.

Why. Profiled op by op (torch.profiler), robustft's PGD-10 on the embedded ViT-S/14 (56 px, batch 32) and the
plain eager timm loop run the same operations in the same numbers (588 addmm, 490 mm, 144 + 120 attention
kernels, 12 patch convolutions and 10 of their backwards); what robustft adds, the per-call copy and the attack's
bookkeeping, is under 1% of the time. So at equal threads robustft can only be faster than the textbook loop by
computing less, without changing what the model computes:

1. ``PatchConv2d``: timm embeds patches with a Conv2d whose kernel equals its stride (patches do not overlap).
   oneDNN's backward of that convolution w.r.t. its input took about 10x its forward (36-48 ms per pass at
   batch 32, ~3% of the attack), for what is one (N*L x D) @ (D x C*p*p) product and a reshape. The forward
   stays the same convolution (the logits are bit for bit the model's); only the input gradient is computed as
   that product, and only on the CPU in fp32 with frozen weights (anything else runs the plain convolution).
2. ``ClassTokenBlock``: a ViT pooled by its class token (timm ``global_pool="token"``) reads token 0 of the last
   block's output only; every other token's attention output, projection, MLP, layer scales and final norm are
   computed and thrown away. The last block is replaced by one computing token 0 alone (its keys and values
   still come from every token): on ViT-S/14 at 56 px (17 tokens) about 6% less work, forward and backward.

Both are exact in real arithmetic; in floats they differ from the model by rounding (a product summed in
another order), as the folded BatchNorm of a CNN does. Each rewrite is applied only where it provably computes
the same thing: exact types (timm's ``VisionTransformer``/``Block``/``Attention``, ``nn.Conv2d``), no forward
hooks or pre-hooks (strategies attach their modules with hooks; preparing merges the mergeable ones first), no
``forward`` replaced on an instance, no global module hooks; and a rebuilt last block must reproduce the original
one's token 0 on a probe input (so a timm release whose attention works differently keeps the original block).
Module and parameter names stay the same (``training.crafting`` refreshes the copy by name).
tests/test_attacks_prepare_vit.py holds both against the unrewritten model: logits, input gradients, verdicts.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn


def _untouched(module: nn.Module) -> bool:
    """No forward hooks or pre-hooks and no instance-level ``forward`` on ``module`` or anything inside it."""
    return not any(m._forward_hooks or m._forward_pre_hooks or "forward" in vars(m) for m in module.modules())


def _global_hooks() -> bool:
    hooks = torch.nn.modules.module
    return bool(getattr(hooks, "_global_forward_hooks", None) or getattr(hooks, "_global_forward_pre_hooks", None))


class _PatchConvFunction(torch.autograd.Function):
    """The convolution forward; the input gradient as one matrix product (no weight or bias gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.input_shape = x.shape
        return F.conv2d(x, weight, bias, stride)  # nn.Conv2d's own call for padding 0, dilation 1, groups 1

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        n, channels, height, width = ctx.input_shape
        out_channels, _, ph, pw = weight.shape
        gh, gw = grad.shape[-2:]
        # Each output pixel (n, :, i, j) is W @ its patch, so the patch's gradient is W^T @ grad[n, :, i, j].
        cols = grad.permute(0, 2, 3, 1).reshape(n * gh * gw, out_channels) @ weight.reshape(out_channels, -1)
        dx = cols.view(n, gh, gw, channels, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, channels, gh * ph, gw * pw)
        if (gh * ph, gw * pw) != (height, width):  # rows / columns past the last whole patch: not read, gradient 0
            dx = F.pad(dx, (0, width - gw * pw, 0, height - gh * ph))
        return dx, None, None, None


class PatchConv2d(nn.Conv2d):
    """A Conv2d over non-overlapping patches (kernel == stride, no padding) whose input gradient is a product.

    Same forward as ``nn.Conv2d``; the fast backward applies on the CPU in fp32 (no autocast) with frozen weight
    and bias, where only the input gradient is wanted (an attack); otherwise this is the plain convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, N x C x H x W. Returns: N x D x H//p x W//p, as ``nn.Conv2d``."""
        frozen = not self.weight.requires_grad and (self.bias is None or not self.bias.requires_grad)
        if (frozen and x.requires_grad and torch.is_grad_enabled() and x.device.type == "cpu"
                and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu")):
            return _PatchConvFunction.apply(x, self.weight, self.bias, self.stride)
        return super().forward(x)


def patch_conv(conv: nn.Module) -> PatchConv2d | None:
    """A ``PatchConv2d`` holding ``conv``'s own parameters, or None where ``conv`` is not a plain patch conv."""
    if not (type(conv) is nn.Conv2d and _untouched(conv) and conv.kernel_size == conv.stride
            and max(conv.kernel_size) > 1 and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == "zeros"):
        return None
    fast = PatchConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                       bias=conv.bias is not None, device="meta")
    fast.weight = conv.weight  # the very parameters: nothing copied, names unchanged
    if conv.bias is not None:
        fast.bias = conv.bias
    return fast.train(conv.training)


def _attend_class_token(attn: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """timm ``Attention.forward`` (no mask, eval mode) for query token 0 only: N x 1 x D from y, N x L x D."""
    batch, tokens, _ = y.shape
    qkv = attn.qkv(y).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q[:, :, :1]), attn.k_norm(k)  # both act per token and head
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        out = attn.attn_drop((q * attn.scale @ k.transpose(-2, -1)).softmax(dim=-1)) @ v
    out = attn.norm(out.transpose(1, 2).reshape(batch, 1, attn.attn_dim))
    if attn.gate is not None:
        out = out * attn.gate(y[:, :1]).sigmoid()
    return attn.proj_drop(attn.proj(out))


class ClassTokenBlock(nn.Module):
    """timm's last ``Block`` computing token 0 only: N x L x D in, N x 1 x D out (the block's output at token 0).

    Holds the block's own children under their own names. In train mode or with an attention mask it runs the
    whole block and keeps token 0.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)
        self.full_forward = type(block).forward
        self.train(block.training)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
                ) -> torch.Tensor:
        if self.training or attn_mask is not None or is_causal:
            return self.full_forward(self, x, attn_mask=attn_mask, is_causal=is_causal)[:, :1]
        first = x[:, :1]
        first = first + self.drop_path1(self.ls1(_attend_class_token(self.attn, self.norm1(x))))
        return first + self.drop_path2(self.ls2(self.mlp(self.norm2(first))))


_ATTENTION_FIELDS = ("qkv", "num_heads", "head_dim", "q_norm", "k_norm", "fused_attn", "attn_drop", "scale",
                     "norm", "gate", "attn_dim", "proj", "proj_drop")


def class_token_block(vit: nn.Module) -> ClassTokenBlock | None:
    """A ``ClassTokenBlock`` for ``vit``'s last block, or None where the rewrite would not be exact."""
    from timm.layers import Attention
    from timm.models.vision_transformer import Block

    blocks, norm = getattr(vit, "blocks", None), getattr(vit, "norm", None)
    if any(name in vars(vit) for name in ("forward_features", "forward_head", "pool")):  # replaced on the instance
        return None
    if not (getattr(vit, "global_pool", None) == "token" and getattr(vit, "attn_pool", None) is None
            and getattr(vit, "cls_token", None) is not None and isinstance(blocks, nn.Sequential) and len(blocks)
            and isinstance(norm, (nn.LayerNorm, nn.Identity)) and _untouched(norm)):
        return None
    if isinstance(norm, nn.LayerNorm) and len(norm.normalized_shape) != 1:  # then it would mix tokens
        return None
    last = blocks[-1]
    if not (type(last) is Block and type(getattr(last, "attn", None)) is Attention and _untouched(last)
            and not blocks._forward_hooks and not blocks._forward_pre_hooks
            and all(hasattr(last.attn, f) for f in _ATTENTION_FIELDS)):
        return None
    fast = ClassTokenBlock(last)
    return fast if _same_class_token(last, fast) else None


@torch.no_grad()
def _same_class_token(block: nn.Module, fast: ClassTokenBlock) -> bool:
    """Whether ``fast`` gives ``block``'s token 0 on a seeded probe (a guard against another timm's attention)."""
    weight = block.attn.qkv.weight
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 5, weight.shape[1], generator=generator).to(weight.device, weight.dtype)
    training = block.training
    block.eval(), fast.eval()
    try:
        expected, actual = block(probe)[:, :1], fast(probe)
    finally:
        block.train(training), fast.train(training)
    return bool(torch.allclose(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max())))


def speed_up_vits(model: nn.Module) -> int:
    """Applies both rewrites to every timm ``VisionTransformer`` inside ``model``, in place, where they are exact.

    Returns the number of modules replaced (0 for a model without a timm ViT, or while global hooks exist).
    """
    if _global_hooks():
        return 0
    # A timm ViT exists only once its module is imported, so a model without one costs nothing here: importing
    # timm to find out took 0.7 s, paid by the first evaluation of every CNN run (2026-12-07, one thread).
    module = sys.modules.get("timm.models.vision_transformer")
    if module is None:
        return 0
    VisionTransformer = module.VisionTransformer  # noqa: N806 (a class)
    replaced = 0
    for vit in [m for m in model.modules() if type(m) is VisionTransformer]:
        patch_embed = getattr(vit, "patch_embed", None)
        conv = patch_conv(getattr(patch_embed, "proj", None)) if _untouched_shallow(patch_embed) else None
        if conv is not None:
            patch_embed.proj = conv
            replaced += 1
        block = class_token_block(vit) if _untouched_shallow(vit) else None
        if block is not None:
            vit.blocks[-1] = block
            replaced += 1
    return replaced


def _untouched_shallow(module: nn.Module | None) -> bool:
    """``module`` itself runs its class's forward, unhooked (its children are checked where they matter)."""
    return (module is not None and not module._forward_hooks and not module._forward_pre_hooks
            and "forward" not in vars(module))
