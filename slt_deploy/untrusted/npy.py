"""``.npy`` arrays read as untrusted input: the header is parsed and checked before any allocation.

A ``.npy`` file is ``magic | header | data``; the header declares ``shape`` and ``dtype``, so the
data holds ``nbytes = prod(shape) * dtype.itemsize`` bytes. :func:`load_npy` requires

    header_end + nbytes == st_size      (exactly the bytes the file holds, computed in Python ints)

before it allocates ``nbytes`` (numpy's own ``np.load`` allocates what the header declares, so a
192-byte file declaring ``(2**40, 64)`` raised ``MemoryError``). Only numeric and bool dtypes are
read (no objects, hence no pickles); a malformed header (numpy raises ``ValueError``, ``SyntaxError``
or ``tokenize.TokenError``) is one typed error line.
"""

from __future__ import annotations

import math
import os
import stat
from typing import Any

import numpy as np

from ..errors import SltError, SltInputError
from .files import regular_size

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_HEADER_BYTES = 10_000  # numpy's own default bound for .npy headers
ZIP_MAGIC = b"PK\x03\x04"


def _header(fh: Any, error: type[SltError], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
        if version == (2, 0):
            return fmt.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
        if version == (3, 0):
            return fmt._read_array_header(fh, version, max_header_size=MAX_HEADER_BYTES)  # noqa: SLF001 - utf-8 header
        raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # noqa: BLE001 - untrusted header: ValueError, SyntaxError, TokenError, EOFError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{where}: not a readable .npy array (malformed header: {reason[:160]})") from None


def _declared_bytes(shape: tuple[int, ...], dtype: np.dtype, error: type[SltError], where: str) -> tuple[int, int]:
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.itemsize == 0:
        raise error(f"{where}: .npy dtype {dtype} is not numeric; give float, int or bool values")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise error(f"{where}: .npy header declares an invalid shape {shape}")
    count = math.prod(shape)
    return count, count * dtype.itemsize


def load_npy(path: str | os.PathLike[str], flag: str = "--input", *, limit: int = 4 << 30,
             mmap: bool = False, error: type[SltError] = SltInputError) -> np.ndarray:
    """The array of the ``.npy`` file ``path`` (``mmap``: memory-mapped read-only), every check done
    before allocation; every failure is one ``error`` line that names ``flag``."""
    where = f"{flag} {os.fsdecode(os.fspath(path))}"
    size = regular_size(path, limit, error=error, what="a .npy file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            if os.fstat(fh.fileno()).st_size != size or not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise error(f"{where}: the file changed while it was opened; read it again once it is complete")
            if fh.read(4) == ZIP_MAGIC:
                raise error(f"{where}: expected a single .npy array, got an archive; pass a .npy file")
            fh.seek(0)
            shape, fortran, dtype = _header(fh, error, where)
            count, nbytes = _declared_bytes(shape, dtype, error, where)
            offset = fh.tell()
            if offset + nbytes != size:
                raise error(f"{where}: the .npy header declares {shape} {dtype} ({nbytes} bytes of data), "
                            f"the file holds {size - offset}; the file is truncated or corrupt")
            order = "F" if fortran else "C"
            if mmap and count:
                return np.memmap(fh, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
            buf = bytearray(nbytes)
            if fh.readinto(buf) != nbytes:
                raise error(f"{where}: the .npy file shrank while it was read")
    except SltError:
        raise
    except OSError as exc:
        raise error(f"{where}: cannot read: {exc.strerror or exc}") from None
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape, order=order)


def check_float32_range(x: np.ndarray, error: type[SltError] = SltInputError) -> None:
    """Refuse finite values outside float32's range (|x| > 3.4028235e38): every target computes in
    float32, where such a value becomes inf (the cpu target predicted class 1, the reference raised)."""
    if x.dtype.kind == "f" and x.dtype.itemsize > 4 and x.size and float(np.max(np.abs(x))) > FLOAT32_MAX:
        raise error(f"input values above the float32 range (|x| <= {FLOAT32_MAX:.7g}); rescale the input")


__all__ = ["FLOAT32_MAX", "check_float32_range", "load_npy"]
