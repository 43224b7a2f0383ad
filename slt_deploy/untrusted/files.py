"""Bounded reads of regular files.

:func:`read_bounded` returns a file's bytes while allocating at most ``st_size + 1`` bytes
(never ``limit + 1``): with ``n = fstat(fd).st_size``, the read is ``read(n)`` followed by a
one-byte ``read(1)`` that detects a file grown while reading.
"""

from __future__ import annotations

import os
import stat

from ..errors import SltError, SltFormatError


def _name(path: str | os.PathLike[str], error: type[SltError]) -> str:
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise error(f"expected a file path, got {type(path).__name__}") from None


def _checked_size(p: str, st: os.stat_result, limit: int, error: type[SltError], what: str) -> int:
    if stat.S_ISDIR(st.st_mode):
        raise error(f"'{p}' is a directory, not {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"'{p}' is not a regular file (a FIFO, device or socket), not {what}")
    if st.st_size > limit:
        raise error(f"'{p}' is {st.st_size} bytes, above the {limit}-byte limit of {what}")
    return int(st.st_size)


def regular_size(path: str | os.PathLike[str], limit: int, *, error: type[SltError] = SltFormatError,
                 what: str = "a file") -> int:
    """The size of the regular file ``path`` (at most ``limit`` bytes), checked without opening it."""
    p = _name(path, error)
    try:
        return _checked_size(p, os.stat(p), limit, error, what)
    except FileNotFoundError:
        raise error(f"no such file: '{p}'") from None
    except OSError as exc:
        raise error(f"cannot read '{p}': {exc.strerror or exc}") from None


def read_bounded(path: str | os.PathLike[str], limit: int, *, error: type[SltError] = SltFormatError,
                 what: str = "a file") -> bytes:
    """The bytes of the regular file ``path``, refusing anything else and anything over ``limit`` bytes.

    Allocates ``st_size`` bytes (plus one to detect growth), not ``limit``; every failure is one
    ``error`` line naming the file.
    """
    p = _name(path, error)
    try:
        size = _checked_size(p, os.stat(p), limit, error, what)
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            size = _checked_size(p, os.fstat(f.fileno()), limit, error, what)  # the file opened, not a swapped path
            data = f.read(size)
            grown = f.read(1)
    except FileNotFoundError:
        raise error(f"no such file: '{p}'") from None
    except OSError as exc:
        raise error(f"cannot read '{p}': {exc.strerror or exc}") from None
    if grown:
        raise error(f"'{p}' grew while it was read; read it again once it is complete")
    if len(data) != size:
        raise error(f"'{p}' shrank while it was read ({len(data)} of {size} bytes); read it again once it is complete")
    return data


def read_head(path: str | os.PathLike[str], n: int) -> bytes:
    """The first ``n`` bytes of ``path`` if it is a readable regular file, else ``b""``; a FIFO or a
    device is never opened for reading (sniffing a FIFO's type blocked for ever)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            return fh.read(n) if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) else b""
    except (OSError, TypeError, ValueError):
        return b""
