"""``emoji``: colour emoji classified into their Unicode subgroup, a fine-grained 43-class task (embedded).

Source: two Debian packages. ``fonts-noto-color-emoji`` (Google's Noto Color Emoji font, SIL OFL 1.1) draws the
images; ``unicode-data`` (Unicode's data files, Unicode licence) supplies ``emoji/emoji-test.txt``, whose
``# group:`` / ``# subgroup:`` headings are the labels. The task: tell ``animal-mammal`` from ``animal-bird`` from
``animal-marine``, ``food-fruit`` from ``food-vegetable`` from ``food-asian``, ``face-smiling`` from
``face-concerned``..., for emoji the model has not seen (the test split holds other emoji of each subgroup). Colour
cartoons in 43 fine classes: farther from ImageNet and finer than Fashion-MNIST's ten (its measured linear-probe
accuracy is in ``robustft list datasets``).

What is kept (fixed, so every machine with the same two files builds the same set): fully-qualified emoji of one
code point (plus an optional U+FE0F presentation selector, so no shaping engine is needed), outside the groups
"People & Body" (skin-tone and gender variants of one drawing would land on both sides of the split), "Flags" (258
country flags would be a quarter of the set) and "Component"; then the subgroups with at least
``EMOJI_MIN_PER_CLASS`` such emoji (977 emoji in 43 subgroups with unicode-data 15.0). Each is drawn at the font's
bitmap size (109 pt: 136 x 128 px) centred on a white 136 x 136 square. A code point the font has no glyph for
(an older font than the data file) is left out. Split: the fixed stratified 20% test split of the other
single-pool datasets.

Location: ``root=`` or ``$ROBUSTFT_EMOJI`` = a folder holding ``NotoColorEmoji.ttf`` and ``emoji-test.txt``; else
the Debian paths ``EMOJI_FONT`` and ``EMOJI_TEST``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from robustft.data.cache import files_signature
from robustft.data.embedded import POOL_TAG, pool_split
from robustft.data.idx import CorruptDataFileError
from robustft.data.sources import DATASETS, Source, corruption_ood
from robustft.errors import MissingAssetError

EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJI_TEST = "/usr/share/unicode/emoji/emoji-test.txt"
EMOJI_EXCLUDED_GROUPS = frozenset({"People & Body", "Flags", "Component"})
EMOJI_MIN_PER_CLASS = 12
EMOJI_SIZE = 136
_BITMAP_POINTS = 109  # Noto Color Emoji holds bitmaps at this size only (CBDT strike)
_PRESENTATION = 0xFE0F
_NO_GLYPH = "\U0010fffd"  # a private-use code point: how the font draws a character it has no glyph for
_INSTALL_HINT = ("Install them with `sudo apt-get install fonts-noto-color-emoji unicode-data` (or `make assets`), "
                 "or point ROBUSTFT_EMOJI (or root=) at a folder holding NotoColorEmoji.ttf and emoji-test.txt.")


@dataclass(frozen=True)
class EmojiEntry:
    """One kept emoji: its character, its Unicode group and subgroup (the class)."""

    character: str
    group: str
    subgroup: str


def emoji_files(root: str | None) -> tuple[Path, Path]:
    """(font, emoji-test.txt): from ``root`` / ``$ROBUSTFT_EMOJI``, else the Debian paths.

    Raises:
        MissingAssetError: either file is missing (the message names the packages to install).
    """
    explicit = root or os.environ.get("ROBUSTFT_EMOJI")
    font, listing = ((Path(explicit) / "NotoColorEmoji.ttf", Path(explicit) / "emoji-test.txt") if explicit
                     else (Path(EMOJI_FONT), Path(EMOJI_TEST)))
    missing = [str(p) for p in (font, listing) if not p.is_file()]
    if missing:
        raise MissingAssetError(f"the emoji dataset is not installed: {' and '.join(missing)} not found. "
                                f"{_INSTALL_HINT}")
    return font, listing


def parse_emoji_test(path: Path, min_per_class: int | None = None) -> list[EmojiEntry]:
    """The kept emoji of an ``emoji-test.txt``, in the file's order (see the module docstring for the rule).

    ``min_per_class``: the smallest subgroup kept (None: ``EMOJI_MIN_PER_CLASS``).

    Raises:
        CorruptDataFileError: a fully-qualified line whose code points are not hexadecimal, or no subgroup kept.
    """
    min_per_class = EMOJI_MIN_PER_CLASS if min_per_class is None else min_per_class
    entries: list[EmojiEntry] = []
    group = subgroup = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif "; fully-qualified" in line and group not in EMOJI_EXCLUDED_GROUPS:
            try:
                points = [int(token, 16) for token in line.split(";", 1)[0].split()]
            except ValueError:
                raise CorruptDataFileError(f"{path}:{number} is {line!r}: its code points are not hexadecimal; "
                                           f"reinstall it (sudo apt-get install --reinstall unicode-data).") from None
            points = [p for p in points if p != _PRESENTATION]
            if len(points) == 1 and subgroup:
                entries.append(EmojiEntry(chr(points[0]), group, subgroup))
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.subgroup] = counts.get(entry.subgroup, 0) + 1
    kept = [e for e in entries if counts[e.subgroup] >= min_per_class]
    if not kept:
        raise CorruptDataFileError(f"{path} has no subgroup with {min_per_class} or more single-code-point emoji "
                                   "outside People & Body, Flags and Component: it is not Unicode's emoji-test.txt. "
                                   f"{_INSTALL_HINT}")
    return kept


def emoji_classes(entries: list[EmojiEntry]) -> list[str]:
    """The subgroups, in the order they first appear (the file's CLDR order): label i is ``classes[i]``."""
    return list(dict.fromkeys(e.subgroup for e in entries))


def _draw(font: ImageFont.FreeTypeFont, character: str) -> np.ndarray:
    """uint8 136 x 136 x 3: ``character`` in colour, centred on white."""
    glyph = Image.new("RGBA", (EMOJI_SIZE, EMOJI_SIZE), (255, 255, 255, 0))
    left, top, right, bottom = ImageDraw.Draw(glyph).textbbox((0, 0), character, font=font, embedded_color=True)
    offset = ((EMOJI_SIZE - (right - left)) // 2 - left, (EMOJI_SIZE - (bottom - top)) // 2 - top)
    # black for a monochrome glyph; a colour glyph brings its own colours
    ImageDraw.Draw(glyph).text(offset, character, font=font, fill=(0, 0, 0, 255), embedded_color=True)
    canvas = Image.new("RGB", glyph.size, (255, 255, 255))
    canvas.paste(glyph, mask=glyph.getchannel("A"))
    return np.asarray(canvas, dtype=np.uint8)


def render_emoji(font_path: Path, entries: list[EmojiEntry],
                 classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 N x 3 x 136 x 136, int64 N subgroup indices) for the entries the font has a glyph for.

    Raises:
        CorruptDataFileError: the font cannot be opened at its bitmap size, or has none of the glyphs.
    """
    try:
        font = ImageFont.truetype(str(font_path), _BITMAP_POINTS)
    except OSError as error:
        raise CorruptDataFileError(f"cannot open {font_path} as a colour bitmap font at {_BITMAP_POINTS} pt "
                                   f"({error}); reinstall it (sudo apt-get install --reinstall "
                                   "fonts-noto-color-emoji).") from None
    absent = _draw(font, _NO_GLYPH)
    index = {name: i for i, name in enumerate(classes)}
    images, labels = [], []
    for entry in entries:
        pixels = _draw(font, entry.character)
        if not np.array_equal(pixels, absent):
            images.append(pixels)
            labels.append(index[entry.subgroup])
    if not images:
        raise CorruptDataFileError(f"{font_path} draws none of the {len(entries)} emoji: it is not a colour emoji "
                                   f"font. {_INSTALL_HINT}")
    return (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            torch.tensor(labels, dtype=torch.int64))


@DATASETS.register("emoji")
def emoji(spec: str, root: str | None = None, download: bool = False) -> Source:
    """Colour emoji (Debian Noto Color Emoji + Unicode emoji-test.txt): 43 subgroups, 136 px, fixed 782/195 split."""
    font, listing = emoji_files(root)
    entries = parse_emoji_test(listing)
    classes = emoji_classes(entries)

    def read(kind: str, image_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        return pool_split(*render_emoji(font, entries, classes), kind)

    def signature(kind: str) -> str:
        return f"emoji:{kind}:{POOL_TAG}:{EMOJI_MIN_PER_CLASS}:" + files_signature([font, listing])

    return Source("emoji", classes, read, signature, native_size=EMOJI_SIZE, location=f"{font} + {listing}",
                  ood_splits=corruption_ood("emoji"))
