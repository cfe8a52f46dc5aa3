"""Where each of the papers' datasets comes from and where its files go: the text of "data is missing" errors.

One ``Provenance`` per dataset the two papers use (CIFAR-10/100, Caltech-256, CUB-200-2011, Stanford Dogs,
Stanford Cars, FGVC-Aircraft, Imagenette, DomainNet): the official page, the archives to fetch, the folder they
must end up in under the data root and the files a loader checks for. ``missing_message`` turns one into the
one-paragraph error a user sees, naming the exact directory; nothing here reads the disk.

The data root is ``root=`` (``data.root`` in a config), else ``$ROBUSTFT_DATA``, else ~/.cache/robustft/downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT_HINT = "data.root in a config, root= in Python; default $ROBUSTFT_DATA, else ~/.cache/robustft/downloads"


@dataclass(frozen=True)
class Provenance:
    """Where a dataset comes from and how its download is laid out.

    Attributes:
        title: the dataset's usual name.
        url: the official page (or, when the original host is gone, the page that says where copies are).
        fetch: what to download and how to unpack it; ``{root}`` stands for the data root, ``{dir}`` for
            the dataset's directory (``folder`` under the root).
        folder: the directory under the data root holding the unpacked files ("" = the root itself).
        expects: the files and folders inside ``folder`` the loader reads, as a short listing.
        downloads: whether ``download=True`` can fetch it (through torchvision).
        summary: classes, splits and which paper uses it, for ``robustft list datasets``.
    """

    title: str
    url: str
    fetch: str
    folder: str
    expects: str
    downloads: bool = False
    summary: str = ""

    def description(self, via: str = "") -> str:
        """``robustft list datasets``' line: summary, reader, folder."""
        return f"{self.title}: {self.summary}{f' ({via})' if via else ''}; files in <root>/{self.folder}."


PROVENANCE: dict[str, Provenance] = {
    "cifar10": Provenance(
        "CIFAR-10", "https://www.cs.toronto.edu/~kriz/cifar.html",
        "download cifar-10-python.tar.gz and extract it into {root}", "cifar-10-batches-py",
        "data_batch_1 .. data_batch_5, test_batch, batches.meta", downloads=True,
        summary="10 classes, 32 px, 50,000 train / 10,000 test, paper A"),
    "cifar100": Provenance(
        "CIFAR-100", "https://www.cs.toronto.edu/~kriz/cifar.html",
        "download cifar-100-python.tar.gz and extract it into {root}", "cifar-100-python", "train, test, meta",
        downloads=True, summary="100 classes, 32 px, 50,000 train / 10,000 test, paper A"),
    "caltech256": Provenance(
        "Caltech-256", "https://data.caltech.edu/records/nyy15-4j048",
        "download 256_ObjectCategories.tar and extract it into {dir}", "caltech256",
        "256_ObjectCategories/001.ak47/001_0001.jpg ... 257.clutter/ (257 class folders)", downloads=True,
        summary="257 classes (256 + clutter), 30,607 images, fixed 20% test split, papers A and B"),
    "cub200": Provenance(
        "CUB-200-2011", "https://www.vision.caltech.edu/datasets/cub_200_2011/ (archive: "
        "https://data.caltech.edu/records/65de6-vp158)",
        "download CUB_200_2011.tgz and extract it into {root} (tar xzf CUB_200_2011.tgz -C {root})",
        "CUB_200_2011", "images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, "
        "images/001.Black_footed_Albatross/<file>.jpg",
        summary="200 bird species, 5,994 train / 5,794 test, papers A and B"),
    "stanford-dogs": Provenance(
        "Stanford Dogs", "http://vision.stanford.edu/aditya86/ImageNetDogs/",
        "download images.tar and lists.tar and extract both into {dir} "
        "(mkdir -p {dir}; tar xf images.tar -C {dir}; tar xf lists.tar -C {dir})", "stanford_dogs",
        "Images/n02085620-Chihuahua/<file>.jpg, train_list.mat, test_list.mat (also accepted under lists/)",
        summary="120 breeds, 12,000 train / 8,580 test, papers A and B"),
    "stanford-cars": Provenance(
        "Stanford Cars", "https://github.com/pytorch/vision/issues/7545 (the original "
        "https://ai.stanford.edu/~jkrause/cars/car_dataset.html is offline; that thread lists working copies)",
        "put the images and the devkit into {dir}", "stanford_cars",
        "cars_train/, cars_test/, devkit/cars_meta.mat, devkit/cars_train_annos.mat, "
        "cars_test_annos_withlabels.mat", summary="196 car models, 8,144 train / 8,041 test, paper B"),
    "fgvc-aircraft": Provenance(
        "FGVC-Aircraft", "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/",
        "download fgvc-aircraft-2013b.tar.gz and extract it into {root}", "fgvc-aircraft-2013b",
        "data/images/<id>.jpg, data/variants.txt, data/images_variant_trainval.txt, "
        "data/images_variant_test.txt", downloads=True,
        summary="100 aircraft variants, 6,667 trainval / 3,333 test, paper B"),
    "imagenette": Provenance(
        "Imagenette", "https://github.com/fastai/imagenette",
        "download imagenette2.tgz (or imagenette2-320.tgz with size=320px, imagenette2-160.tgz with size=160px) "
        "and extract it into {root}", "imagenette2", "train/<wnid>/<file>.JPEG, val/<wnid>/<file>.JPEG",
        downloads=True, summary="10 ImageNet classes, train / val as test, paper B"),
    "domainnet": Provenance(
        "DomainNet", "http://ai.bu.edu/M3SDA/",
        "download the six domain zips (clipart, infograph, painting, quickdraw, real, sketch) and their "
        "<domain>_train.txt / <domain>_test.txt split lists, and unzip everything into {dir} "
        "(or set ROBUSTFT_DOMAINNET to the folder holding them)", "domainnet",
        "clipart/<class>/<file>.jpg ... sketch/<class>/<file>.jpg and clipart_train.txt, clipart_test.txt ... "
        "sketch_test.txt",
        summary="a domain (clipart, infograph, painting, quickdraw, real, sketch), 345 classes, official split "
        "lists, paper A: OOD = the other domains"),
}

