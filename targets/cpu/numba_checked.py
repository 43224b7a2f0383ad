"""Checked float path of the CPU runtime (numba): sparse sums of ordinary float data, rounded once.

For analog input rows (standardized features, images/255) and float or binary weights, each
output's sum ``Ŝ = Σ code·x`` over its kept synapses is accumulated in float64 together with
``B̂ = Σ|code·x|`` and the count ``m`` of nonzero terms. The error-bound test of
:mod:`slt_deploy.exact` (docs/semantics.md) then decides, per sum:

    E = (m+1)·2^-52·B̂ + 2^-1074,   lo = down(Ŝ − 2E),  hi = up(Ŝ + 2E)
    float32(lo) == float32(hi) (same value and sign)  =>  float32(Ŝ) is the exactly rounded sum

``down``/``up`` are applied as a widening by ``2^-51·(|Ŝ| + 2E) + 2^-1074``, more than the
rounding of the two float64 operations (so this test is slightly more conservative than the
reference's, never less exact). Sums it cannot decide take the exact slow path in the same
compiled call (:func:`.numba_exact.row_sum32`: the exact sum of their terms rounded once,
:func:`slt_deploy.exact.round_exact` compiled); the kernels return how many did.
"""

# Kernel code uses the math names O, K, R of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import numba_exact as nexact
from .numba_base import cttz
from .stores import CsrStore

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_FEW_ROWS = 4
_BLOCK_ROWS = 64  # rows per pass of the all-rows-at-once event kernel


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _row_sums(x, r, rowptr, colidx, codes, o):
    """``(Ŝ, B̂, m)`` of output ``o`` for input row ``r``; reassociation (vectorized) is allowed
    because the error bound holds for any order of float64 accumulation (FMA included)."""
    s = 0.0
    b = 0.0
    m = 0.0
    for p in range(rowptr[o], rowptr[o + 1]):
        t = np.float64(codes[p]) * x[r, colidx[p]]
        s += t
        b += abs(t)
        m += 1.0 if t != 0.0 else 0.0
    return s, b, m


@njit(**_JIT)
def _decide(s, b, m):
    """True when the error-bound interval around ``s`` rounds to one float32 (see module doc)."""
    e = 2.0 * (b * ((m + 1.0) * 2.0 ** -52) + 5e-324)
    widen = 2.0 ** -51 * (abs(s) + e) + 5e-324
    lo = np.float32(s - e - widen)
    hi = np.float32(s + e + widen)
    return b == 0.0 or (lo == hi and math.copysign(1.0, lo) == math.copysign(1.0, hi) and math.isfinite(e))


@njit(**_JIT)
def _sum_grid(xr, rowptr, colidx, codes, o):
    """Lowest-set-bit exponent over the nonzero terms ``code·x`` of output ``o`` (``2^20`` if none)."""
    g = np.int64(1 << 20)
    for p in range(rowptr[o], rowptr[o + 1]):
        t = np.float64(codes[p]) * xr[colidx[p]]
        if t != 0.0:
            m, e = math.frexp(abs(t))  # |t| = m·2^e, 0.5 <= m < 1: 53-bit integer mantissa below
            n = np.int64(math.ldexp(m, 53))
            g = min(g, np.int64(e) - 53 + np.int64(cttz(np.uint64(n))))
    return g


@njit(**_JIT)
def _accept(s, b, m, xr, rowptr, colidx, codes, o):
    """One sum: the error bound decides it, or (exact sums on a float32 midpoint) its terms'
    lattice ``B̂ < 2^(g+52)`` makes ``Ŝ`` exact (:func:`slt_deploy.exact.certified`)."""
    if _decide(s, b, m):
        return True
    e = _sum_grid(xr, rowptr, colidx, codes, o) + 52
    if e >= 1024:
        return math.isfinite(b)
    return e >= -1074 and b < math.ldexp(1.0, e)


