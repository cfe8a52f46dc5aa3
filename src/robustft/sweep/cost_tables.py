"""The facts the cost model of ``reproduce --plan`` starts from: images per dataset and a reference throughput.

Reference throughput (the shipped calibration): images per second of a training step (forward + backward +
optimiser, batch 128-192) and of inference (forward, batch 1024), at 224 px, published by timm in its benchmark
CSVs: huggingface/pytorch-image-models, ``results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv`` and
``results/benchmark-infer-amp-nchw-pt112-cu113-rtx3090.csv`` (PyTorch 1.12, CUDA 11.3, mixed precision, NCHW,
one RTX 3090). timm publishes training figures for that GPU only (no A100 table), so this is the reference GPU;
an A100 is faster (tensor-core fp16), so on A100-class nodes the estimate is an upper bound. The ``train`` column
prices every forward+backward image pass (training updates and attack steps alike: an attack step back-propagates
to the input through the whole network, without the optimiser step; pricing it as a training step is again an
upper bound), the ``infer`` column every forward-only pass (clean and OOD evaluation).

Architectures not in the 2022 CSVs are priced as the same-shape architecture that is: ``vit_base_patch16_clip_224``
as ``vit_base_patch16_224`` (the CLIP variant adds one LayerNorm before the blocks); a pretrained tag
(``.augreg_in1k``, ``.clip_laion2b``) changes weights, not compute. Paper A's Hugging Face ViT-B/16 in21k is the
ViT-B/16 architecture (12 layers, width 768, patch 16 at 224 px): timm's ``vit_base_patch16_224``.

Dataset sizes are the official splits (train pool = what robustft reads as train, before its 10% validation
hold-out): CIFAR-10/100 50,000 / 10,000; Caltech-256 30,607 images without an official split, robustft's fixed
stratified 20% test (``tv:`` single-pool datasets) gives 24,486 / 6,121; CUB-200-2011 5,994 / 5,794; Stanford Dogs
12,000 / 8,580; Stanford Cars 8,144 / 8,041; FGVC-Aircraft trainval 6,667 / test 3,333; Imagenette (full size,
torchvision) 9,469 / 3,925; DomainNet's official per-domain lists (Peng et al. 2019; 409,832 / 176,743 in all).
"""

from __future__ import annotations

from robustft.errors import ConfigError

REFERENCE_GPU = "RTX 3090, mixed precision (timm's published benchmark, PyTorch 1.12)"
REFERENCE_SOURCE = ("huggingface/pytorch-image-models results/benchmark-{train,infer}-amp-nchw-pt112-cu113-rtx3090.csv")

# timm architecture -> (training images/s, inference images/s) at 224 px on the reference GPU.
REFERENCE_THROUGHPUT: dict[str, tuple[float, float]] = {
    "vit_base_patch16_224": (390.86, 1132.21),
    "swin_base_patch4_window7_224": (279.66, 832.60),
    "convnext_base": (336.98, 1006.73),
    "resnet50": (826.06, 2733.34),
}
# Same compute as an architecture of the table (see the module docstring).
SAME_COMPUTE = {"vit_base_patch16_clip_224": "vit_base_patch16_224"}

# Hugging Face repos -> the timm architecture with their compute (probe and reference table).
HF_ARCHITECTURES = {"google/vit-base-patch16-224-in21k": "vit_base_patch16_224"}

# data.name -> (train pool, test) images.
DATASET_SIZES: dict[str, tuple[int, int]] = {
    "tv:CIFAR10": (50_000, 10_000),
    "tv:CIFAR100": (50_000, 10_000),
    "tv:Caltech256": (24_486, 6_121),
    "cub200": (5_994, 5_794),
    "stanford-dogs": (12_000, 8_580),
    "tv:StanfordCars": (8_144, 8_041),
    "tv:FGVCAircraft": (6_667, 3_333),
    "tv:Imagenette": (9_469, 3_925),
    "domainnet:clipart": (33_525, 14_604),
    "domainnet:infograph": (36_023, 15_582),
    "domainnet:painting": (50_416, 21_850),
    "domainnet:quickdraw": (120_750, 51_750),
    "domainnet:real": (120_906, 52_041),
    "domainnet:sketch": (48_212, 20_916),
    # the embedded sets (``robustft list datasets``), for ``reproduce --scale embedded --plan``
    "fashion-mnist": (60_000, 10_000),
    "mnist": (8_000, 2_000),
    "animal-mnist": (8_000, 2_000),
    "digits": (1_438, 359),
    "elpv": (2_099, 525),
    "emoji": (782, 195),
}


def architecture(model_name: str) -> str:
    """The timm architecture whose compute a ``model.name`` has: ``timm:resnet50.a1_in1k`` -> ``resnet50``,
    ``hf:google/vit-base-patch16-224-in21k`` -> ``vit_base_patch16_224``.

    Raises:
        ConfigError: a model the cost model cannot place (not timm, not a known Hugging Face repo).
    """
    prefix, _, spec = model_name.partition(":")
    if prefix == "timm" and spec:
        return spec.split(".", 1)[0]
    if prefix == "hf" and spec.split("@")[0] in HF_ARCHITECTURES:
        return HF_ARCHITECTURES[spec.split("@")[0]]
    raise ConfigError(f"the cost model cannot price model {model_name!r}: it knows timm:<name> models and the "
                      f"Hugging Face repos {', '.join(HF_ARCHITECTURES)}. Add its timm equivalent to "
                      "robustft.sweep.cost_tables.HF_ARCHITECTURES.")


def reference_throughput(arch: str) -> tuple[float, float]:
    """(training, inference) images/s of ``arch`` on the reference GPU.

    Raises:
        ConfigError: no published figure for ``arch``; ``--calibrate`` measures it instead.
    """
    known = REFERENCE_THROUGHPUT.get(SAME_COMPUTE.get(arch, arch))
    if known is None:
        raise ConfigError(f"no reference throughput for {arch!r} (the shipped table has "
                          f"{', '.join(sorted(REFERENCE_THROUGHPUT))}); add --calibrate to measure it on this "
                          "machine instead.")
    return known


def dataset_size(name: str, limit_train: int | None = None, limit_test: int | None = None) -> tuple[int, int]:
    """(train pool, test) images of ``data.name`` (a corruption suffix ``@...`` does not change the size).

    Raises:
        ConfigError: a dataset of unknown size without both limits set.
    """
    base = name.split("@", 1)[0]
    if base in DATASET_SIZES:
        return DATASET_SIZES[base]
    if limit_train and limit_test:
        return int(limit_train), int(limit_test)
    raise ConfigError(f"the cost model has no size for dataset {base!r}; set data.limit_train and "
                      f"data.limit_test, or add it to robustft.sweep.cost_tables.DATASET_SIZES "
                      f"(known: {', '.join(DATASET_SIZES)}).")
