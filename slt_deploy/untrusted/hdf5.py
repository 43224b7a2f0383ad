"""HDF5 files (NIR ``.nir``, netx ``.net.h5``) read as untrusted input.

Two rules every HDF5 reader of slt follows:

1. :func:`scan_tree` before any dataset is read: hard links only (no soft or external links),
   no virtual or external-storage datasets (their data would come from other files: a netx file
   read another HDF5 file's weights, ``/etc/hostname``, and blocked for ever on a FIFO), plain
   numeric or string datasets, groups nested at most :data:`MAX_DEPTH` deep, and the declared
   bytes of all datasets (``size x itemsize``, what a read would allocate after decompression)
   at most ``budget``. With ``budget = min(MAX_HDF5_BYTES, max(MIN_BUDGET, MAX_EXPANSION x st_size))``
   a gzip bomb is refused from its dataspace, before it is inflated.
2. :func:`in_child`: the h5py work runs in a child process with a time limit (environment
   variable ``SLT_HDF5_TIMEOUT``, seconds, default 120; ``0`` reads in-process). One changed byte
   in a NIR header made h5py spin forever, in C, where no signal reaches it; the parent kills
   the child and raises one :class:`~slt_deploy.errors.SltFormatError` line.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import SltError, SltFormatError, SltInputError

MAX_DEPTH = 32
MAX_EXPANSION = 1100  # gzip cannot expand more than ~1032x; fill-value datasets could claim anything
MIN_BUDGET = 64 << 20
MAX_HDF5_BYTES = 1 << 30
TIMEOUT_ENV = "SLT_HDF5_TIMEOUT"
DEFAULT_TIMEOUT = 120.0

R = TypeVar("R")


def budget_for(size: int) -> int:
    """Bytes the datasets of a ``size``-byte file may declare in total."""
    return min(MAX_HDF5_BYTES, max(MIN_BUDGET, MAX_EXPANSION * size))


def scan_tree(group: Any, where: str, budget: int, *, error: type[SltError] = SltFormatError) -> int:
    """Check the whole HDF5 tree under ``group`` (rule 1 above); returns the bytes declared."""
    total = 0

    def walk(g: Any, path: str, depth: int) -> None:
        import h5py

        nonlocal total
        if depth > MAX_DEPTH:
            raise error(f"{where}: groups nested deeper than {MAX_DEPTH} levels at '{path}'")
        for key in g:
            link = g.get(key, getlink=True)
            here = f"{path}/{key}"
            if not isinstance(link, h5py.HardLink):
                raise error(f"{where}: '{here}' is a {type(link).__name__}; only plain (hard-linked) entries are "
                            "accepted")
            item = g[key]
            if isinstance(item, h5py.Group):
                walk(item, here, depth + 1)
            elif isinstance(item, h5py.Dataset):
                if item.is_virtual or item.external:
                    raise error(f"{where}: '{here}' is a virtual or external dataset; its data would come from "
                                "other files")
                dt = item.dtype
                if h5py.check_string_dtype(dt) is None and dt.kind not in "biuf":
                    raise error(f"{where}: '{here}' has unsupported data type {dt}")
                total += int(item.size or 0) * max(int(dt.itemsize), 1)
                if total > budget:
                    raise error(f"{where}: arrays declare more than {budget:,} bytes at '{here}', more than the "
                                "file could hold")
            else:
                raise error(f"{where}: '{here}' is neither a group nor a dataset")

    walk(group, "", 0)
    return total


def timeout_seconds() -> float:
    """``SLT_HDF5_TIMEOUT`` (seconds; 0: no child process), or the default."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise SltInputError(f"{TIMEOUT_ENV}={text!r}: give a number of seconds >= 0 (0 reads HDF5 in-process)")
    return value


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        out: tuple[Any, ...] = ("ok", fn(*args))
    except SltError as exc:
        out = ("err", type(exc), str(exc))
    except BaseException as exc:  # noqa: BLE001 - anything else is reported, typed, by the parent
        text = str(exc).strip().splitlines()
        out = ("err", SltFormatError, f"{type(exc).__name__}: {text[0][:200] if text else ''}")
    try:
        conn.send(out)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result
        conn.send(("err", SltFormatError, f"result cannot be returned ({type(exc).__name__})"))
    finally:
        conn.close()


def in_child(fn: Callable[..., R], *args: Any, where: str, timeout: float | None = None) -> R:
    """``fn(*args)`` run in a child process killed after ``timeout`` seconds (default
    :func:`timeout_seconds`); its :class:`SltError` is raised here with the same class and text."""
    limit = timeout_seconds() if timeout is None else timeout
    if limit == 0:
        return fn(*args)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), name="slt-hdf5-reader")
    proc.start()
    send.close()
    try:
        if not recv.poll(limit):
            raise SltFormatError(f"{where}: reading the HDF5 file did not finish within {limit:g} s "
                                 f"({TIMEOUT_ENV}); the file is damaged or hostile")
        try:
            status, *payload = recv.recv()
        except (EOFError, OSError):
            proc.join(5)
            raise SltFormatError(f"{where}: the HDF5 reader died (exit code {proc.exitcode}); the file is damaged "
                                 "or hostile") from None
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if status == "ok":
        return payload[0]
    cls, message = payload
    raise (cls if isinstance(cls, type) and issubclass(cls, SltError) else SltFormatError)(message)


def tree_digest(group: Any, skip: frozenset[str] = frozenset(), attrs: bool = True) -> str:
    """sha256 over everything under ``group``: every path (sorted), every dataset's dtype, shape
    and bytes, and (``attrs``) every attribute; ``skip``: paths relative to ``group`` (a dataset, or
    ``@name`` for an attribute of ``group``) left out, such as the stored digest itself.

    Computed on the HDF5 tree, never on Python objects, so the writer (on the bytes it is about to
    write) and the reader (on the file) hash the same thing."""
    import hashlib

    import h5py
    import numpy as np

    h = hashlib.sha256()

    def feed(tag: str, value: Any) -> None:
        arr = np.asarray(value)
        if arr.dtype.kind in "OSU":
            data = "\x1f".join(v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)
                               for v in arr.reshape(-1).tolist()).encode("utf-8", "surrogateescape")
            head = f"{tag}|s|{arr.shape}|{len(data)}|"
        else:
            data = np.ascontiguousarray(arr).tobytes()
            head = f"{tag}|{arr.dtype.str}|{arr.shape}|{len(data)}|"
        h.update(head.encode("utf-8", "surrogateescape"))
        h.update(data)

    def walk(g: Any, path: str) -> None:
        if attrs:
            for name in sorted(g.attrs):
                if f"{path}@{name}" not in skip:
                    feed(f"{path}@{name}", g.attrs[name])
        for key in sorted(g):
            here = f"{path}{key}"
            if here in skip:
                continue
            item = g[key]
            if isinstance(item, h5py.Group):
                h.update(f"{here}/|group|".encode("utf-8", "surrogateescape"))
                walk(item, here + "/")
            else:
                feed(here, item[()])

    walk(group, "")
    return h.hexdigest()