# torchvision class name -> PROVENANCE key, for the tv:<name> source's messages
TORCHVISION_NAMES = {"CIFAR10": "cifar10", "CIFAR100": "cifar100", "Caltech256": "caltech256",
                     "StanfordCars": "stanford-cars", "FGVCAircraft": "fgvc-aircraft", "Imagenette": "imagenette"}


def missing_message(key: str, root: Path | str, detail: str = "", download: bool = False,
                    directory: Path | str | None = None, subject: str | None = None) -> str:
    """The one-paragraph "not found" error for ``PROVENANCE[key]`` under the data root ``root``.

    Args:
        key: a ``PROVENANCE`` key.
        root: the data root that was searched.
        detail: what exactly was missing (e.g. "no images.txt"), put after the expected directory.
        download: whether download=True was asked for (then say when it cannot help).
        directory: where the files were looked for, when not ``root / folder`` (e.g. $ROBUSTFT_DOMAINNET).
        subject: what is missing, when not the whole dataset (e.g. "DomainNet domain 'sketch'").
    """
    entry = PROVENANCE[key]
    root = str(root)
    if directory is None:
        directory = Path(root) / entry.folder if entry.folder else Path(root)
    what = f" ({detail})" if detail else ""
    fetch = entry.fetch.format(root=root, dir=directory)
    if entry.downloads:
        tail = (", or pass download=True (data.download=true) to let torchvision fetch it (needs the internet)"
                if not download else "; download=True failed, so fetch it by hand")
    else:
        tail = "; robustft cannot download it for you (download=True does not apply)"
    return (f"{subject or entry.title} is not in {directory}{what}. Expected there: {entry.expects}. Get it from "
            f"{entry.url}: {fetch}{tail}. Or point the data root at the folder that holds "
            f"{entry.folder or 'its files'}/ ({ROOT_HINT}).")
