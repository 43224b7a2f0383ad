"""Checked float conv of the CPU runtime (numba): analog input planes, sparse kept taps, rounded once.

For analog input (standardized features, images/255) the first conv layer's sums
``S[o, y, x] = Σ_(c,ky,kx) code · x[c, y·sh − ph + ky·dh, x·sw − pw + kx·dw]`` run over
the *kept* taps of output channel ``o`` only (a sparse-weight gather: one shifted input
plane per kept synapse, the loop over output columns vectorized). Each output pixel
accumulates in float64

    Ŝ = Σ code·x,    B̂ = Σ |code|·|x|      (every product of two float32 values is exact)

and the error-bound test of :mod:`slt_deploy.exact` decides it, with ``n`` = the number of
kept taps of ``o`` (at least the number of nonzero terms, so the bound only grows):

    E = (n+1)·2^-52·B̂ + 2^-1074;  float32(down(Ŝ − 2E)) == float32(up(Ŝ + 2E))
      =>  float32(Ŝ) is the exact sum rounded once

(:func:`_decide_plane`, the test of :func:`.numba_checked._decide`, which widens the interval a little more than the two
float64 roundings of its ends). Stride-1 convs do not accumulate ``B̂`` per output: one
plane per input row, ``box = Σ_c Σ_window |x|`` (every channel and tap, kept or not), bounds
``B̂_o ≤ max|code_o|·box·(1 + (C·kH·kW + 2)·2^-52)`` for every output channel at once (the
factor covers the float64 rounding of ``box`` in any order and the two products), and the test
runs with that larger bound; only a pixel it leaves open computes its own ``B̂``
(:func:`_conv_checked_unit`). The bound is looser, so the interval is wider, but still some
20 bits below a float32 ulp for ordinary data: the open pixels stay rare.
A sum it cannot decide (an exact cancellation to 0, a sum on a float32 midpoint) gets the
lattice certificate of :mod:`slt_deploy.exact`: its nonzero terms are multiples of ``2^g`` and
``B̂ < 2^(g+52)``, so every float64 order is exact. The sums neither test accepts are flagged;
:func:`conv_checked` recomputes exactly those, compiled (:func:`_exact_outputs`: the exact sum
of :mod:`.numba_exact` rounded once), and counts them as slow-path sums. Reassociation
(vectorization, FMA) is allowed: the bound holds for any float64 order.
"""

# Kernel code uses the math names O, H, W of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from slt_deploy import exact

from . import numba_checked as nchk
from . import numba_exact as nexact
from .geometry import ConvGeometry
from .numba_base import _JIT, lsb_exponent
from .stores import CsrStore

_FAST = dict(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})


@dataclass(frozen=True)
class ConvTaps:
    """The kept taps of a conv layer per output channel (CSR order), decoded once for the kernel:
    input channel ``c``, offsets ``dy = ky·dh − ph``, ``dx = kx·dw − pw``, the code as float64
    and its lattice exponent."""

    rowptr: np.ndarray  # int64 (O+1)
    chan: np.ndarray  # int64: absolute input channel
    dy: np.ndarray  # int64
    dx: np.ndarray  # int64
    code: np.ndarray  # float64
    grid: np.ndarray  # int64
    cmax: np.ndarray  # float64 (O,): max |code| of each output channel's kept taps (0 if none)

    @classmethod
    def of(cls, store: CsrStore, g: ConvGeometry) -> ConvTaps:
        k = store.colidx.astype(np.int64)
        o = np.repeat(np.arange(g.o), np.diff(store.rowptr))
        t = k % g.taps
        code = store.codes.astype(np.float64)
        cmax = np.zeros(g.o, np.float64)
        np.maximum.at(cmax, o, np.abs(code))
        return cls(store.rowptr.astype(np.int64), (o // g.og) * g.cg + k // g.taps, (t // g.kw) * g.dh - g.ph,
                   (t % g.kw) * g.dw - g.pw, code, exact.grid_exponent(code).astype(np.int64), cmax)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.rowptr, self.chan, self.dy, self.dx, self.code, self.grid, self.cmax)))


