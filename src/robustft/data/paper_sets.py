"""Short names for the papers' datasets that torchvision reads: cifar10, cifar100, caltech256, stanford-cars,
fgvc-aircraft, imagenette.

Each is the ``tv:<Class>`` source under a name a config can use (``data.name: caltech256``), with the split
conventions of ``robustft.data.torchvision_source`` and its "not found" message naming the official page and the
exact folder under the data root (``robustft.data.where``). The readers torchvision lacks are their own modules:
``cub200`` (robustft.data.cub), ``stanford-dogs`` (robustft.data.stanford_dogs), ``domainnet:<domain>``
(robustft.data.domainnet).

Splits (robustft's validation split is always held out of the train pool):

- cifar10 / cifar100: the official 50,000 train / 10,000 test.
- caltech256: 257 classes (256 objects + 257.clutter, as torchvision reads them; paper B counts 257); there is no
  official split, so a fixed stratified 20% is the test split. Greyscale and CMYK JPEGs become RGB.
- stanford-cars: the official 8,144 train / 8,041 test; labels from the devkit's 1-based class ids.
- fgvc-aircraft: the official trainval (6,667) / test (3,333), 100 variants.
- imagenette: train / val as test; ``size`` chooses the archive (full, 320px, 160px).
"""

from __future__ import annotations

from pathlib import Path

from robustft.data.embedded import _download_root
from robustft.data.sources import DATASETS, Source
from robustft.data.torchvision_source import torchvision_source
from robustft.data.where import PROVENANCE, TORCHVISION_NAMES, missing_message
from robustft.errors import ConfigError, MissingAssetError

IMAGENETTE_SIZES = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}


def check_folder(key: str, root: str | None, download: bool, folder: str | None = None) -> None:
    """Refuses early when the dataset's folder is absent and nothing will download it.

    Before torchvision is asked: its Caltech256 creates ``<root>/caltech256`` even when it then finds nothing.
    """
    base = Path(root).expanduser() if root else _download_root()
    directory = base / (folder or PROVENANCE[key].folder)
    if not download and not directory.is_dir():
        raise MissingAssetError(missing_message(key, base, "no such folder", download, directory))


def _register(spec: str, key: str) -> None:
    entry = PROVENANCE[key]

    def factory(name: str, root: str | None = None, download: bool = False) -> Source:
        check_folder(key, root, download)
        return torchvision_source(spec, root, download, name=key)

    factory.__name__ = key.replace("-", "_")
    DATASETS.add(key, factory, entry.description(f"torchvision {spec}"))


for _spec, _key in TORCHVISION_NAMES.items():
    if _key != "imagenette":
        _register(_spec, _key)


@DATASETS.register("imagenette", PROVENANCE["imagenette"].description("torchvision Imagenette, option size: full, "
                                                                       "320px or 160px"))
def imagenette(name: str, root: str | None = None, download: bool = False, size: str = "full") -> Source:
    """Imagenette (``size``: full, 320px or 160px, the archive that was downloaded)."""
    if size not in IMAGENETTE_SIZES:
        raise ConfigError(f"imagenette size={size!r}: use one of {', '.join(IMAGENETTE_SIZES)} (the archive "
                          "imagenette2.tgz, imagenette2-320.tgz or imagenette2-160.tgz).")
    check_folder("imagenette", root, download, IMAGENETTE_SIZES[size])
    return torchvision_source("Imagenette", root, download, name="imagenette", arguments={"size": size})
