"""What an attack hands back besides its points: the logits it saw at them, so a verdict needs no extra pass.

An attack already classifies every point it considers (that is how it knows which one is best), so the robust
evaluation need not classify the returned points again: ``robust_curve`` passes a ``ReturnedLogits`` as the
attack's ``record`` option and reads each sample's verdict from the logits recorded when its returned point was
seen. That saves one forward pass over the attacked samples (13 -> 12 forward passes for PGD-10 with a clean
pass; a plain loop doing the same makes 12).

An attack fills ``logits`` only when they are what an independent re-classification would compute: fp32 passes
in eval mode (the attacks run in ``attack_mode``) on the very point returned, one row per sample. Under a
reduced-precision pass (bf16 autocast) or when some sample's returned point was never classified by the attack,
it leaves ``logits`` None and the evaluation classifies the returned points itself, in fp32.
``robust_curve(..., recheck=True)`` always classifies them again and warns where the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ReturnedLogits:
    """Filled by an attack that takes a ``record`` option: the fp32 eval-mode logits of the points it returned.

    Attributes:
        logits: float32 N x K, row i the logits of the returned point of sample i (input order), or None when the
            attack cannot vouch for them (then classify the returned points).
    """

    logits: torch.Tensor | None = None


def keep_logits(record: ReturnedLogits | None, logits: torch.Tensor | None, complete: bool) -> None:
    """Stores ``logits`` in ``record`` (if there is one) when ``complete``: every row belongs to the point
    returned and was computed in fp32; otherwise leaves the record empty."""
    if record is not None:
        record.logits = logits if complete and logits is not None else None
