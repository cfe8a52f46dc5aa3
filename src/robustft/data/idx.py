"""Reader for the IDX format (MNIST / Fashion-MNIST ``*-idx3-ubyte.gz``), with clear errors on damaged files.

Written by hand because the format is a 4-byte magic, big-endian dimensions and raw bytes: a few lines of numpy,
where torchvision's reader is private API and gives a bare assertion on a truncated file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from robustft.errors import RobustftError


class CorruptDataFileError(RobustftError):
    """A dataset file exists but cannot be decoded (truncated download, wrong format)."""


def read_idx(path: str | Path) -> np.ndarray:
    """The uint8 array stored in an IDX file (gzip-compressed when the name ends in .gz).

    Raises:
        CorruptDataFileError: naming the file, when it is truncated or not an unsigned-byte IDX file.
    """
    path = Path(path)
    fix = (f"Delete {path} and reinstall it (`make assets`, or "
           "`sudo apt-get install --reinstall dataset-fashion-mnist`).")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CorruptDataFileError(f"cannot decompress {path} ({error}): the file is damaged. {fix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptDataFileError(f"{path} is not an unsigned-byte IDX file (bad magic number). {fix}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise CorruptDataFileError(f"{path} has a truncated IDX header. {fix}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CorruptDataFileError(f"{path} holds {len(raw) - header} data bytes but its header {shape} needs "
                                   f"{expected}: the file is truncated or damaged. {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
