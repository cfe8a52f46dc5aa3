"""Tiny copies of the papers' datasets, laid out file for file like the real downloads (for offline loader tests).

Every image is a few pixels of one solid colour that encodes its label (``colour(label)``), so a test can check
after decoding that each image kept its label: labels, label offsets (1-based files -> 0-based labels) and the
RGB conversion of greyscale ('L') and CMYK JPEGs are all visible in the pixels. What each writer copies from the
real download is said in its docstring; class and file counts are cut to a handful.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (12, 10)  # width x height of every fixture image: not square, so the loaders' centre crop runs


def colour(label: int) -> tuple[int, int, int]:
    """The RGB colour of images of ``label`` (0 <= label < 6); its grey level (luma) also differs per label."""
    return 30 + 40 * label, 60 + 25 * label, 200 - 30 * label


def label_of(rgb: np.ndarray) -> int:
    """The label whose colour, or grey version of it, is nearest to ``rgb`` (a decoded image's mean colour)."""
    distances = [min(np.abs(np.asarray(as_mode(colour(k), mode)) - rgb).sum() for mode in ("RGB", "L"))
                 for k in range(6)]
    return int(np.argmin(distances))


def as_mode(rgb: tuple[int, int, int], mode: str) -> tuple[int, int, int]:
    """``rgb`` after a round trip through PIL ``mode`` (what a greyscale or CMYK file decodes to in RGB)."""
    return Image.new("RGB", (1, 1), rgb).convert(mode).convert("RGB").getpixel((0, 0))


def write_image(path: Path, label: int, mode: str = "RGB") -> None:
    """A SIZE image of ``colour(label)`` stored in ``mode`` (RGB, L or CMYK); the suffix picks JPEG or PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", SIZE, colour(label))
    (image if mode == "RGB" else image.convert(mode)).save(path, quality=95)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ torchvision's datasets

def write_cifar(root: Path, hundred: bool = False, per_batch: int = 2, test: int = 5) -> dict[str, str]:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (CIFAR-100: cifar-100-python/{train, test,
    meta} with fine_labels): pickled dicts of uint8 N x 3072 rows (R, G, B planes of 32 x 32) and label lists.

    Returns {file name: md5}: torchvision checks every file against the real archive's md5, which a test patches.
    """
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    counter = 0
    for name in names:
        count = test if "test" in name else per_batch * (5 if hundred else 1)
        labels = [(counter + i) % 6 for i in range(count)]
        counter += count
        planes = np.stack([np.repeat(np.asarray(colour(k), np.uint8), 32 * 32) for k in labels]) if labels \
            else np.zeros((0, 3072), np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": planes, key: labels, "batch_label": name}, f)
    meta = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta[0], "wb") as f:
        pickle.dump({meta[1]: [f"class{k}" for k in range(100 if hundred else 10)]}, f)
    return {p.name: md5(p) for p in folder.iterdir()}


CALTECH_CLASSES = ("001.ak47", "002.american-flag", "003.backpack")


def write_caltech256(root: Path, per_class: int = 5) -> None:
    """caltech256/256_ObjectCategories/<NNN.name>/<NNN>_<iiii>.jpg, numbered from 0001 in each folder.

    As in the real archive: one greyscale JPEG (001_0002.jpg), one CMYK JPEG (002_0003.jpg), a stray non-image
    file (198.spider/RENAME2 in the real one) and a sub-folder of extra images (056.dog/greg) that are not part
    of the class. torchvision derives each file name from the folder's position in the sorted list, so the
    fixture's folders are numbered 001..003 (the real ones run 001..257, 257 being clutter).
    """
    base = root / "caltech256" / "256_ObjectCategories"
    modes = {(0, 2): "L", (1, 3): "CMYK"}
    for label, folder in enumerate(CALTECH_CLASSES):
        for i in range(1, per_class + 1):
            write_image(base / folder / f"{label + 1:03d}_{i:04d}.jpg", label, modes.get((label, i), "RGB"))
    (base / CALTECH_CLASSES[1] / "RENAME2").write_text("left over in the original archive\n")
    write_image(base / CALTECH_CLASSES[2] / "greg" / "extra.jpg", 5)


CAR_NAMES = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012")


def _write_car_annotations(path: Path, labels: list[int]) -> None:
    from scipy.io import savemat

    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"),
              ("fname", "O")]
    records = np.zeros((1, len(labels)), dtype=fields)
    for i, label in enumerate(labels):
        records[0, i] = (1, 1, SIZE[0], SIZE[1], label + 1, f"{i + 1:05d}.jpg")  # classes 1-based
    savemat(str(path), {"annotations": records})