@njit(**_JIT)
def _lin_checked_rows(x, rowptr, colidx, codes, out):
    """Few rows: one output at a time, the sum over its synapses vectorized (:func:`_row_sums`)."""
    n_slow = 0
    for r in range(x.shape[0]):
        for o in range(rowptr.shape[0] - 1):
            s, b, m = _row_sums(x, r, rowptr, colidx, codes, o)
            if _accept(s, b, m, x[r], rowptr, colidx, codes, o):
                out[r, o] = np.float32(s)
            else:
                out[r, o] = nexact.row_sum32(x[r], rowptr, colidx, codes, o)
                n_slow += 1
    return n_slow


@njit(**_JIT)
def _lin_checked(xt, rowptr, colidx, codes, out):
    """``out[r, o] = round32(Σ codes·x)``: ``float32(Ŝ)`` where a test decides it, else the exact
    slow path; returns how many sums took it.

    ``xt``: the rows transposed ``(K, R)``, so the inner loop runs over rows (vectorized).
    """
    R = xt.shape[1]
    n_out = rowptr.shape[0] - 1
    s = np.zeros(R, np.float64)
    b = np.zeros(R, np.float64)
    m = np.zeros(R, np.float64)
    n_slow = 0
    for o in range(n_out):
        s[:] = 0.0
        b[:] = 0.0
        m[:] = 0.0
        for p in range(rowptr[o], rowptr[o + 1]):
            c = np.float64(codes[p])
            k = colidx[p]
            for r in range(R):
                t = c * xt[k, r]
                s[r] += t
                b[r] += abs(t)
                m[r] += 1.0 if t != 0.0 else 0.0
        for r in range(R):
            if _accept(s[r], b[r], m[r], xt[:, r], rowptr, colidx, codes, o):
                out[r, o] = np.float32(s[r])
            else:
                out[r, o] = nexact.row_sum32(xt[:, r], rowptr, colidx, codes, o)
                n_slow += 1
    return n_slow


def lin_checked(x: np.ndarray, store: CsrStore) -> tuple[np.ndarray, int]:
    """float32 sums ``(R, O)`` of float64 rows ``x``, each the exact sum rounded once, and how
    many of them took the exact slow path."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], store.shape[0]), np.float32)
    if x.shape[0] <= _FEW_ROWS:
        n = _lin_checked_rows(np.ascontiguousarray(x), store.rowptr, store.colidx, store.codes, out)
    else:
        n = _lin_checked(np.ascontiguousarray(x.T), store.rowptr, store.colidx, store.codes, out)
    return out, int(n)


# ============================================================================ event-driven, checked (fused chain)
# The analog first layer of a fused chain (:mod:`.chain`): CSC codes (binary: positive
# entries first, ``negstart``; int8: ``codes``) scattered by each nonzero input. Every term
# ``code·x`` is exact in float64 (a float32 value times ±1 or an int8 code), so only the
# additions round and :func:`_accept` applies per sum, ``m`` being the output's kept-synapse
# count (at least its nonzero terms: a larger, still rigorous bound); the lattice test walks
# the output's terms in the CSR copy of the weights, only for the rare sums the bound leaves.
@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _scatter_row(xr, colptr, negstart, rowidx, codes, coded, check, acc, bnd):
    """``acc[o] = Σ code·x_k`` over the row's nonzero inputs; ``bnd[o] = Σ|code·x_k|`` when ``check``."""
    acc[:] = 0.0
    bnd[:] = 0.0
    for k in range(xr.shape[0]):
        v = xr[k]
        if v == 0.0:
            continue
        a = abs(v)
        if coded:
            for p in range(colptr[k], colptr[k + 1]):
                t = np.float64(codes[p]) * v
                acc[rowidx[p]] += t
                if check:
                    bnd[rowidx[p]] += abs(t)
        elif check:
            for p in range(colptr[k], negstart[k]):
                acc[rowidx[p]] += v
                bnd[rowidx[p]] += a
            for p in range(negstart[k], colptr[k + 1]):
                acc[rowidx[p]] -= v
                bnd[rowidx[p]] += a
        else:
            for p in range(colptr[k], negstart[k]):
                acc[rowidx[p]] += v
            for p in range(negstart[k], colptr[k + 1]):
                acc[rowidx[p]] -= v


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _scatter_rows(xt, colptr, negstart, rowidx, codes, coded, check, acc, bnd):
    """Many rows at once: ``xt`` ``(K, R)``, ``acc``/``bnd`` ``(O, R)``; the inner loops run over rows."""
    K, R = xt.shape
    acc[:, :] = 0.0
    bnd[:, :] = 0.0
    for k in range(K):
        if coded:
            for p in range(colptr[k], colptr[k + 1]):
                o = rowidx[p]
                c = np.float64(codes[p])
                for r in range(R):
                    acc[o, r] += c * xt[k, r]
                if check:
                    for r in range(R):
                        bnd[o, r] += abs(c * xt[k, r])
            continue
        for p in range(colptr[k], negstart[k]):
            o = rowidx[p]
            for r in range(R):
                acc[o, r] += xt[k, r]
            if check:
                for r in range(R):
                    bnd[o, r] += abs(xt[k, r])
        for p in range(negstart[k], colptr[k + 1]):
            o = rowidx[p]
            for r in range(R):
                acc[o, r] -= xt[k, r]
            if check:
                for r in range(R):
                    bnd[o, r] += abs(xt[k, r])