@njit(**_FAST)
def _accumulate(x, ax, r, c, dy, dx, cv, geom, s, b):
    """Add the kept tap (input channel ``c``, offsets ``dy``, ``dx``) with code ``cv`` to the
    planes ``s`` (Ŝ) and ``b`` (B̂)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    ca = abs(cv)
    ox_lo = 0
    while ox_lo < Wo and ox_lo * sw + dx < 0:
        ox_lo += 1
    ox_hi = Wo
    while ox_hi > ox_lo and (ox_hi - 1) * sw + dx >= W:
        ox_hi -= 1
    for oy in range(Ho):
        iy = oy * sh + dy
        if iy < 0 or iy >= H:
            continue
        if sw == 1:
            for ox in range(ox_lo, ox_hi):
                s[oy, ox] += cv * x[r, c, iy, ox + dx]
                b[oy, ox] += ca * ax[r, c, iy, ox + dx]
        else:
            for ox in range(ox_lo, ox_hi):
                ix = ox * sw + dx
                s[oy, ox] += cv * x[r, c, iy, ix]
                b[oy, ox] += ca * ax[r, c, iy, ix]


@njit(**_FAST)
def _accumulate_padded(xp, c, ty, tx, cv, s):
    """Stride 1 over the zero-padded input planes: ``Ŝ`` of every output pixel, full contiguous
    rows (1-D slices indexed from 0: no negative-index test, the loop vectorizes)."""
    Ho, Wo = s.shape
    for oy in range(Ho):
        dst = s[oy]
        src = xp[c, oy + ty, tx:tx + Wo]
        for ox in range(Wo):
            dst[ox] += cv * src[ox]


@njit(**_FAST)
def _window_abs_sums(axp, geom, plane, box):
    """Stride 1: ``box[oy, ox] = Σ_c Σ_(ky,kx) |x[c, oy + ky·dh, ox + kx·dw]|`` over the padded
    input, every channel and tap of the window (kept or not), so ``B̂_o ≤ max|code_o|·box``
    for every output channel ``o`` (:func:`_conv_checked`). Any summation order: the caller
    inflates the result by the rounding error of ``C·kH·kW`` nonnegative terms."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    plane[:, :] = 0.0
    for c in range(C):
        for y in range(plane.shape[0]):
            dst = plane[y]
            src = axp[c, y]
            for x in range(plane.shape[1]):
                dst[x] += src[x]
    box[:, :] = 0.0
    for ky in range(kh):
        for kx in range(kw):
            for oy in range(Ho):
                dst = box[oy]
                src = plane[oy + ky * dh, kx * dw:kx * dw + Wo]
                for ox in range(Wo):
                    dst[ox] += src[ox]


@njit(**_JIT)
def _pixel_abs_sum(axp, o, oy, ox, rowptr, chan, tdy, tdx, code, ph, pw):
    """``B̂ = Σ |code|·|x|`` of one output pixel over its kept taps (stride 1, padded input)."""
    b = 0.0
    for p in range(rowptr[o], rowptr[o + 1]):
        b += abs(code[p]) * axp[chan[p], oy + tdy[p] + ph, ox + tdx[p] + pw]
    return b


@njit(**_JIT)
def _input_grids(x, r, xg):
    """``xg[c, y, x]`` = exponent of the lowest set bit of ``x[r, c, y, x]`` (``v = odd · 2^e``), huge for 0."""
    C, H, W = xg.shape
    bits = x.view(np.uint64)
    for c in range(C):
        for iy in range(H):
            for ix in range(W):
                u = bits[r, c, iy, ix]
                if u & np.uint64(0x7FFFFFFFFFFFFFFF) == np.uint64(0):
                    xg[c, iy, ix] = 1 << 20
                else:
                    xg[c, iy, ix] = lsb_exponent(u)


