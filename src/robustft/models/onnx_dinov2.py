"""Reads a Hugging Face ``Dinov2Model`` exported to ONNX and returns its weights as a timm ViT state dict.

The exporter (PyTorch 2.7, opset 14) kept the parameter names of ``Dinov2Model`` for biases, norms, layer
scales and the patch embedding, but turned every ``nn.Linear`` weight into an anonymous ``onnx::MatMul_N``
initialiser stored transposed (in x out, for ``x @ W``) and split the position embedding into two anonymous
initialisers (the CLS part, 1 x 1 x D, and the patch grid, 1 x N x D). Anonymous names carry no meaning, so
roles are read from the graph instead of from an assumed order: a MatMul weight belongs to the layer whose named
bias the MatMul's output is added to (the graph order happens to be key, value, query), and the two position
parts are told apart by the node that consumes them (Concat with the CLS token's position, Reshape of the grid).

Mapping (HF ``Dinov2Model`` -> timm ``vit_small_patch14_dinov2``, the same one timm's own DINOv2 loader implies):
``embeddings.cls_token -> cls_token``, ``[cls position; grid] -> pos_embed`` (1 x (1 + N) x D, grid at its
exported 37 x 37 = 518 px / 14), ``patch_embeddings.projection -> patch_embed.proj``,
``layer.i.{norm1,norm2} -> blocks.i.{norm1,norm2}``, ``[query; key; value] -> blocks.i.attn.qkv`` (timm's fused
layer computes q, k, v in that order), ``attention.output.dense -> attn.proj``, ``layer_scale{1,2}.lambda1 ->
ls{1,2}.gamma``, ``mlp.fc{1,2} -> mlp.fc{1,2}``, ``layernorm -> norm``. The saliency decoder is ignored.

Needs the ``onnx`` package (only to parse the protobuf); onnxruntime is never used here.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustft.errors import MissingAssetError, RobustftError

PREFIX = "backbone."
_LAYER = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.(.+)$")
# HF names (after "backbone.encoder.layer.i.") that map one to one onto timm's "blocks.i." names
_BLOCK_RENAMES = {
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
    "attention.output.dense.bias": "attn.proj.bias",
    "mlp.fc1.bias": "mlp.fc1.bias", "mlp.fc2.bias": "mlp.fc2.bias",
}
# linear layer (HF, by its bias name) -> timm weight name
_LINEAR_WEIGHTS = {
    "attention.output.dense": "attn.proj.weight", "mlp.fc1": "mlp.fc1.weight", "mlp.fc2": "mlp.fc2.weight",
}
_TOP_RENAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
}


class ConversionError(RobustftError):
    """The ONNX graph is not the Dinov2 export this converter understands."""


def load_graph(path: Path) -> Any:
    """The parsed ``onnx.ModelProto`` of ``path``.

    Raises:
        MissingAssetError: the ``onnx`` package is not installed (message gives the install command).
    """
    try:
        import onnx
    except ImportError:
        raise MissingAssetError("converting the embedded ViT needs the 'onnx' package (to read the graph's weights "
                                "once; never at training time). Install it with: pip install onnx "
                                "(or `make assets`).") from None
    return onnx.load(str(path), load_external_data=False)


def _initializers(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _consumers(model: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _linear_weights(model: Any, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF layer name (``backbone.encoder.layer.0.attention.attention.key``) -> its weight, out x in.

    A MatMul with an initialiser as its right operand computes ``x @ W``; the Add it feeds holds the layer's
    named bias, which names the layer.
    """
    consumers = _consumers(model)
    weights = {}
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays or not node.input[1].startswith("onnx::"):
            continue
        biases = [name for add in consumers.get(node.output[0], []) if add.op_type == "Add"
                  for name in add.input if name.startswith(PREFIX) and name.endswith(".bias")]
        if len(biases) != 1:
            raise ConversionError(f"MatMul {node.name!r} is not followed by exactly one named bias ({biases}).")
        layer = biases[0].removesuffix(".bias")
        weight = arrays[node.input[1]]
        if weight.shape[1] != arrays[biases[0]].shape[0]:
            raise ConversionError(f"{layer}: weight {weight.shape} does not match its bias {arrays[biases[0]].shape}.")
        weights[layer] = np.ascontiguousarray(weight.T)  # x @ W  ->  nn.Linear's W.T
    return weights


