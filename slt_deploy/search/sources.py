"""Streamed training data: arrays read from disk on demand, never loaded whole.

- ``.npy`` files are memory-mapped (``np.memmap`` at the data offset of the file);
- ``.npz`` members written by ``np.savez`` (stored, not compressed) are memory-mapped
  inside the archive; compressed members (``np.savez_compressed``) cannot be mapped and
  are decompressed into memory, up to :data:`MAX_IN_MEMORY_BYTES`;
- image folders (one sub-folder per class) are decoded with Pillow, a batch at a time.

Every file is untrusted: headers are parsed with a bounded size (:data:`MAX_HEADER_BYTES`)
and never unpickled, sizes are checked against the file before anything is mapped, object
arrays are refused, and every problem is a one-line :class:`~slt_deploy.SltInputError`.

:class:`Samples` is the light, array-like view the trainer reads: ``len``, ``shape``,
``samples[index_array]`` (float32 rows), ``reshape``; converting it with ``np.asarray``
reads everything (small data and tests only).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SltError, SltInputError

MAX_HEADER_BYTES = 10_000  # numpy's own default bound for .npy headers
MAX_IN_MEMORY_BYTES = 4 << 30  # a compressed .npz member is decompressed into memory up to this size
CHUNK_BYTES = 16 << 20  # validation and hashing read this much at a time
MAX_IMAGE_PIXELS = 1 << 24  # per image (Pillow refuses "decompression bombs" only far above this)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")


# ====================================================================== .npy / .npz headers
def _read_header(fp: Any, where: str, kind: str = ".npy array") -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a bounded .npy header; ``where: not a readable <kind> (reason)``."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltInputError(f"{where}: not a readable {kind} ({reason})") from None
    if dtype.hasobject:
        raise SltInputError(f"{where}: not a readable {kind} (Object arrays cannot be loaded: pickled data is never "
                            "loaded; save plain numeric arrays)")
    return tuple(int(s) for s in shape), bool(fortran), dtype


def _mapped(path: Path, offset: int, limit: int, shape: tuple[int, ...], fortran: bool, dtype: np.dtype,
            where: str) -> np.ndarray:
    """``np.memmap`` of the array at ``offset`` after checking it lies inside ``limit`` bytes."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = count * dtype.itemsize
    if offset + nbytes > limit:
        raise SltInputError(f"{where}: truncated: the header promises {nbytes:,} bytes of data, the file holds "
                            f"{max(limit - offset, 0):,}")
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def open_npy(path: Path) -> np.ndarray:
    """A read-only memory map of the ``.npy`` file ``path`` (nothing is read but the header)."""
    where = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fp:
            shape, fortran, dtype = _read_header(fp, where)
            offset = fp.tell()
    except OSError as exc:
        raise SltInputError(f"{where}: cannot read ({exc.strerror or exc})") from None
    return _mapped(path, offset, size, shape, fortran, dtype, where)


def open_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The members ``keys`` (those present) of the archive ``path``: memory-mapped when stored,
    decompressed into memory when compressed (bounded)."""
    where = str(path)
    try:
        size = path.stat().st_size
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltInputError(f"{where}: not a readable .npz archive ({reason})") from None
    out: dict[str, np.ndarray] = {}
    with archive, open(path, "rb") as fp:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        for key in keys:
            info = members.get(key)
            if info is None:
                continue
            member = f"{where}: {key}"
            if info.flag_bits & 0x1:
                raise SltInputError(f"{member} is an encrypted member")
            if info.compress_type == zipfile.ZIP_STORED:
                fp.seek(info.header_offset)
                local = fp.read(30)
                if len(local) != 30 or local[:4] != b"PK\x03\x04":
                    raise SltInputError(f"{where}: not a readable .npz archive (bad local header of {key})")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                start = info.header_offset + 30 + name_len + extra_len
                fp.seek(start)
                shape, fortran, dtype = _read_header(fp, where, ".npz archive")
                out[key] = _mapped(path, fp.tell(), min(size, start + info.file_size), shape, fortran, dtype, member)
                continue
            if info.file_size > MAX_IN_MEMORY_BYTES:
                raise SltInputError(f"{member} is compressed and {info.file_size / 2**30:.1f} GiB uncompressed; "
                                    "save it with np.savez (uncompressed) or as .npy files so that it can be streamed")
            try:
                with archive.open(info) as member_fp:
                    shape, fortran, dtype = _read_header(member_fp, where, ".npz archive")
                    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                    if count * dtype.itemsize > info.file_size:
                        raise SltInputError(f"{member} is truncated: the header promises {count * dtype.itemsize:,} "
                                            f"bytes, the member holds {info.file_size:,}")
                    raw = member_fp.read(count * dtype.itemsize)
            except SltInputError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SltInputError(f"{where}: not a readable .npz archive ({reason})") from None
            if len(raw) != count * dtype.itemsize:
                raise SltInputError(f"{member} is truncated")
            out[key] = np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C")
    return out


def npz_names(path: Path) -> list[str]:
    """The member names of an archive (without ``.npy``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [n.removesuffix(".npy") for n in archive.namelist()]
    except (OSError, zipfile.BadZipFile, ValueError):
        return []


def sha256_file(path: Path, digest: Any = None) -> Any:
    """sha256 of a file, read :data:`CHUNK_BYTES` at a time."""
    h = digest if digest is not None else hashlib.sha256()
    with open(path, "rb") as fp:
        while block := fp.read(CHUNK_BYTES):
            h.update(block)
    return h


def row_chunks(n: int, row_bytes: int) -> Iterator[slice]:
    """Consecutive row ranges of about :data:`CHUNK_BYTES` each."""
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


# ====================================================================== image folders
def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise SltError("image folders need Pillow: pip install 'slt-deploy[torch]'") from None
    return Image


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


class ImageFiles:
    """Images decoded on demand: ``files[rows]`` is a ``uint8`` array ``(k, C, H, W)``.

    ``mode`` is Pillow's ``"L"`` (1 channel) or ``"RGB"`` (3); every image is converted to
    it and must have the size ``(height, width)``.
    """

    scale = 255.0  # features are pixel / 255

    def __init__(self, paths: list[Path], mode: str, size: tuple[int, int]) -> None:
        self.paths = list(paths)
        self.mode = mode
        self.size = size
        c = 1 if mode == "L" else 3
        self.shape = (len(self.paths), c, *size)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows: Any) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for i, r in enumerate(rows):
            out[i] = self.decode(self.paths[int(r)])
        return out

    def decode(self, path: Path) -> np.ndarray:
        Image = _pillow()
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise SltInputError(f"{path}: {im.width}x{im.height} pixels is larger than the "
                                        f"{MAX_IMAGE_PIXELS:,} pixels an image may have")
                arr = np.asarray(im.convert(self.mode), dtype=np.uint8)
        except SltInputError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SltInputError(f"{path}: not a readable image ({reason})") from None
        if arr.shape[:2] != self.size:
            raise SltInputError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]} pixels, the others are "
                                f"{self.size[1]}x{self.size[0]}; resize the images to one size")
        return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def probe_image(path: Path) -> tuple[str, tuple[int, int]]:
    """``(mode, (height, width))`` of an image from its header (no decoding)."""
    Image = _pillow()
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltInputError(f"{path}: not a readable image ({reason})") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise SltInputError(f"{path}: {w}x{h} pixels is larger than the {MAX_IMAGE_PIXELS:,} pixels an image may have")
    if w < 1 or h < 1:
        raise SltInputError(f"{path}: empty image")
    gray = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    return ("L" if gray else "RGB"), (h, w)


