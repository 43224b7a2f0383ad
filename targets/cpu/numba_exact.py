"""Compiled exact slow path: the exact sum of float64 terms rounded once to float32.

The error-bound and lattice tests (docs/semantics.md) accept almost every float64 sum; the
few they leave (within ~2^-29 of a float32 rounding boundary, off every lattice) are
recomputed here, inside the compiled kernels, instead of in a Python loop per output.

**Exact sum** (Shewchuk's expansion, the algorithm of ``math.fsum``). A list of *partials*
``p_0, …, p_{n-1}`` holds the running sum exactly: ``S = Σ p_i`` with the partials
non-overlapping and increasing in magnitude. Adding a term ``x`` walks the list with the
error-free two-sum

    hi = x + p,   lo = p − (hi − x)        (|x| ≥ |p|:  x + p = hi + lo exactly)

keeping every nonzero ``lo`` and carrying ``hi``; the last ``hi`` becomes the top partial.
Non-overlapping float64 partials span at most the 2,098 bits of the float64 range, so there
are never more than 40 of them (the buffer holds :data:`CAPACITY`).

**Rounding once.** ``s = round64(S)`` is computed from the partials as ``math.fsum`` does
(top down, with the half-way correction). ``round32(s)`` equals ``round32(S)`` unless ``s`` is
exactly a float32 midpoint (float32 midpoints are float64 values and rounding is monotone,
so ``S`` and ``s`` lie on the same side of every other midpoint); then the sign of the
residual ``S − s`` (the top nonzero partial of the expansion of ``S − s``) picks the side,
and a zero residual keeps ties-to-even. This is :func:`slt_deploy.exact.round_exact`, the
Python definition the reference uses, compiled; the property tests compare the two.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True, boundscheck=False)
CAPACITY = 64  # > the 40 non-overlapping float64 partials any finite sum can need


@njit(**_JIT)
def grow(partials, n, x):
    """Add ``x`` to the expansion ``partials[:n]``; returns its new length (at most ``n + 1``)."""
    i = 0
    for j in range(n):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    partials[i] = x
    return i + 1


@njit(**_JIT)
def nearest64(partials, n):
    """``round64(Σ partials[:n])``, nearest with ties to even (the last step of ``math.fsum``)."""
    if n == 0:
        return 0.0
    n -= 1
    hi = partials[n]
    lo = 0.0
    while n > 0:
        x = hi
        n -= 1
        y = partials[n]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    # Σ of the partials below lo has lo's sign: the exact sum lies beyond the half-way point
    if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


@njit(**_JIT)
def _residual_sign(partials, n, s):
    """The sign (-1, 0, 1) of ``Σ partials[:n] − s``; overwrites the partials."""
    n = grow(partials, n, -s)
    for i in range(n - 1, -1, -1):
        if partials[i] > 0.0:
            return 1
        if partials[i] < 0.0:
            return -1
    return 0


@njit(**_JIT)
def round32(partials, n):
    """The exact sum ``Σ partials[:n]`` rounded once to float32 (nearest, ties to even)."""
    s = nearest64(partials, n)
    f = np.float32(s)
    if np.float64(f) == s:
        return f
    if np.float64(f) < s:
        lo, hi = f, np.nextafter(f, np.float32(np.inf))
    else:
        lo, hi = np.nextafter(f, np.float32(-np.inf)), f
    if math.isinf(hi):
        mid = np.float64(lo) + np.float64(np.spacing(lo)) / 2.0
    elif math.isinf(lo):
        mid = np.float64(hi) - np.float64(np.spacing(hi)) / 2.0
    else:
        mid = (np.float64(lo) + np.float64(hi)) / 2.0  # adjacent float32 values: exact in float64
    if s != mid:
        return f
    sign = _residual_sign(partials, n, s)
    if sign > 0:
        return hi
    if sign < 0:
        return lo
    return f


@njit(**_JIT)
def sum32(terms):
    """The exact sum of the finite float64 ``terms`` rounded once to float32."""
    partials = np.empty(CAPACITY, np.float64)
    n = 0
    for t in terms:
        if t != 0.0:
            n = grow(partials, n, t)
    return round32(partials, n)


@njit(**_JIT)
def row_sum32(xr, rowptr, colidx, codes, o):
    """``round32(Σ code·x)`` over output ``o``'s synapses in CSR (``xr``: one float64 input row)."""
    partials = np.empty(CAPACITY, np.float64)
    n = 0
    for p in range(rowptr[o], rowptr[o + 1]):
        t = np.float64(codes[p]) * xr[colidx[p]]  # a float32 times a code: exact in float64
        if t != 0.0:
            n = grow(partials, n, t)
    return round32(partials, n)
