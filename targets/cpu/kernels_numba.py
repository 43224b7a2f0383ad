"""Compiled kernels of the CPU runtime (``backend="numba"``): numba, cached on disk, GIL-free.

Same names and contracts as :mod:`.kernels_numpy`, with one addition: every synaptic
kernel takes the per-output ``scale`` and ``bias`` (or None) and returns the finished
float32 current ``I = float32(S)·scale + bias`` in one pass (``S`` being the exact
synaptic sum; with ``scale=None, bias=None`` it returns ``float32(S)`` for the caller's
exact fallback). Popcount and cttz are LLVM intrinsics (``llvm.ctpop`` / ``llvm.cttz``),
so the host's POPCNT / TZCNT instructions are used.

The kernels live in :mod:`.numba_base` (intrinsics, packing), :mod:`.numba_linear`,
:mod:`.numba_conv`, :mod:`.numba_conv_event`, :mod:`.numba_conv_checked`,
:mod:`.numba_neurons`, :mod:`.numba_pool` and :mod:`.numba_certificate`; this module is the kernel set the
executor picks (the names of :mod:`.kernels_numpy`).
"""

from __future__ import annotations

from .numba_base import pack, popcnt
from .numba_certificate import finite_in, is_binary, row_stats, rows_certified
from .numba_conv import conv_gather, conv_popcount
from .numba_conv_event import conv_event
from .numba_linear import lin_event, lin_gather, lin_popcount
from .numba_neurons import neuron_run
from .numba_pool import pool_spikes

__all__ = ["conv_event", "conv_gather", "conv_popcount", "finite_in", "is_binary", "lin_event", "lin_gather",
           "lin_popcount", "neuron_run", "pack", "pool_spikes", "popcnt", "row_stats", "rows_certified"]