@njit(**_JIT)
def _lattice(xg, o, oy, ox, geom, rowptr, chan, tdy, tdx, cgrid, b):
    """Lattice certificate of one output pixel: its terms sit on ``2^g`` and ``B̂ < 2^(g+52)``
    (exact in any order; covers exact cancellations and sums on a float32 midpoint).
    A product's grid is the sum of its factors' grids (odd · odd is odd)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    g = np.int64(1 << 20)
    for p in range(rowptr[o], rowptr[o + 1]):
        iy = oy * sh + tdy[p]
        ix = ox * sw + tdx[p]
        if iy < 0 or iy >= H or ix < 0 or ix >= W:
            continue
        v = xg[chan[p], iy, ix]
        if v != 1 << 20:
            g = min(g, cgrid[p] + v)
    e = g + 52
    if e >= 1024:
        return True
    return e >= -1074 and b < math.ldexp(1.0, e)


@njit(**_JIT)
def _decide_plane(s, b, bscale, n, out, flags):
    """``out = float32(s)`` and ``flags = _decide(s, b·bscale, n)`` for a whole plane, without branches
    (the same operations as :func:`.numba_checked._decide`, so the loop vectorizes)."""
    Ho, Wo = s.shape
    for oy in range(Ho):
        for ox in range(Wo):
            sv = s[oy, ox]
            bv = b[oy, ox] * bscale
            e = 2.0 * (bv * ((n + 1.0) * 2.0 ** -52) + 5e-324)
            widen = 2.0 ** -51 * (abs(sv) + e) + 5e-324
            lo = np.float32(sv - e - widen)
            hi = np.float32(sv + e + widen)
            same = (lo == hi) & (math.copysign(1.0, lo) == math.copysign(1.0, hi)) & (abs(e) < math.inf)
            out[oy, ox] = np.float32(sv)
            flags[oy, ox] = np.uint8((bv == 0.0) | same)


@njit(**_JIT)
def _flag_undecided(x, r, o, s, b_of, geom, rowptr, chan, tdy, tdx, cgrid, xg, grids, flags, ambiguous):
    """Give every pixel the plane test left undecided the lattice test (with ``b_of(oy, ox)``
    its B̂); mark the rest ambiguous. Returns (count ambiguous, input grids built)."""
    n_amb = 0
    Ho, Wo = s.shape
    for oy in range(Ho):
        for ox in range(Wo):
            ok = flags[oy, ox] != 0
            if not ok:
                if not grids:
                    _input_grids(x, r, xg)
                    grids = True
                ok = _lattice(xg, o, oy, ox, geom, rowptr, chan, tdy, tdx, cgrid, b_of[oy, ox])
            ambiguous[r, o, oy, ox] = 0 if ok else 1
            n_amb += 0 if ok else 1
    return n_amb, grids


@njit(**_JIT)
def _conv_checked_unit(x, ax, geom, rowptr, chan, tdy, tdx, code, cgrid, cmax, out, ambiguous):
    """Stride 1: ``Ŝ`` only in the hot loop; the bound ``B̂_o ≤ max|code_o|·box`` (:func:`_window_abs_sums`,
    once per input row for every output channel) decides nearly every pixel, and a pixel it
    leaves open gets its own ``B̂`` (:func:`_pixel_abs_sum`) and the full test."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    s = np.zeros((Ho, Wo), np.float64)
    bpix = np.zeros((Ho, Wo), np.float64)
    box = np.zeros((Ho, Wo), np.float64)
    xp = np.zeros((C, H + 2 * ph, W + 2 * pw), np.float64)
    axp = np.zeros((C, H + 2 * ph, W + 2 * pw), np.float64)
    plane = np.zeros((H + 2 * ph, W + 2 * pw), np.float64)
    xg = np.zeros((C, H, W), np.int64)
    flags = np.zeros((Ho, Wo), np.uint8)
    # box is a float64 sum of m = C·kH·kW nonnegative terms (any order), then two products:
    # true value <= computed · (1 + (m + 2)·2^-52)
    inflate = 1.0 + (C * kh * kw + 2) * 2.0 ** -52
    n_amb = 0
    for r in range(x.shape[0]):
        grids = False
        for c in range(C):  # padding added once per row (its terms are exact zeros)
            for iy in range(H):
                for ix in range(W):
                    xp[c, iy + ph, ix + pw] = x[r, c, iy, ix]
                    axp[c, iy + ph, ix + pw] = ax[r, c, iy, ix]
        _window_abs_sums(axp, geom, plane, box)
        for o in range(O):
            s[:, :] = 0.0
            for p in range(rowptr[o], rowptr[o + 1]):
                _accumulate_padded(xp, chan[p], tdy[p] + ph, tdx[p] + pw, code[p], s)
            n = np.float64(rowptr[o + 1] - rowptr[o])
            _decide_plane(s, box, cmax[o] * inflate, n, out[r, o], flags)
            for oy in range(Ho):
                for ox in range(Wo):
                    if flags[oy, ox] == 0:  # rare: the pixel's own B̂, then the same test
                        bv = _pixel_abs_sum(axp, o, oy, ox, rowptr, chan, tdy, tdx, code, ph, pw)
                        bpix[oy, ox] = bv
                        flags[oy, ox] = np.uint8(nchk._decide(s[oy, ox], bv, n))
                    else:
                        bpix[oy, ox] = 0.0
            k, grids = _flag_undecided(x, r, o, s, bpix, geom, rowptr, chan, tdy, tdx, cgrid, xg, grids, flags,
                                       ambiguous)
            n_amb += k
    return n_amb


