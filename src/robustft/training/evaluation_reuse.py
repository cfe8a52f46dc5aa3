"""Step-0 evaluations shared by the runs of a study where they are the same computation, done once.

The seven strategies of a paper A study start from the same pretrained backbone with the same seeded head (the
head's initialisation depends on the run seed only), so at step 0 several of them evaluate the same function on
the same fixed subsets with the same attack random starts (the evaluation RNG is seeded by (seed, step)). Whether
two step-0 evaluations are the same computation is decided here from what is computed, not from strategy names:
the key is a digest of the prepared (attacked) copy's module tree and every parameter and buffer in it, the
evaluation settings, the evaluated images, labels and ids, the step, the torch version, the thread settings and
robustft's own source. On the demo's MobileNetV2 this makes full, linear, BitFit, LoRA (B = 0: the merged weight
is W + 0 = W exactly), (IA)3 (scales 1), adapters and Compacter (up-projections 0: ``h + 0 = h`` exactly, so
``strategies.merge`` drops them from the copy) one computation; VPT keeps hooked modules (its prompts) and is
never shared (a copy with any hook or instance-level ``forward`` has no key).

Scope: a study or sweep directory only (the run's ``output_dir`` holds ``sweep.json``, written before any run
starts), in ``<output_dir>/.evaluations/``, so a developer's next invocation after editing code never meets an
old result except through an identical key. Entries are JSON + numpy arrays (no pickle), written atomically;
a damaged or unreadable entry is recomputed. Two runs starting at once may both compute the same entry: they
write the same content.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustft.runs.outcomes import OutcomeBlock
from robustft.training.evaluator import Evaluator

__all__ = ["SHARED_DIR", "EvaluationReuse", "evaluation_key", "shared_directory"]

SHARED_DIR = ".evaluations"
FORMAT = "1"


def shared_directory(output_dir: str | os.PathLike) -> Path | None:
    """Where a run in ``output_dir`` shares its step-0 evaluation: ``<output_dir>/.evaluations`` in a study or
    sweep directory (it holds ``sweep.json``), else None (a lone run shares nothing)."""
    root = Path(output_dir)
    return root / SHARED_DIR if (root / "sweep.json").is_file() else None


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of robustft's source files: an edited attack or model never reuses an entry of the old code."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tensor_bytes(digest: Any, name: str, tensor: torch.Tensor) -> None:
    value = tensor.detach().cpu()
    digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
    if value.dtype == torch.bfloat16:  # no numpy dtype; float32 holds every bfloat16 value exactly
        value = value.float()
    digest.update(value.numpy().tobytes())  # C order whatever the strides (channels_last copies too)


def evaluation_key(prepared: nn.Module, evaluator: Evaluator, step: int, final: bool) -> str | None:
    """The digest naming an evaluation of ``prepared`` by ``evaluator`` at ``step``, or None when it cannot be
    named safely (a hook or an instance-level ``forward`` anywhere in the copy: its code is not in the digest).

    Args:
        prepared: the model as evaluated (``attacks.prepare_for_attack``'s copy).
        evaluator: the run's ``training.evaluator.Evaluator`` (settings, subsets, seed).
        step, final: the evaluation point (the RNG seed and the final-only records depend on them).
    """
    if any(m._forward_hooks or m._forward_pre_hooks or "forward" in vars(m) for m in prepared.modules()):
        return None
    digest = hashlib.sha256()
    settings = [FORMAT, _code_digest(), torch.__version__, torch.get_num_threads(),
                os.environ.get("ROBUSTFT_THREADS", "auto"), str(evaluator.device), int(evaluator.seed), int(step),
                bool(final), repr(evaluator.cfg), repr(prepared)]
    digest.update(json.dumps(settings, default=str).encode())
    for name, tensor in [*prepared.named_parameters(), *prepared.named_buffers()]:
        _tensor_bytes(digest, name, tensor)
    for subset in [*evaluator.subsets, *evaluator.ood]:
        digest.update(subset.name.encode())
        for part, tensor in (("images", subset.images), ("labels", subset.labels), ("ids", subset.ids)):
            if tensor is not None:
                _tensor_bytes(digest, part, tensor)
    return digest.hexdigest()[:32]


class EvaluationReuse:
    """Evaluates at step 0 through the study's shared entries (``evaluate``); any other step evaluates as usual.

    ``reused`` is True once a step-0 evaluation was read from an entry instead of computed.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.reused = False

    def evaluate(self, evaluator: Evaluator, model: nn.Module, step: int, epoch: float, final: bool
                 ) -> tuple[list[dict], list[OutcomeBlock]]:
        """``evaluator.evaluate(model, step, epoch, final)``, from a shared entry when one has the same key."""
        if self.directory is None or step != 0:
            return evaluator.evaluate(model, step, epoch, final=final)
        model.eval()  # as the evaluator leaves it; the copy is the one the evaluator evaluates
        prepared = evaluator.prepared(model)
        key = evaluation_key(prepared, evaluator, step, final)
        if key is not None:
            found = _read(self.directory / f"{key}.npz")
            if found is not None:
                self.reused = True
                return found
        records, blocks = evaluator.evaluate(prepared, step, epoch, final=final)
        if key is not None:
            _write(self.directory / f"{key}.npz", records, blocks)
        return records, blocks


def _read(path: Path) -> tuple[list[dict], list[OutcomeBlock]] | None:
    try:
        with np.load(path, allow_pickle=False) as entry:
            header = json.loads(str(entry["header"]))
            blocks = [OutcomeBlock(b["step"], b["split"], b["metric"], tuple(b["attacks"]), tuple(b["eps"]),
                                   entry[f"ids{i}"], entry[f"correct{i}"]) for i, b in enumerate(header["blocks"])]
            return header["records"], blocks
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None  # missing or damaged: computed again


def _write(path: Path, records: list[dict], blocks: list[OutcomeBlock]) -> None:
    header = {"records": records, "blocks": [{"step": b.step, "split": b.split, "metric": b.metric,
                                              "attacks": list(b.attacks), "eps": list(b.eps)} for b in blocks]}
    arrays = {"header": np.array(json.dumps(header))}
    for i, block in enumerate(blocks):
        arrays[f"ids{i}"], arrays[f"correct{i}"] = np.asarray(block.image_ids), np.asarray(block.correct)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(buffer.getvalue())
        os.replace(temporary, path)
    except OSError:
        pass  # sharing only saves time; the run has its own copy of the records
