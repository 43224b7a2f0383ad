"""Exact synaptic sums, rounded once: the rule of docs/semantics.md made executable.

A synaptic sum ``S = Σ_k t_k`` (``t_k = code·x`` or ``w·x``; each product of two float32
values, or of an int8 code and a float32 value, is exact in float64) must be computed
*exactly* and rounded once to the working precision. Accumulating in float64 does that
whenever no partial sum rounds, and that can be certified cheaply, independently of the
order of accumulation:

    every term is an integer multiple of 2^g  and  Σ_k |t_k| < 2^(g+53)
    =>  every partial sum, in any order or grouping, is a multiple of 2^g below 2^(g+53),
        hence a float64 number: the float64 accumulation is exact.

``g`` is bounded below by ``grid(x) + grid(w)`` where ``grid(v)`` is the exponent of the
lowest set bit of ``v`` (the product of two odd mantissas is odd), and the bound uses
``Σ|x| · max|w|`` with one bit of margin for the rounding of that estimate. Sums that are
not certified (huge exponent spans, e.g. a subnormal weight next to a normal one, or an
input of 1e-30 next to 1.0) are recomputed term by term with :func:`round_exact`, which
rounds the exact sum once (``math.fsum`` plus a midpoint correction). The certificate
holds for ordinary data (images in [0, 1], weights of similar magnitude), so the slow
path is rare.

Both the reference simulator and the CPU runtime use these helpers, so every target that
accumulates in float64 under the certificate agrees bit for bit with the reference.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "NO_GRID", "grid_exponent", "row_grid", "certified", "round_exact", "exact_matmul", "exact_sum",
]

NO_GRID = 1 << 20  # grid exponent of an all-zero set of terms (any sum of zeros is exact)


def grid_exponent(a: np.ndarray) -> np.ndarray:
    """Exponent of the lowest set bit of each value (``v = odd · 2^e``); :data:`NO_GRID` for 0."""
    a = np.asarray(a, dtype=np.float64)
    mant, exp = np.frexp(a)  # a = mant · 2^exp, 0.5 <= |mant| < 1: 53-bit integer mantissa below
    m = np.ldexp(np.abs(mant), 53).astype(np.int64)
    low = m & -m
    tz = np.frexp(low.astype(np.float64))[1] - 1  # log2 of a power of two, exact
    out = exp.astype(np.int64) - 53 + tz
    return np.where(a == 0, NO_GRID, out)


def row_grid(a: np.ndarray) -> np.ndarray:
    """Minimum grid exponent over the last axis (``NO_GRID`` for all-zero rows)."""
    g = grid_exponent(a)
    return g.min(axis=-1) if g.shape[-1] else np.full(g.shape[:-1], NO_GRID, np.int64)


def certified(bound: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """True where terms on a ``2^grid`` lattice with ``Σ|t| <= bound`` sum exactly in float64.

    ``bound`` may be a float64 estimate of ``Σ|t|`` with a small relative error: one bit of
    margin (``< 2^(grid+52)``) covers it.
    """
    bound = np.asarray(bound, dtype=np.float64)
    e = np.clip(np.asarray(grid, dtype=np.int64) + 52, -1100, 1024)
    limit = np.where(e >= 1024, np.inf, np.ldexp(1.0, np.minimum(e, 1023)))  # 0 below the float64 range
    return (bound == 0) | (bound < limit)


def round_exact(terms: np.ndarray, dtype: type = np.float32) -> np.floating:
    """The exact sum of float64 ``terms`` rounded once (nearest, ties to even) to ``dtype``.

    ``math.fsum`` gives the exact sum correctly rounded to float64; rounding that again to
    float32 can only go wrong when it lands exactly on a float32 midpoint, and then the
    sign of the exact residual decides.
    """
    t = [float(v) for v in np.asarray(terms, dtype=np.float64).ravel()]
    s = math.fsum(t)
    if dtype is np.float64 or np.dtype(dtype) == np.float64:
        return np.float64(s)
    f = np.float32(s)
    if float(f) == s:
        return f
    if float(f) < s:
        lo, hi = f, np.nextafter(f, np.float32(np.inf))
    else:
        lo, hi = np.nextafter(f, np.float32(-np.inf)), f
    if np.isinf(hi):
        mid = float(lo) + float(np.spacing(lo)) / 2.0
    elif np.isinf(lo):
        mid = float(hi) - float(np.spacing(hi)) / 2.0
    else:
        mid = (float(lo) + float(hi)) / 2.0  # adjacent float32 values: exact in float64
    if s != mid:
        return f
    r = math.fsum(t + [-s])
    if r > 0:
        return hi
    if r < 0:
        return lo
    return f


_FALLBACKS = [0]


def fallback_count() -> int:
    """How many sums so far needed the exact fallback (float64 accumulation was not certified).

    Targets that accumulate in float64 in their own order (torch, ONNX Runtime) match the
    reference exactly whenever no fallback was needed; their tests use this to tell apart the
    rare sums that span a huge exponent range.
    """
    return _FALLBACKS[0]


def exact_matmul(x: np.ndarray, w: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``x @ w.T`` with each entry the exact dot product rounded once to ``dtype``.

    ``x``: ``(R, K)``, ``w``: ``(O, K)``, both float64 holding float32 values or integer
    codes (so every product is exact in float64). BLAS accumulates; entries the
    certificate does not cover are recomputed with :func:`round_exact`.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    out = (x @ w.T).astype(dtype)
    if out.size == 0:
        return out
    bound = np.abs(x).sum(axis=1)[:, None] * np.abs(w).max(axis=1, initial=0.0)[None, :]
    ok = certified(bound, row_grid(x)[:, None] + row_grid(w)[None, :])
    _FALLBACKS[0] += int(ok.size - np.count_nonzero(ok))
    for r, o in zip(*np.nonzero(~ok), strict=True):
        out[r, o] = round_exact(x[r] * w[o], dtype)
    return out


def exact_sum(terms: np.ndarray, axis: int | tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """Exact sum of float64 ``terms`` over ``axis``, rounded once to ``dtype`` (pool windows)."""
    t = np.asarray(terms, dtype=np.float64)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % t.ndim for a in axes)
    keep = [a for a in range(t.ndim) if a not in axes]
    flat = np.transpose(t, keep + list(axes)).reshape([t.shape[a] for a in keep] + [-1])
    out = np.asarray(flat.sum(axis=-1).astype(dtype))
    ok = certified(np.abs(flat).sum(axis=-1), row_grid(flat))
    _FALLBACKS[0] += int(ok.size - np.count_nonzero(ok))
    for idx in zip(*np.nonzero(~ok), strict=True):
        out[idx] = round_exact(flat[idx], dtype)
    return out