@njit(**_JIT)
def _finish_checked(acc, bnd, r0, x, csr, nnz, check, scale, bias, has_bias, out):
    """``out[r0 + r, o] = round32(S)·scale[o] (+ bias[o])`` with ``round32(S) = float32(acc[o, r])``
    where :func:`_accept` decides it, else the exact slow path over the output's terms in
    ``csr`` (rowptr, colidx, codes); returns how many sums took it."""
    O, R = acc.shape
    rowptr, colidx, codes = csr
    n_slow = 0
    for o in range(O):
        for r in range(R):
            s32 = np.float32(acc[o, r])
            if check and not _accept(acc[o, r], bnd[o, r], nnz[o], x[r0 + r], rowptr, colidx, codes, o):
                s32 = nexact.row_sum32(x[r0 + r], rowptr, colidx, codes, o)
                n_slow += 1
            v = s32 * scale[o]
            if has_bias:
                v = v + bias[o]
            out[r0 + r, o] = v
    return n_slow


@njit(**_JIT)
def event_checked(x, csc, coded, csr, nnz, check, scale, bias, has_bias, out):
    """``out[r, o] = float32(Ŝ)·scale[o] (+ bias[o])`` for analog rows ``x`` ``(R, K)``.

    ``csc`` = (colptr, negstart, rowidx, codes), ``csr`` = (rowptr, colidx, codes) of the same
    weights. ``check`` False: the caller's lattice certificate covers every sum. Returns the
    number of sums neither test accepts (computed on the exact slow path, here).
    """
    R, K = x.shape
    O = out.shape[1]
    colptr, negstart, rowidx, codes = csc
    n_slow = 0
    if R <= _FEW_ROWS:
        acc, bnd = np.empty(O, np.float64), np.empty(O, np.float64)
        for r in range(R):
            _scatter_row(x[r], colptr, negstart, rowidx, codes, coded, check, acc, bnd)
            n_slow += _finish_checked(acc.reshape((O, 1)), bnd.reshape((O, 1)), r, x, csr, nnz, check, scale, bias,
                                     has_bias, out)
        return n_slow
    for r0 in range(0, R, _BLOCK_ROWS):  # blocks of rows: memory O(O·block), not O(O·R)
        r1 = min(R, r0 + _BLOCK_ROWS)
        acc, bnd = np.empty((O, r1 - r0), np.float64), np.empty((O, r1 - r0), np.float64)
        _scatter_rows(np.ascontiguousarray(x[r0:r1].T), colptr, negstart, rowidx, codes, coded, check, acc, bnd)
        n_slow += _finish_checked(acc, bnd, r0, x, csr, nnz, check, scale, bias, has_bias, out)
    return n_slow
