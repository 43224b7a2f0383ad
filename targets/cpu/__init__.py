"""Bit-packed CPU runtime: run a ticket (or a .slt file) on a batch, spike for spike.

    from slt_deploy.targets import cpu
    result = cpu.run("t.slt", x)                     # Result, same type as the reference
    rt = cpu.load(ticket, backend="numba", threads=2) # prepare once, run many batches
    result = rt.run(x)

Results equal the reference simulator's in float32 exactly (spikes, per-layer spike
counts, LI membranes). Backends: ``"numba"`` (compiled, cached on disk; needs the
``fast`` extra), ``"numpy"`` (numpy only) and ``"auto"`` (numba when importable).
``kernel`` forces one synaptic kernel (``"popcount"``, ``"event"``, ``"gather"``) wherever
it applies, for testing; by default a per-layer cost model picks (:mod:`.costmodel`).

Modules: :mod:`.stores` (weight representations, bit layout of :mod:`slt_deploy.bits`),
:mod:`.kernels_numpy` / :mod:`.kernels_numba` (kernels), :mod:`.synapse`, :mod:`.neurons`,
:mod:`.ops` (layer ops), :mod:`.runtime` (graph executor), :mod:`.slt_file` (mapped loading).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import numpy as np

from slt_deploy.errors import SltInputError
from slt_deploy.ir.graph import Ticket
from slt_deploy.result import Result

from .costmodel import KERNELS
from .runtime import BACKENDS, Runtime, numba_available

__all__ = ["BACKENDS", "KERNELS", "Runtime", "load", "numba_available", "run"]

_CACHE_LOCK = threading.Lock()
_TICKET_CACHE: weakref.WeakKeyDictionary[Ticket, dict[tuple[Any, ...], Runtime]] = weakref.WeakKeyDictionary()
_PATH_CACHE: dict[tuple[Any, ...], Runtime] = {}
_PATH_CACHE_SIZE = 4


def load(ticket_or_path: Ticket | str | os.PathLike[str], backend: str = "auto", threads: int | None = None,
         kernel: str | None = None) -> Runtime:
    """Prepare a ticket for the CPU (a .slt path is verified and its bit planes memory-mapped)."""
    if isinstance(ticket_or_path, Ticket):
        return Runtime(ticket_or_path, backend, threads, kernel)
    if isinstance(ticket_or_path, (str, os.PathLike)):
        from .slt_file import read_ticket

        ticket, planes = read_ticket(ticket_or_path)
        return Runtime(ticket, backend, threads, kernel, planes=planes)
    raise SltInputError(f"expected a Ticket or a .slt path, got {type(ticket_or_path).__name__}")


def run(ticket_or_path: Ticket | str | os.PathLike[str], x: np.ndarray, backend: str = "auto",
        threads: int | None = None, kernel: str | None = None, record: bool = False) -> Result:
    """Run ``x`` (``(batch, *in)``, or ``(T, batch, *in)`` for spike input) for T steps.

    Prepared runtimes are cached per ticket (weakly) and per file (path, size, mtime), so
    repeated calls do not repack weights. ``record=True`` also returns every node's
    per-step output in ``Result.layers``.
    """
    return _cached(ticket_or_path, backend, threads, kernel).run(x, record=record)


def _cached(ticket_or_path: Ticket | str | os.PathLike[str], backend: str, threads: int | None,
            kernel: str | None) -> Runtime:
    key = (backend, threads, kernel)
    if isinstance(ticket_or_path, Ticket):
        with _CACHE_LOCK:
            per_ticket = _TICKET_CACHE.setdefault(ticket_or_path, {})
            if key not in per_ticket:
                per_ticket[key] = load(ticket_or_path, backend, threads, kernel)
            return per_ticket[key]
    if isinstance(ticket_or_path, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(ticket_or_path))
        try:
            st = os.stat(path)
            file_key = (path, st.st_size, st.st_mtime_ns, st.st_ino, *key)
        except OSError:
            return load(path, backend, threads, kernel)  # raises the format's one-line error
        with _CACHE_LOCK:
            rt = _PATH_CACHE.pop(file_key, None)
        if rt is None:
            rt = load(path, backend, threads, kernel)
        with _CACHE_LOCK:
            _PATH_CACHE[file_key] = rt
            while len(_PATH_CACHE) > _PATH_CACHE_SIZE:
                _PATH_CACHE.pop(next(iter(_PATH_CACHE)))
        return rt
    raise SltInputError(f"expected a Ticket or a .slt path, got {type(ticket_or_path).__name__}")
