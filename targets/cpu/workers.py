"""The CPU runtime's worker threads: how many, how a batch is split, where they run.

A batch is split into contiguous chunks of samples, one per worker (samples are
independent; the compiled kernels release the GIL). When the pool uses every CPU the
process may run on (the default ``threads=None``), worker ``i`` is pinned to the ``i``-th of
those CPUs; set ``SLT_PIN_THREADS=0`` to leave placement to the OS. Without pinning, after an
idle pause the scheduler woke both workers on the waking thread's core, and a 2-thread batch
ran slower than 1 thread for the next ~25 ms (measured on a 2-vCPU KVM guest: MLP 784
batch 64 after a 50 ms pause, 2.8 ms on 2 unpinned threads, 2.3 ms on 1, 1.6 ms pinned).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from slt_deploy.errors import SltInputError

MIN_ROWS_PER_THREAD = 2  # samples per worker below which splitting the batch does not pay


def thread_count(threads: int | None) -> int:
    """``threads``, checked; None: every CPU the process may run on."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise SltInputError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


@functools.lru_cache(maxsize=64)
def split(batch: int, threads: int) -> tuple[tuple[int, int], ...]:
    """``(lo, hi)`` sample ranges, one per worker (at least :data:`MIN_ROWS_PER_THREAD` each)."""
    parts = max(1, min(threads, batch // MIN_ROWS_PER_THREAD))
    edges = [batch * i // parts for i in range(parts + 1)]
    return tuple((a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a)


def worker_cpus(threads: int) -> list[int] | None:
    """The CPUs to pin the pool's workers to, in order, or None (no pinning): pinning applies
    when ``threads`` covers every CPU of the process's affinity set (2 or more) and
    ``SLT_PIN_THREADS`` is not ``0``."""
    if os.environ.get("SLT_PIN_THREADS", "1").strip() == "0" or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except OSError:
        return None
    return cpus if 2 <= len(cpus) <= threads else None


class _PinWorkers:
    """Thread-pool initializer: the ``i``-th worker started runs on ``cpus[i % len(cpus)]`` only."""

    def __init__(self, cpus: list[int]) -> None:
        self.cpus, self.started, self.lock = cpus, 0, threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            cpu, self.started = self.cpus[self.started % len(self.cpus)], self.started + 1
        try:
            os.sched_setaffinity(0, {cpu})  # pid 0: the calling thread (Linux)
        except OSError:  # not permitted here (some containers): leave placement to the OS
            pass


def pool(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` workers, pinned as the module docstring says."""
    cpus = worker_cpus(threads)
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slt-cpu",
                              initializer=_PinWorkers(cpus) if cpus else None)