def write_stanford_cars(root: Path, train: tuple[int, ...] = (0, 1, 2, 0, 1, 2),
                        test: tuple[int, ...] = (2, 1, 0)) -> None:
    """stanford_cars/{cars_train/00001.jpg.., cars_test/00001.jpg.., devkit/cars_meta.mat (class_names),
    devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat}: annotations structs (bbox, 1-based class, fname)."""
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.empty((1, len(CAR_NAMES)), dtype=object)
    names[0, :] = CAR_NAMES
    savemat(str(base / "devkit" / "cars_meta.mat"), {"class_names": names})
    _write_car_annotations(base / "devkit" / "cars_train_annos.mat", list(train))
    _write_car_annotations(base / "cars_test_annos_withlabels.mat", list(test))
    for folder, labels in (("cars_train", train), ("cars_test", test)):
        for i, label in enumerate(labels):
            write_image(base / folder / f"{i + 1:05d}.jpg", label)


# variants.txt order is the label order; not alphabetical, with the real file's spaces and slashes in names
AIRCRAFT_VARIANTS = ("Cessna 172", "707-320", "F/A-18")


def write_fgvc_aircraft(root: Path) -> dict[str, list[int]]:
    """fgvc-aircraft-2013b/data/{images/<7-digit id>.jpg, variants.txt, images_variant_<split>.txt ("<id>
    <variant>") for train, val, trainval, test}. Returns each split's labels."""
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "variants.txt").parent.mkdir(parents=True)
    (data / "variants.txt").write_text("".join(f"{v}\n" for v in AIRCRAFT_VARIANTS))
    splits = {"train": [0, 1, 2], "val": [2, 1, 0], "test": [1, 2, 0, 0]}
    splits["trainval"] = splits["train"] + splits["val"]
    image_id = 1025794
    ids: dict[str, list[int]] = {}
    for kind in ("train", "val", "test"):
        ids[kind] = list(range(image_id, image_id + len(splits[kind])))
        image_id += len(splits[kind])
        for i, label in zip(ids[kind], splits[kind], strict=True):
            write_image(data / "images" / f"{i:07d}.jpg", label)
    ids["trainval"] = ids["train"] + ids["val"]
    for kind, labels in splits.items():
        (data / f"images_variant_{kind}.txt").write_text(
            "".join(f"{i:07d} {AIRCRAFT_VARIANTS[k]}\n" for i, k in zip(ids[kind], labels, strict=True)))
    return splits


IMAGENETTE_WNIDS = ("n01440764", "n02102040", "n02979186")  # tench, English springer, cassette player


def write_imagenette(root: Path, folder: str = "imagenette2", per_class: dict[str, int] | None = None) -> None:
    """<folder>/{train,val}/<wnid>/<wnid>_<n>.JPEG (folder: imagenette2, imagenette2-320 or imagenette2-160)."""
    per_class = per_class or {"train": 3, "val": 2}
    for split, count in per_class.items():
        for label, wnid in enumerate(IMAGENETTE_WNIDS):
            for i in range(count):
                write_image(root / folder / split / wnid / f"{wnid}_{100 + i}.JPEG", label)


# ------------------------------------------------------------------ readers of robustft's own

CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross")


