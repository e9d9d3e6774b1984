"""The IDX file format of MNIST-style datasets (images and labels, optionally gzipped).

A header of two zero bytes, a type code, the number of dimensions and one big-endian 32-bit size
per dimension, then the values. Fashion-MNIST ships this way (Debian's ``dataset-fashion-mnist``),
as do many MNIST look-alikes users bring.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from edgekd.errors import DataError

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` read as gzip); a clear error for a damaged file."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"'{path}' cannot be read as an IDX file: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"'{path}' is not an IDX file (its header is {raw[:4].hex() or 'empty'})")
    dims = raw[3]
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"'{path}' is truncated: its header names {dims} dimensions")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        found = len(raw) - header
        raise DataError(f"'{path}' is damaged: shape {list(shape)} needs {expected} bytes of values, it has {found}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