# ====================================================================== the array view
class Samples:
    """Rows of a stored array (``np.memmap``, in-memory array or :class:`ImageFiles`), read
    on demand as float32 (image pixels divided by 255) and shaped ``sample_shape``."""

    dtype = np.dtype(np.float32)

    def __init__(self, base: Any, rows: np.ndarray | None = None, sample_shape: tuple[int, ...] | None = None) -> None:
        self.base = base
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        n = len(base) if self.rows is None else len(self.rows)
        self._n = int(n)
        inner = tuple(int(s) for s in base.shape[1:])
        self.sample_shape = inner if sample_shape is None else tuple(int(s) for s in sample_shape)
        if int(np.prod(self.sample_shape)) != int(np.prod(inner)):
            raise ValueError(f"sample shape {self.sample_shape} does not hold stored samples of shape {inner}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Samples(shape={self.shape}, source={type(self.base).__name__})"

    def _indices(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(self._n)[index]
        idx = np.asarray(index)
        if idx.dtype == bool:
            return np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"index out of range for {self._n} samples")
        return np.where(idx < 0, idx + self._n, idx)

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[np.array([int(index)])][0]
        idx = self._indices(index)
        rows = idx if self.rows is None else self.rows[idx]
        raw = self.base[rows] if len(rows) else np.zeros((0, *self.base.shape[1:]), self.base.dtype)
        x = np.asarray(raw).astype(np.float32)
        scale = getattr(self.base, "scale", None)
        if scale is not None:
            x /= np.float32(scale)
        return x.reshape((len(rows), *self.sample_shape))

    def reshape(self, *shape: Any) -> Samples:
        """A view with another per-sample shape: ``reshape(-1, C, H, W)`` or ``reshape(n, -1)``."""
        if len(shape) == 1 and isinstance(shape[0], tuple):
            shape = shape[0]
        rest = [int(s) for s in shape[1:]]
        if -1 in rest:
            known = int(np.prod([s for s in rest if s != -1])) or 1
            rest[rest.index(-1)] = int(np.prod(self.sample_shape)) // known
        return Samples(self.base, self.rows, tuple(rest))

    def subset(self, index: Any) -> Samples:
        """A view of some of the rows (no data read)."""
        idx = self._indices(index)
        return Samples(self.base, idx if self.rows is None else self.rows[idx], self.sample_shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def chunks(self) -> Iterator[np.ndarray]:
        """Every sample, in order, :data:`CHUNK_BYTES` of float32 at a time."""
        row_bytes = int(np.prod(self.sample_shape)) * 4
        for part in row_chunks(self._n, row_bytes):
            yield self[part]


def is_streamed(a: Any) -> bool:
    """True for data the search must not load whole (memory maps and lazy views)."""
    return isinstance(a, (np.memmap, Samples, ImageFiles))


def fingerprint(paths: list[Path], root: Path) -> str:
    """sha256 over the relative path, size and modification time of every file (image folders)."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
