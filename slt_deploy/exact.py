"""Exact synaptic sums, rounded once: the rule of docs/semantics.md made executable.

A synaptic sum ``S = Σ_k t_k`` (``t_k = code·x`` or ``w·x``; each product of two float32
values, or of an int8 code and a float32 value, is exact in float64) must be computed
*exactly* and rounded once to the working precision. Two cheap, vectorized tests let a
float64 accumulation in *any* order (BLAS, numba, a kernel's own order) stand for it:

1. **Error bound** (ordinary float data). Any float64 summation order of ``n`` exact
   terms gives ``Ŝ`` with ``|Ŝ − S| <= γ(n−1)·Σ|t_k|``, ``γ(m) = m·u/(1 − m·u)``,
   ``u = 2^-53`` (additions that underflow are exact, so the bound has no absolute term;
   an addition with an exact zero operand is exact, so ``n`` counts the nonzero terms).
   ``B̂ = Σ|t_k|`` is computed by the same kind of accumulation on ``|x|, |w|``; with
   ``E = B̂·(n+1)·2^-52 + 2^-1074`` (>= the bound, see docs/semantics.md) and
   ``lo = down(Ŝ − 2E)``, ``hi = up(Ŝ + 2E)``, the exact ``S`` lies in ``[lo, hi]``, and so
   does any other order's ``Ŝ'`` (``|Ŝ' − S| <= E``). Rounding to float32 is monotone, so
   ``round32(lo) == round32(hi)`` (bit for bit) proves ``round32(S) == round32(Ŝ) ==
   round32(Ŝ')``: :func:`unambiguous`. Hence a run with no slow-path sum is rounded
   identically by every target that accumulates in float64 in its own order (torch, ONNX
   Runtime). The bound is ~29 bits below a float32
   ulp, so only sums within ~2^-29 relative of a rounding boundary are left over.
2. **Lattice certificate** (grids such as images in multiples of 1/16, integer codes):
   every term is an integer multiple of ``2^g`` and ``Σ_k |t_k| < 2^(g+53)`` => every partial
   sum in any order is a float64 number, the accumulation is exact: :func:`certified`.
   It covers exact sums sitting on a float32 midpoint, which test 1 cannot decide.

Sums neither test accepts (the *slow path*, counted by :func:`fallback_count`) are
recomputed term by term with :func:`round_exact` (``math.fsum`` plus a midpoint
correction). The reference simulator and the CPU runtime both use these helpers, so every
target agrees bit for bit with the reference.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

__all__ = [
    "NO_GRID", "grid_exponent", "row_grid", "certified", "error_bound", "unambiguous", "round_exact",
    "exact_matmul", "exact_sum", "fallback_count", "count_slow_path", "WeightRows", "weight_rows",
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


def error_bound(abs_sum: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Upper bound on ``|Ŝ − S|`` for any float64 accumulation ``Ŝ`` of ``n`` exact terms.

    ``abs_sum`` is a float64 accumulation ``B̂`` of ``Σ|t_k|``. True error
    ``<= γ(n−1)·B <= γ(n−1)·B̂/(1 − (n−1)u)``, below ``(n+1)·2^-52·B̂`` (a factor-2 margin that
    also covers rounding this product) for ``n < 2^40``; ``2^-1074`` covers its underflow.
    """
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(abs_sum, dtype=np.float64) * ((n + 1.0) * 2.0 ** -52) + 5e-324


