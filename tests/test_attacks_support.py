"""Helpers for the attack tests (no tests here): a separable synthetic task and a tiny CNN trained on it.

The task: 4 classes, 3 x 16 x 16 images of uniform noise in [0, 0.6] with one bright quadrant (+0.3) naming the
class. A tiny CNN learns it to ~100% in about two seconds and has real, partial robustness (its accuracy falls
from ~100% to ~20% between eps 4/255 and 16/255), which makes attack comparisons meaningful.
"""

from __future__ import annotations

import functools

import torch

from robustft.models.tiny import tiny_cnn


def quadrant_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (float n x 3 x 16 x 16 in [0, 1]) and labels (int64 n, 0..3)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.rand(n, 3, 16, 16, generator=g) * 0.6
    for k in range(4):
        row, col = divmod(k, 2)
        images[labels == k, :, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 0.3
    return images.clamp(0, 1), labels


@functools.cache
def trained_tiny_cnn():
    """A tiny CNN (BatchNorm, 4 classes) trained for 60 Adam steps on the quadrant task, in eval mode."""
    images, labels = quadrant_task(1024, seed=0)
    model = tiny_cnn(num_classes=4, width=8, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(60):
        idx = torch.randint(0, len(labels), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(images[idx]), labels[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for param in model.parameters():
        param.grad = None
    return model.eval()