def write_cub(root: Path, per_class: int = 4) -> None:
    """CUB_200_2011/{images.txt, image_class_labels.txt (1-based), train_test_split.txt (1 = train), classes.txt,
    images/<NNN.Name>/<Name>_<n>.jpg} beside attributes.txt, as CUB_200_2011.tgz unpacks. Image ids run in class
    order, alternating train/test; the second image of class 002 is greyscale (the real set has a few)."""
    base = root / "CUB_200_2011"
    (root / "attributes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "attributes.txt").write_text("1 has_bill_shape::curved_(up_or_down)\n")
    images, labels, split = [], [], []
    image_id = 1
    for label, folder in enumerate(CUB_CLASSES):
        stem = folder.split(".", 1)[1].replace("footed", "Footed")
        for i in range(per_class):
            relative = f"{folder}/{stem}_{i + 1:04d}_{700 + image_id}.jpg"
            write_image(base / "images" / relative, label, "L" if (label, i) == (1, 1) else "RGB")
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {label + 1}")
            split.append(f"{image_id} {1 - i % 2}")
            image_id += 1
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split),
                        ("classes.txt", [f"{k + 1} {c}" for k, c in enumerate(CUB_CLASSES)])):
        (base / name).write_text("\n".join(lines) + "\n")


DOG_CLASSES = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog")


def _write_dog_list(path: Path, files: list[str], labels: list[int]) -> None:
    from scipy.io import savemat

    cells = np.empty((len(files), 1), dtype=object)
    for i, file in enumerate(files):
        cells[i, 0] = np.array([file])
    annotations = np.empty((len(files), 1), dtype=object)
    for i, file in enumerate(files):
        annotations[i, 0] = np.array([file.removesuffix(".jpg")])
    savemat(str(path), {"file_list": cells, "annotation_list": annotations,
                        "labels": np.asarray(labels, dtype=np.float64).reshape(-1, 1)})


def write_stanford_dogs(root: Path, train: int = 3, test: int = 2, lists_folder: str = "") -> None:
    """stanford_dogs/{Images/<wnid>-<Breed>/<wnid>_<n>.jpg, file_list.mat, train_list.mat, test_list.mat} as
    images.tar and lists.tar unpack; each list holds file_list (N x 1 cells), annotation_list and labels (N x 1
    doubles, 1-based). ``lists_folder`` puts the .mat files in a sub-folder (e.g. "lists")."""
    base = root / "stanford_dogs"
    entries: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, folder in enumerate(DOG_CLASSES):
        wnid = folder.split("-", 1)[0]
        for i in range(train + test):
            relative = f"{folder}/{wnid}_{10074 + i}.jpg"
            write_image(base / "Images" / relative, label)
            files, labels = entries["train" if i < train else "test"]
            files.append(relative)
            labels.append(label + 1)
    lists = base / lists_folder
    lists.mkdir(parents=True, exist_ok=True)
    for kind, (files, labels) in entries.items():
        _write_dog_list(lists / f"{kind}_list.mat", files, labels)
    _write_dog_list(lists / "file_list.mat", entries["train"][0] + entries["test"][0],
                    entries["train"][1] + entries["test"][1])


DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
# in the lists' own order: case and punctuation ignored ("The_Eiffel_Tower" after "cell_phone", "t-shirt" last)
DOMAINNET_CLASSES = ("aircraft_carrier", "cello", "cell_phone", "The_Eiffel_Tower", "t-shirt")


def write_domainnet(root: Path, domains: tuple[str, ...] = DOMAINS, lists: tuple[str, ...] = DOMAINS) -> None:
    """domainnet/<domain>/<class>/<domain>_<class no.>_<n>.jpg for each domain, and for the domains in ``lists``
    <domain>_train.txt / <domain>_test.txt ("<domain>/<class>/<file> <0-based label>"): per class two train
    images and one test image, except that painting_train.txt lacks t-shirt, as the real one does."""
    base = root / "domainnet"
    for domain in domains:
        lines: dict[str, list[str]] = {"train": [], "test": []}
        for label, name in enumerate(DOMAINNET_CLASSES):
            for i in range(3):
                relative = f"{domain}/{name}/{domain}_{label + 1:03d}_{i:06d}.jpg"
                write_image(base / relative, label)
                kind = "train" if i < 2 else "test"
                if not (domain == "painting" and name == "t-shirt" and kind == "train"):
                    lines[kind].append(f"{relative} {label}")
        if domain in lists:
            for kind, text in lines.items():
                (base / f"{domain}_{kind}.txt").write_text("\n".join(text) + "\n")