def _position_parts(model: Any, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(CLS position 1 x 1 x D, patch grid 1 x N x D) of the exported position embedding."""
    cls_part, grid = None, None
    for node in model.graph.node:
        if not node.name.startswith("/backbone/embeddings/"):
            continue
        for name in node.input:
            if not name.startswith("onnx::") or name not in arrays or arrays[name].ndim != 3:
                continue
            if node.op_type == "Concat" and arrays[name].shape[1] == 1:
                cls_part = arrays[name]
            elif node.op_type == "Reshape" and arrays[name].shape[1] > 1:
                grid = arrays[name]
    if cls_part is None or grid is None:
        raise ConversionError("the graph has no recognisable position embedding (CLS part and patch grid).")
    side = round(grid.shape[1] ** 0.5)
    if side * side != grid.shape[1]:
        raise ConversionError(f"the position grid has {grid.shape[1]} entries, not a square number.")
    return cls_part, grid


def convert_graph(model: Any) -> dict[str, torch.Tensor]:
    """The timm ``vit_*_dinov2`` state dict (without ``head.*``) held in a Dinov2 ONNX graph.

    Args:
        model: an ``onnx.ModelProto`` of a Hugging Face ``Dinov2Model`` (possibly with extra heads, ignored).

    Returns:
        name -> float32 tensor; ``pos_embed`` is 1 x (1 + G*G) x D at the exported grid G (37 for 518 px / 14).

    Raises:
        ConversionError: a tensor of the graph cannot be placed (another architecture or exporter).
    """
    arrays = _initializers(model)
    linears = _linear_weights(model, arrays)
    state: dict[str, np.ndarray] = {}
    for hf_name, timm_name in _TOP_RENAMES.items():
        if PREFIX + hf_name not in arrays:
            raise ConversionError(f"the graph has no {PREFIX + hf_name}.")
        state[timm_name] = arrays[PREFIX + hf_name]
    cls_part, grid = _position_parts(model, arrays)
    state["pos_embed"] = np.concatenate([cls_part, grid], axis=1)
    depth = 1 + max(int(m.group(1)) for m in map(_LAYER.match, arrays) if m)
    for i in range(depth):
        hf, timm_block = f"{PREFIX}encoder.layer.{i}.", f"blocks.{i}."
        for hf_name, timm_name in _BLOCK_RENAMES.items():
            state[timm_block + timm_name] = arrays[hf + hf_name]
        for hf_name, timm_name in _LINEAR_WEIGHTS.items():
            state[timm_block + timm_name] = linears[hf + hf_name]
        parts = [f"{hf}attention.attention.{p}" for p in ("query", "key", "value")]  # timm's qkv order
        state[timm_block + "attn.qkv.weight"] = np.concatenate([linears[p] for p in parts], axis=0)
        state[timm_block + "attn.qkv.bias"] = np.concatenate([arrays[p + ".bias"] for p in parts], axis=0)
    # np.array copies: onnx's arrays are read-only views of the protobuf, which torch must not alias
    return {name: torch.from_numpy(np.array(a, dtype=np.float32)) for name, a in state.items()}


def convert_file(path: Path) -> dict[str, torch.Tensor]:
    """``convert_graph`` of the ONNX file at ``path``."""
    return convert_graph(load_graph(path))


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """Hex sha256 over (name, dtype, shape, bytes) of every tensor in name order: a digest of the content,
    independent of the file format it is stored in (safetensors headers may differ between versions)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def last_hidden_state_name(model: Any) -> str:
    """Name of the graph tensor holding ``Dinov2Model``'s last hidden state (output of the final LayerNorm's
    bias Add, N x (1 + tokens) x D), so tests can compare against it through onnxruntime."""
    for node in model.graph.node:
        if node.op_type == "Add" and f"{PREFIX}layernorm.bias" in node.input:
            return node.output[0]
    raise ConversionError("the graph has no final LayerNorm (backbone.layernorm).")
