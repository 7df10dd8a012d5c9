"""The IDX file format of MNIST and Fashion-MNIST, parsed with numpy.

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a
type code, the number of dimensions ``d``, then ``d`` big-endian uint32 sizes,
then the values in C order, big-endian. Files may be gzip-compressed (the
Debian package of Fashion-MNIST ships ``.gz``); that is detected from the
gzip magic bytes, not from the file name.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> numpy dtype (big-endian where it matters)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(blob: bytes) -> np.ndarray:
    """Decode the bytes of one IDX file (gzip or not) into a native-endian array."""
    if blob[:2] == GZIP_MAGIC:
        blob = gzip.decompress(blob)
    if len(blob) < 4 or blob[:2] != b"\x00\x00":
        raise ValueError(f"not an IDX file: header starts {blob[:4]!r}, expected b'\\x00\\x00' then type and rank bytes.")
    code, ndim = blob[2], blob[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"unknown IDX type code 0x{code:02x}; valid codes are {sorted(hex(c) for c in IDX_DTYPES)}.")
    header_len = 4 + 4 * ndim
    if len(blob) < header_len:
        raise ValueError(f"IDX header truncated: rank {ndim} needs {header_len} bytes, file has {len(blob)}.")
    shape = tuple(int(s) for s in np.frombuffer(blob, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(blob) != expected:
        raise ValueError(f"IDX size mismatch: shape {shape} of {dtype} needs {expected} bytes, file has {len(blob)}.")
    values = np.frombuffer(blob, dtype=dtype, offset=header_len).reshape(shape)
    # native byte order and a writable copy, so torch.from_numpy accepts it
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """``parse_idx`` of a file on disk."""
    return parse_idx(Path(path).read_bytes())


__all__ = ["parse_idx", "read_idx", "IDX_DTYPES"]
