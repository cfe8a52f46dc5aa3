"""Where things are inside a model: transformer blocks (q/k/v, attention output, MLP), CNN blocks and convs.

Strategies place their modules by role ("LoRA on q, k, v, MLP in, MLP out"), not by name, so one strategy works
on timm, torchvision and Hugging Face models alike. ``detect_layout`` finds the roles from module types and the
attribute names each library uses. Written here because no library describes a model at this level across
timm, torchvision and transformers (peft asks the user for target module names instead).

Every name in a ``Layout`` is a qualified module name within the ``RobustModel`` (``backbone.blocks.0.attn.qkv``),
usable with ``model.get_submodule``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from robustft.errors import RobustftError
from robustft.models.wrapper import RobustModel


class UnsupportedArchitectureError(RobustftError):
    """The model has neither recognisable transformer blocks nor convolutions."""


@dataclass
class AttentionLayout:
    """One self-attention layer.

    Attributes:
        q, k, v: the separate query/key/value ``nn.Linear`` (Hugging Face), or None when fused.
        qkv: the fused ``nn.Linear`` producing [q; k; v] along its output features (timm), or None.
        out: the output projection ``nn.Linear``.
        num_heads: attention heads.
        head_dim: features per head.
        dim: model width (features of q, k and v each).
    """

    q: str | None
    k: str | None
    v: str | None
    qkv: str | None
    out: str
    num_heads: int
    head_dim: int
    dim: int

    @property
    def fused(self) -> bool:
        return self.qkv is not None


@dataclass
class BlockLayout:
    """One residual block.

    Attributes:
        name: the block module.
        kind: ``transformer``, ``inverted_residual``, ``resnet``, ``convnext`` or ``conv_unit`` (a conv-norm-act
            group of a plain CNN).
        attention: the attention layer (transformers only).
        mlp_in: the MLP's first ``nn.Linear`` (its output goes through the activation), transformers only.
        mlp_out: the MLP's last ``nn.Linear``.
        norms: norm layers inside the block.
        channels: output channels of the block (CNNs) or model width (transformers).
    """

    name: str
    kind: str
    attention: AttentionLayout | None = None
    mlp_in: str | None = None
    mlp_out: str | None = None
    norms: list[str] = field(default_factory=list)
    channels: int = 0


@dataclass
class Layout:
    """The roles found in a model.

    Attributes:
        family: ``vit`` when transformer blocks were found, else ``cnn``.
        head: the classification head (``model.info.head``).
        blocks: residual blocks in forward order.
        convs: every ``nn.Conv2d`` outside the head, in module order.
        pointwise_convs: the 1x1, ungrouped subset of ``convs``.
        linears: every ``nn.Linear`` outside the head.
        norms: every normalisation layer (BatchNorm, LayerNorm, GroupNorm).
        embed_dim: transformer width (ViTs), else 0.
        num_prefix_tokens: class/register tokens before the patch tokens (ViTs), else 0.
        patch_size: patch side (ViTs), else 0.
        opaque_attention: ``nn.MultiheadAttention`` modules (torchvision ViTs): their fused ``in_proj_weight`` is
            a bare parameter used inside a functional call, so no role can be placed on q, k, v or the MLP
            around them; strategies that place modules refuse such models rather than adapt the wrong layers.
    """

    family: Literal["cnn", "vit"]
    head: str
    blocks: list[BlockLayout]
    convs: list[str]
    pointwise_convs: list[str]
    linears: list[str]
    norms: list[str]
    embed_dim: int = 0
    num_prefix_tokens: int = 0
    patch_size: int = 0
    opaque_attention: list[str] = field(default_factory=list)


NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.SyncBatchNorm)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _linear(module: nn.Module, attr: str) -> nn.Linear | None:
    child = getattr(module, attr, None)
    return child if isinstance(child, nn.Linear) else None


def _attention(name: str, attn: nn.Module) -> AttentionLayout | None:
    """Recognises timm ``Attention`` (fused qkv + proj) and Hugging Face ViT attention (separate q/k/v)."""
    heads = getattr(attn, "num_heads", None) or getattr(attn, "num_attention_heads", None)
    if _linear(attn, "qkv") is not None and _linear(attn, "proj") is not None:
        qkv = attn.qkv
        if qkv.out_features % 3 or heads is None:
            return None
        dim = qkv.out_features // 3
        return AttentionLayout(None, None, None, _join(name, "qkv"), _join(name, "proj"), int(heads),
                               dim // int(heads), dim)
    # transformers >= 5: ViTAttention(q_proj, k_proj, v_proj, o_proj)
    if all(_linear(attn, a) is not None for a in ("q_proj", "k_proj", "v_proj", "o_proj")):
        dim = attn.q_proj.out_features
        heads = int(heads or (dim // attn.head_dim))
        return AttentionLayout(_join(name, "q_proj"), _join(name, "k_proj"), _join(name, "v_proj"), None,
                               _join(name, "o_proj"), heads, dim // heads, dim)
    # transformers < 5: ViTAttention(attention=ViTSelfAttention(query, key, value), output=ViTSelfOutput(dense))
    inner, output = getattr(attn, "attention", None), getattr(attn, "output", None)
    if inner is not None and output is not None and _linear(output, "dense") is not None and all(
            _linear(inner, a) is not None for a in ("query", "key", "value")):
        dim = inner.query.out_features
        heads = int(getattr(inner, "num_attention_heads", 0) or dim // inner.attention_head_size)
        base = _join(name, "attention")
        return AttentionLayout(_join(base, "query"), _join(base, "key"), _join(base, "value"), None,
                               _join(name, "output.dense"), heads, dim // heads, dim)
    return None


def _transformer_block(name: str, module: nn.Module) -> BlockLayout | None:
    """A pre-norm transformer block: attention + MLP (timm ``Block``, HF ``ViTLayer``)."""
    attn_name = next((a for a in ("attn", "attention") if hasattr(module, a)), None)
    if attn_name is None:
        return None
    attention = _attention(_join(name, attn_name), getattr(module, attn_name))
    if attention is None:
        return None
    mlp = getattr(module, "mlp", None)
    if mlp is not None and _linear(mlp, "fc1") is not None and _linear(mlp, "fc2") is not None:
        mlp_in, mlp_out = _join(name, "mlp.fc1"), _join(name, "mlp.fc2")
    elif _linear(getattr(module, "intermediate", None), "dense") is not None and \
            _linear(getattr(module, "output", None), "dense") is not None:
        mlp_in, mlp_out = _join(name, "intermediate.dense"), _join(name, "output.dense")
    else:
        return None
    norms = [_join(name, n) for n, m in module.named_modules() if n and isinstance(m, NORM_TYPES)]
    return BlockLayout(name, "transformer", attention, mlp_in, mlp_out, norms, attention.dim)


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    last = (convs or linears)[-1]
    return last.out_channels if isinstance(last, nn.Conv2d) else last.out_features


def _cnn_block_kind(module: nn.Module) -> str | None:
    cls = type(module).__name__
    origin = type(module).__module__
    if cls == "InvertedResidual" and "torchvision" in origin:
        return "inverted_residual"
    if cls in ("Bottleneck", "BasicBlock") and ("timm" in origin or "torchvision" in origin):
        return "resnet"
    if cls == "ConvNeXtBlock" and "timm" in origin:
        return "convnext"
    return None


def _conv_units(model: nn.Module, head: str) -> list[BlockLayout]:
    """Fallback for plain CNNs: every activation that directly follows a norm which follows a conv."""
    units = []
    for parent_name, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent.named_children())
        for i in range(2, len(children)):
            (_, conv), (_, norm), (act_name, act) = children[i - 2], children[i - 1], children[i]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, NORM_TYPES) and not isinstance(
                    act, (nn.Conv2d, nn.Linear, *NORM_TYPES)) and not list(act.parameters()):
                name = _join(parent_name, act_name)
                if not name.startswith(head):
                    units.append(BlockLayout(name, "conv_unit", channels=conv.out_channels))
    return units


def detect_layout(model: RobustModel) -> Layout:
    """Finds the family, blocks and layer roles of ``model``.

    Args:
        model: a ``RobustModel`` (its ``info.head`` names the head, excluded from every role list).

    Returns:
        The ``Layout``.

    Raises:
        UnsupportedArchitectureError: neither transformer blocks (attention with qkv or q/k/v projections and an
            MLP) nor any ``nn.Conv2d`` were found.
    """
    head = model.info.head

    def outside_head(name: str) -> bool:
        return name != head and not name.startswith(head + ".")

    modules = [(n, m) for n, m in model.named_modules() if n and outside_head(n)]
    transformer_blocks = [b for n, m in modules if (b := _transformer_block(n, m)) is not None]
    convs = [n for n, m in modules if isinstance(m, nn.Conv2d)]
    pointwise = [n for n, m in modules if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]
    linears = [n for n, m in modules if isinstance(m, nn.Linear)]
    norms = [n for n, m in modules if isinstance(m, NORM_TYPES)]
    opaque = [n for n, m in modules if isinstance(m, nn.MultiheadAttention)]
    if transformer_blocks:
        embed_dim = transformer_blocks[0].channels
        vit = next((m for _, m in modules if hasattr(m, "num_prefix_tokens")), None)
        prefix = int(vit.num_prefix_tokens) if vit is not None else 1  # HF ViT: one CLS token
        patch = next((m for n, m in modules if isinstance(m, nn.Conv2d) and m.out_channels == embed_dim), None)
        return Layout("vit", head, transformer_blocks, convs, pointwise, linears, norms, embed_dim, prefix,
                      patch.kernel_size[0] if patch is not None else 0)
    if not convs:
        raise UnsupportedArchitectureError(
            f"cannot find the layout of {type(model.backbone).__name__}: no transformer blocks (an attention module "
            "with a fused qkv or separate q/k/v Linear plus an MLP with fc1/fc2) and no nn.Conv2d were found. "
            "Use a timm, torchvision or Hugging Face ViT/CNN, or the strategies full, linear, bitfit or partial "
            "after adding support for this architecture in robustft.models.layout."
        )
    blocks = []
    for name, module in modules:
        kind = _cnn_block_kind(module)
        # nested blocks (a block inside a block) do not occur in these families; keep the outermost only
        if kind is not None and not any(name.startswith(b.name + ".") for b in blocks):
            blocks.append(BlockLayout(name, kind, norms=[_join(name, n) for n, m in module.named_modules()
                                                        if n and isinstance(m, NORM_TYPES)],
                                      channels=_out_channels(module)))
    if not blocks:
        blocks = _conv_units(model, head)
    return Layout("cnn", head, blocks, convs, pointwise, linears, norms, opaque_attention=opaque)
