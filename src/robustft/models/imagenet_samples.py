"""foolbox's 20 labelled ImageNet sample images, to check that a backbone really is ImageNet-trained offline.

The files ship inside the foolbox package (``foolbox/data/imagenet_<index>_<label>.jpg``, 512 x 512 RGB);
the label is the ImageNet-1k class index in the file name. Loaded with PIL and resized the way foolbox's own
``samples()`` does (a plain ``resize`` to the square size), without needing a foolbox model wrapper.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch

from robustft.errors import MissingAssetError

_NAME = re.compile(r"^imagenet_(\d+)_(\d+)\.(jpg|jpeg|png)$")


def foolbox_data_dir() -> Path:
    """The ``data`` folder of the installed foolbox package.

    Raises:
        MissingAssetError: foolbox is not installed (it is in robustft's dev extra).
    """
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError("foolbox is not installed, so its ImageNet sample images are unavailable: "
                                "pip install 'robustft[dev]' (or pip install foolbox).")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def imagenet_samples(size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """foolbox's ImageNet samples as a batch.

    Args:
        size: output side; each 512 x 512 image is resized to ``size`` x ``size`` (bilinear, like foolbox).

    Returns:
        images: float32 20 x 3 x size x size in [0, 1] (ordered by sample index).
        labels: int64 (20,) ImageNet-1k class indices, read from the file names.
    """
    from PIL import Image

    folder = foolbox_data_dir()
    found = sorted((int(m[1]), int(m[2]), path) for path in folder.glob("imagenet_*")
                   if (m := _NAME.match(path.name)))
    if not found:
        raise MissingAssetError(f"no imagenet_<index>_<label>.jpg files in {folder}; reinstall foolbox "
                                "(pip install --force-reinstall foolbox).")
    images, labels = [], []
    for _, label, path in found:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
        images.append(torch.from_numpy(pixels / 255.0).permute(2, 0, 1))
        labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
