"""Task complexity, measured: a frozen pretrained backbone's linear-probe accuracy on a task, and its class count.

Paper A orders its tasks by "similarity to upstream": the less a task looks like the backbone's pretraining data,
the less its frozen features already separate the classes. robustft measures that instead of asserting it: the
features the backbone hands its classification head (MobileNetV2's pooled 1280-d vector, the ViT's CLS token) are
extracted once with every weight frozen, a closed-form ridge classifier is fitted on a seeded, stratified train
subset and scored on a seeded, stratified test subset. Lower probe accuracy = farther from upstream = a more
complex task. Unbalanced tasks (elpv) make plain accuracy flattering, so the majority-class share and the balanced
accuracy (mean per-class recall) are recorded with it.

The measured values ship in ``robustft/data/complexity.json`` (``robustft.data.complexity`` reads them for
``robustft list datasets`` and the report); ``scripts/measure_complexity.py`` re-measures and rewrites that table.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from robustft.data import load
from robustft.data.splits import holdout_split
from robustft.errors import ConfigError
from robustft.models import build

# ridge penalties tried, as multiples of the mean feature variance x n (features are standardised, so ~n)
RIDGE_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
RIDGE_VALIDATION = 0.2  # share of the train subset that picks the penalty before the final fit on all of it
# (model, image size) pairs measured by default: MobileNetV2 at the embedded studies' 32 px, the ViT at 56 px
DEFAULT_PROBES = (("mobilenet_v2", 32), ("vit_small_dinov2", 56))


@dataclass(frozen=True)
class ProbeResult:
    """One task x backbone measurement. Accuracies are fractions in [0, 1] on ``n_test`` test images."""

    dataset: str
    model: str
    image_size: int
    classes: int
    accuracy: float
    balanced_accuracy: float
    majority: float  # share of the most frequent class in the scored test subset: accuracy's chance floor
    n_train: int
    n_test: int
    seed: int
    ridge_alpha: float

    @property
    def key(self) -> str:
        """``model@size``, the column key in the shipped table (``mobilenet_v2@32``)."""
        return f"{self.model}@{self.image_size}"


@torch.no_grad()
def frozen_features(model: nn.Module, head: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The input of ``head`` for each image, with ``model`` in eval mode: float64 N x D.

    Args:
        model: a ``RobustModel`` (takes float N x C x H x W in [0, 1]).
        head: its classification head; whatever reaches it is the backbone's feature vector.
        images: float N x C x H x W in [0, 1].
    """
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach().flatten(1)))
    try:
        model.eval()
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    finally:
        handle.remove()
    return torch.cat(captured).to(torch.float64)


def _fit_ridge(features: torch.Tensor, labels: torch.Tensor, classes: int, alpha: float) -> torch.Tensor:
    """Weights (D + 1) x K of a ridge regression onto +-1 one-hot targets (bias = the last row, not penalised)."""
    n, dims = features.shape
    design = torch.cat([features, torch.ones(n, 1, dtype=features.dtype)], dim=1)
    targets = -torch.ones(n, classes, dtype=features.dtype)
    targets[torch.arange(n), labels] = 1.0
    penalty = torch.full((dims + 1,), alpha * n, dtype=features.dtype)
    penalty[-1] = 0.0
    return torch.linalg.solve(design.T @ design + torch.diag(penalty), design.T @ targets)


def _predict(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    design = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)
    return (design @ weights).argmax(dim=1)


def balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean recall over the classes present in ``labels`` (int64 N each), in [0, 1]."""
    recalls = [(predicted[labels == c] == c).double().mean().item() for c in torch.unique(labels).tolist()]
    return sum(recalls) / len(recalls)


def ridge_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                classes: int, seed: int) -> tuple[torch.Tensor, float]:
    """Test predictions (int64 N_test) of a ridge classifier on standardised features, and the penalty it chose.

    The penalty is the ``RIDGE_ALPHAS`` entry with the best accuracy on a seeded stratified ``RIDGE_VALIDATION``
    share of the train features (ties: the larger penalty); the classifier is then refitted on all of them.
    Standardisation uses the train features' mean and std only.
    """
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-8)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    kept, held = holdout_split(train_y, RIDGE_VALIDATION, seed)
    best_alpha, best_score = RIDGE_ALPHAS[-1], -1.0
    for alpha in reversed(RIDGE_ALPHAS):  # larger first, so a tie keeps the stronger penalty
        weights = _fit_ridge(train_x[kept], train_y[kept], classes, alpha)
        score = (_predict(weights, train_x[held]) == train_y[held]).double().mean().item()
        if score > best_score:
            best_alpha, best_score = alpha, score
    return _predict(_fit_ridge(train_x, train_y, classes, best_alpha), test_x), best_alpha


def measure(dataset: str, model: str = "mobilenet_v2", image_size: int = 32, n_train: int = 2000,
            n_test: int = 1000, seed: int = 0, **load_options) -> ProbeResult:
    """The frozen pretrained ``model``'s linear-probe accuracy on ``dataset`` at ``image_size`` px.

    Args:
        dataset: a ``DATASETS`` name (``robustft list datasets``).
        model: a ``MODELS`` name built with ``pretrained=True``.
        n_train / n_test: seeded stratified subsets of the train pool and the test split (all when smaller).
        seed: seeds the subsets and the penalty's validation split.
        **load_options: passed to ``robustft.data.load`` (``root=``, ...).

    Raises:
        ConfigError: a non-positive subset size; MissingAssetError when the data or weights are not installed.
    """
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"{key}={value!r} must be an integer >= 2 (e.g. 2000 train / 1000 test images).")
    train = load(dataset, "train", image_size=image_size, limit=n_train, seed=seed, val_fraction=0.0,
                 **load_options)
    test = load(dataset, "test", image_size=image_size, limit=n_test, seed=seed, **load_options)
    classes = train.info.num_classes
    network = build(model, num_classes=classes, pretrained=True, image_size=image_size, seed=seed)
    network.requires_grad_(False)
    head = network.head_module()
    train_x = frozen_features(network, head, train.batch(torch.arange(len(train)))[0])
    test_x = frozen_features(network, head, test.batch(torch.arange(len(test)))[0])
    predicted, alpha = ridge_probe(train_x, train.labels, test_x, test.labels, classes, seed)
    majority = torch.bincount(test.labels, minlength=classes).max().item() / len(test)
    return ProbeResult(dataset=dataset, model=model, image_size=image_size, classes=classes,
                       accuracy=(predicted == test.labels).double().mean().item(),
                       balanced_accuracy=balanced_accuracy(predicted, test.labels), majority=majority,
                       n_train=len(train), n_test=len(test), seed=seed, ridge_alpha=alpha)


def complexity_table(results: Iterable[ProbeResult], date: str | None = None) -> dict:
    """The shipped table's content (``robustft/data/complexity.json``) from measurements.

    Returns:
        ``{"measured": ISO date, "method": ..., "datasets": {name: {"classes": K, "probes": {"model@size":
        {accuracy, balanced_accuracy, majority, n_train, n_test, seed, ridge_alpha, measured}}}}}``.
    """
    date = date or datetime.date.today().isoformat()
    datasets: dict[str, dict] = {}
    for result in results:
        entry = datasets.setdefault(result.dataset, {"classes": result.classes, "probes": {}})
        fields = asdict(result)
        for key in ("dataset", "model", "image_size", "classes"):
            fields.pop(key)
        # each probe keeps its own date: a partial re-measurement merges into a table measured earlier
        entry["probes"][result.key] = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()},
                                       "measured": date}
    return {"measured": date,
            "method": ("frozen pretrained backbone, the head's input as features, standardised; closed-form ridge "
                       "classifier on +-1 one-hot targets, penalty picked on a 20% validation share of the train "
                       "subset; seeded stratified subsets of the train pool (no validation hold-out) and the test "
                       "split; scripts/measure_complexity.py"),
            "datasets": datasets}
