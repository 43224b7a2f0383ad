"""Checked float path of the CPU runtime (numba): sparse sums of ordinary float data, rounded once.

For analog input rows (standardized features, images/255) and float or binary weights, each
output's sum ``Ŝ = Σ code·x`` over its kept synapses is accumulated in float64 together with
``B̂ = Σ|code·x|`` and the count ``m`` of nonzero terms. The error-bound test of
:mod:`slt_deploy.exact` (docs/semantics.md) then decides, per sum:

    E = (m+1)·2^-52·B̂ + 2^-1074,   lo = down(Ŝ − 2E),  hi = up(Ŝ + 2E)
    float32(lo) == float32(hi) (same value and sign)  =>  float32(Ŝ) is the exactly rounded sum

``down``/``up`` are applied as a widening by ``2^-51·(|Ŝ| + 2E) + 2^-1074``, more than the
rounding of the two float64 operations (so this test is slightly more conservative than the
reference's, never less exact). Sums it cannot decide are flagged for the exact slow path
(:func:`slt_deploy.exact.round_exact`); the caller recomputes only those.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .stores import CsrStore

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_FEW_ROWS = 4


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
def _lin_checked_rows(x, rowptr, colidx, codes, out, ambiguous):
    """Few rows: one output at a time, the sum over its synapses vectorized (:func:`_row_sums`)."""
    n_amb = 0
    for r in range(x.shape[0]):
        for o in range(rowptr.shape[0] - 1):
            s, b, m = _row_sums(x, r, rowptr, colidx, codes, o)
            out[r, o] = np.float32(s)
            ok = _decide(s, b, m)
            ambiguous[r, o] = 0 if ok else 1
            n_amb += 0 if ok else 1
    return n_amb


@njit(**_JIT)
def _lin_checked(xt, rowptr, colidx, codes, out, ambiguous):
    """``out[r, o] = float32(Σ codes·x)`` where the bound decides it; ``ambiguous[r, o] = 1`` elsewhere.

    ``xt``: the rows transposed ``(K, R)``, so the inner loop runs over rows (vectorized).
    """
    R = xt.shape[1]
    n_out = rowptr.shape[0] - 1
    s = np.zeros(R, np.float64)
    b = np.zeros(R, np.float64)
    m = np.zeros(R, np.float64)
    n_amb = 0
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
            out[r, o] = np.float32(s[r])
            if _decide(s[r], b[r], m[r]):
                ambiguous[r, o] = 0
            else:
                ambiguous[r, o] = 1
                n_amb += 1
    return n_amb


def lin_checked(x: np.ndarray, store: CsrStore) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 sums ``(R, O)`` of float64 rows ``x`` and the ``(R, O)`` mask of undecided sums (or None)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], store.shape[0]), np.float32)
    amb = np.empty((x.shape[0], store.shape[0]), np.uint8)
    if x.shape[0] <= _FEW_ROWS:
        n = _lin_checked_rows(np.ascontiguousarray(x), store.rowptr, store.colidx, store.codes, out, amb)
    else:
        n = _lin_checked(np.ascontiguousarray(x.T), store.rowptr, store.colidx, store.codes, out, amb)
    return out, (amb.astype(bool) if n else None)
