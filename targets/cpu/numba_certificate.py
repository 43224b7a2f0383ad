"""Compiled input checks: the exactness certificate of float64 rows, binary / finite tests.

Per row: the lowest set-bit exponent ``g`` of its nonzero values and ``Σ|x|``; sums with weights
``|w| <= w_max`` on a ``2^w_grid`` lattice are exact in float64 when
``Σ|x|·w_max < 2^(g + w_grid + 52)`` (see :mod:`slt_deploy.exact`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .numba_base import _JIT, lsb_exponent


@njit(**_JIT)
def _row_stats(x, grid, total):
    """Per row: lowest-set-bit exponent over nonzero values and Σ|x| (see :mod:`slt_deploy.exact`)."""
    R, K = x.shape
    bits = x.view(np.uint64)
    for r in range(R):
        g = np.int64(1 << 20)
        acc = 0.0
        for k in range(K):
            v = x[r, k]
            if v == 0.0:
                continue
            acc += abs(v)
            ge = lsb_exponent(bits[r, k])
            if ge < g:
                g = ge
        grid[r] = g
        total[r] = acc


def row_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(grid, Σ|x|)`` per row of float64 ``x`` ``(R, K)``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    grid = np.empty(x.shape[0], np.int64)
    total = np.empty(x.shape[0], np.float64)
    _row_stats(x, grid, total)
    return grid, total


@njit(**_JIT)
def _rows_certified(x, w_max, w_grid):
    R, K = x.shape
    bits = x.view(np.uint64)
    for r in range(R):
        g = np.int64(1 << 20)
        acc = 0.0
        for k in range(K):
            v = x[r, k]
            if v == 0.0:
                continue
            acc += abs(v)
            ge = lsb_exponent(bits[r, k])
            g = min(g, ge)
        if acc == 0.0:
            continue
        e = g + w_grid + 52
        if e < -1074:
            return False
        if e <= 1023 and not acc * w_max < math.ldexp(1.0, e):
            return False
    return True


def rows_certified(x: np.ndarray, w_max: float, w_grid: int) -> bool:
    """True when every row's sums with weights ``|w| <= w_max`` on a ``2^w_grid`` lattice are exact."""
    return bool(_rows_certified(np.ascontiguousarray(x, dtype=np.float64), float(w_max), int(w_grid)))


_CHUNK = 4096  # values per branch-free pass of the two input tests (then an early exit)


@njit(**_JIT)
def _is_binary(f):
    """``f``: flat values; a branch-free (vectorized) test per chunk instead of ``x.flat``."""
    n = f.shape[0]
    for a in range(0, n, _CHUNK):
        bad = False
        for i in range(a, min(n, a + _CHUNK)):
            bad |= (f[i] != 0.0) & (f[i] != 1.0)
        if bad:
            return False
    return True


def is_binary(x: np.ndarray) -> bool:
    """True when every value is 0 or 1 (inputs are finite: check_input ran before)."""
    return bool(_is_binary(_flat(x)))


@njit(**_JIT)
def _finite_in(f, unit):
    n = f.shape[0]
    for a in range(0, n, _CHUNK):
        bad = False
        for i in range(a, min(n, a + _CHUNK)):
            v = f[i]
            bad |= ((v - v) != 0.0) | (unit & ((v < 0.0) | (v > 1.0)))  # v - v: NaN for inf and NaN
        if bad:
            return False
    return True


def finite_in(x: np.ndarray, unit: bool) -> bool:
    """True when every value is finite (and in [0, 1] when ``unit``)."""
    return bool(_finite_in(_flat(x), bool(unit)))


def _flat(x: np.ndarray) -> np.ndarray:
    """A 1-D view of ``x`` (a copy only when it is not C-contiguous): one compiled loop per dtype."""
    return (x if x.flags.c_contiguous else np.ascontiguousarray(x)).reshape(-1)