def unambiguous(s_hat: np.ndarray, abs_sum: np.ndarray, n: int | np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """True where ``round(Ŝ)`` to ``dtype`` (float32) provably equals the exact sum rounded once.

    ``s_hat``: float64 accumulation of ``n`` exact terms in any order; ``abs_sum``: float64
    accumulation of their absolute values. The interval ``[down(Ŝ−2E), up(Ŝ+2E)]`` holds ``S``
    and every other order's accumulation; when both ends round to the same float32 (same
    bits, so also the same signed zero), so does every point inside (rounding is monotone),
    ``S`` included. Always False for float64.
    """
    s_hat = np.asarray(s_hat, dtype=np.float64)
    if np.dtype(dtype) != np.float32:
        return np.zeros(s_hat.shape, dtype=bool)
    e = 2.0 * error_bound(abs_sum, n)
    with np.errstate(over="ignore", invalid="ignore"):
        lo = np.nextafter(s_hat - e, -np.inf).astype(np.float32)
        hi = np.nextafter(s_hat + e, np.inf).astype(np.float32)
    return (lo.view(np.uint32) == hi.view(np.uint32)) & np.isfinite(e)


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
_FALLBACKS_LOCK = threading.Lock()  # runtimes add from worker threads: += is not atomic


def fallback_count() -> int:
    """How many sums so far needed the exact fallback (float64 accumulation was not certified).

    Targets that accumulate in float64 in their own order (torch, ONNX Runtime) match the
    reference exactly whenever no fallback was needed; their tests use this to tell apart the
    rare sums that span a huge exponent range.
    """
    return _FALLBACKS[0]


def count_slow_path(n: int) -> None:
    """Add ``n`` sums a target recomputed on the exact slow path to :func:`fallback_count`."""
    with _FALLBACKS_LOCK:
        _FALLBACKS[0] += int(n)


@dataclass(frozen=True)
class WeightRows:
    """What the tests need of a weight matrix ``(O, K)``, computed once per layer:
    ``|w|``, the nonzero count and the lattice exponent of every row."""

    abs: np.ndarray
    nnz: np.ndarray
    grid: np.ndarray
    spikes_exact: bool  # every row's Σ|w| < 2^(grid+53): 0/1 rows sum exactly (lattice certificate)


def weight_rows(w: np.ndarray) -> WeightRows:
    """:class:`WeightRows` of float64 ``w`` ``(O, K)`` (codes or float32 values)."""
    w = np.asarray(w, dtype=np.float64)
    a, grid = np.abs(w), row_grid(w)
    return WeightRows(a, np.count_nonzero(w, axis=1), grid, bool(certified(a.sum(axis=1), grid).all()))


def _input_grid(x: np.ndarray) -> np.ndarray:
    """:func:`row_grid` of input rows, without the bit scan for 0/1 spike rows."""
    if np.all((x == 0.0) | (x == 1.0)):
        return np.where(x.any(axis=1), 0, NO_GRID)
    return row_grid(x)


def exact_matmul(x: np.ndarray, w: np.ndarray, dtype: type = np.float32, rows: WeightRows | None = None) -> np.ndarray:
    """``x @ w.T`` with each entry the exact dot product rounded once to ``dtype``.

    ``x``: ``(R, K)``, ``w``: ``(O, K)``, both float64 holding float32 values or integer
    codes (so every product is exact in float64); ``rows``: :func:`weight_rows` of ``w`` if
    the caller keeps it. BLAS accumulates ``Ŝ`` and ``Σ|t|``; entries neither
    :func:`unambiguous` nor :func:`certified` accepts are recomputed with :func:`round_exact`.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    s = x @ w.T
    if s.size == 0:
        return s.astype(dtype)
    wr = weight_rows(w) if rows is None else rows
    if wr.spikes_exact and np.all((x == 0.0) | (x == 1.0)):
        return s.astype(dtype)  # spike rows: terms on w's lattice, Σ|t| <= Σ|w| certified per row
    n = np.minimum(np.count_nonzero(x, axis=1)[:, None], wr.nnz[None, :])
    return _round_checked(s, lambda: np.abs(x) @ wr.abs.T, n, dtype,
                          lambda: _input_grid(x)[:, None] + wr.grid[None, :],
                          lambda r, o: x[r] * w[o])


def _round_checked(s: np.ndarray, abs_sum, n: int | np.ndarray, dtype: type, grid, terms) -> np.ndarray:
    """Round float64 sums ``s`` once; fix the entries the two tests leave (slow path).

    ``abs_sum()`` / ``grid()`` are computed only when needed; ``terms(*index)`` gives one
    sum's float64 terms for :func:`round_exact`.
    """
    with np.errstate(over="ignore"):
        out = np.asarray(s.astype(dtype))
    b = abs_sum()
    ok = (b == 0) | unambiguous(s, b, n, dtype)
    if ok.all():
        return out
    ok |= certified(b, grid())
    bad = np.nonzero(~ok)
    count_slow_path(bad[0].size)
    for idx in zip(*bad, strict=True):
        out[idx] = round_exact(terms(*idx), dtype)
    return out


def exact_sum(terms: np.ndarray, axis: int | tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """Exact sum of float64 ``terms`` over ``axis``, rounded once to ``dtype`` (pool windows)."""
    t = np.asarray(terms, dtype=np.float64)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % t.ndim for a in axes)
    keep = [a for a in range(t.ndim) if a not in axes]
    flat = np.transpose(t, keep + list(axes)).reshape([t.shape[a] for a in keep] + [-1])
    return _round_checked(flat.sum(axis=-1), lambda: np.abs(flat).sum(axis=-1), np.count_nonzero(flat, axis=-1), dtype,
                          lambda: row_grid(flat), lambda *idx: flat[idx])