@njit(**_JIT)
def _conv_checked(x, ax, geom, rowptr, chan, tdy, tdx, code, cgrid, out, ambiguous):
    """Strided convs: ``out[r, o] = float32(Ŝ)`` where a test decides it; ``ambiguous[r, o, y, x] = 1`` elsewhere."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    s = np.zeros((Ho, Wo), np.float64)
    b = np.zeros((Ho, Wo), np.float64)
    xg = np.zeros((C, H, W), np.int64)
    flags = np.zeros((Ho, Wo), np.uint8)
    n_amb = 0
    for r in range(x.shape[0]):
        grids = False
        for o in range(O):
            s[:, :] = 0.0
            b[:, :] = 0.0
            for p in range(rowptr[o], rowptr[o + 1]):
                _accumulate(x, ax, r, chan[p], tdy[p], tdx[p], code[p], geom, s, b)
            n = np.float64(rowptr[o + 1] - rowptr[o])
            _decide_plane(s, b, 1.0, n, out[r, o], flags)
            k, grids = _flag_undecided(x, r, o, s, b, geom, rowptr, chan, tdy, tdx, cgrid, xg, grids, flags,
                                       ambiguous)
            n_amb += k
    return n_amb


@njit(**_JIT)
def _exact_outputs(x, geom, rowptr, chan, dy, dx, code, amb, out):
    """The slow path, compiled: every flagged output pixel (``amb``) gets the exact sum of its
    terms rounded once (:mod:`.numba_exact`); returns how many."""
    H, W, sh, sw = geom[1], geom[2], geom[8], geom[9]
    R, O, Ho, Wo = amb.shape
    partials = np.empty(nexact.CAPACITY, np.float64)
    n_slow = 0
    for r in range(R):
        for o in range(O):
            for oy in range(Ho):
                for ox in range(Wo):
                    if amb[r, o, oy, ox] == 0:
                        continue
                    n = 0
                    for p in range(rowptr[o], rowptr[o + 1]):
                        iy = oy * sh + dy[p]
                        ix = ox * sw + dx[p]
                        if 0 <= iy < H and 0 <= ix < W:
                            t = code[p] * x[r, chan[p], iy, ix]  # a float32 times a code: exact
                            if t != 0.0:
                                n = nexact.grow(partials, n, t)
                    out[r, o, oy, ox] = nexact.round32(partials, n)
                    n_slow += 1
    return n_slow


def conv_checked(x: np.ndarray, taps: ConvTaps, g: ConvGeometry) -> np.ndarray:
    """float32 sums ``(R, O, Ho, Wo)`` of float64 input ``(R, C, H, W)``, each the exact sum rounded once.

    Undecided sums (rare) are recomputed exactly and added to
    :func:`slt_deploy.exact.fallback_count`.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], g.o, g.ho, g.wo), np.float32)
    amb = np.empty(out.shape, np.uint8)
    args = (x, np.abs(x), g.as_tuple(), taps.rowptr, taps.chan, taps.dy, taps.dx, taps.code, taps.grid)
    if g.sh == g.sw == 1:
        n = _conv_checked_unit(*args, taps.cmax, out, amb)
    else:
        n = _conv_checked(*args, out, amb)
    if n:
        exact.count_slow_path(_exact_outputs(x, g.as_tuple(), taps.rowptr, taps.chan, taps.dy, taps.dx, taps.code,
                                             amb, out))
    return out
