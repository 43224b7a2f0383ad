"""Compiled convolution synapse kernels: gather of shifted planes, popcount (event scatter: :mod:`.numba_conv_event`).

Same contract as the linear kernels: ``out[r] = float32(S)·scale + bias`` in NCHW, with ``S``
the exact sum over kept synapses (integer for spikes, float64 for analog input).
"""

# Kernel code uses the math names O, K, R, W, T, B of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import numpy as np
from numba import njit

from .geometry import ConvGeometry
from .numba_base import _EMPTY_U64_3, _JIT, _opt, popcnt
from .stores import ConvPlaneStore, CsrStore


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _add_tap(x, r, c, dy, dx, cv, geom, acc):
    """``acc[oy, ox] += cv · x[r, c, oy·sh + dy, ox·sw + dx]`` over the pixels inside the input.

    The output columns the tap reaches are computed once, so the inner loop has no test and
    vectorizes; reassociation is allowed because the runtime calls the gather kernel only
    for sums that are exact in any order (integer sums, or the lattice certificate).
    """
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    lo = 0
    while lo < Wo and lo * sw + dx < 0:
        lo += 1
    hi = Wo
    while hi > lo and (hi - 1) * sw + dx >= W:
        hi -= 1
    for oy in range(Ho):
        iy = oy * sh + dy
        if iy < 0 or iy >= H:
            continue
        if sw == 1:
            for ox in range(lo, hi):
                acc[oy, ox] += cv * x[r, c, iy, ox + dx]
        else:
            for ox in range(lo, hi):
                acc[oy, ox] += cv * x[r, c, iy, ox * sw + dx]


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _add_tap_padded(xp, c, ty, tx, cv, acc):
    """Stride 1: ``acc[oy, ox] += cv · xp[c, oy + ty, ox + tx]`` over the whole output plane
    (``xp`` zero-padded, so every row is a full-length contiguous loop over 1-D row slices,
    indexed from 0: no negative-index test, and the loop vectorizes)."""
    Ho, Wo = acc.shape
    for oy in range(Ho):
        dst = acc[oy]
        src = xp[c, oy + ty, tx:tx + Wo]
        for ox in range(Wo):
            dst[ox] += cv * src[ox]


@njit(**_JIT)
def _conv_gather(x, geom, rowptr, colidx, codes, scale, has_scale, bias, has_bias, out):
    """Convolution as a sum of shifted input planes, one per kept synapse (float64, :func:`_add_tap`);
    the float32 finish ``float32(S)·scale + bias`` is two roundings, in order (no fast-math here)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    cg = C // G
    og = O // G
    taps = kh * kw
    acc = np.zeros((Ho, Wo), np.float64)
    unit = sh == 1 and sw == 1
    xp = np.zeros((C, H + 2 * ph, W + 2 * pw) if unit else (1, 1, 1), np.float64)
    for r in range(x.shape[0]):
        if unit:  # padding added to the input once per row (padding terms add exact zeros)
            for c in range(C):
                for iy in range(H):
                    for ix in range(W):
                        xp[c, iy + ph, ix + pw] = x[r, c, iy, ix]
        for o in range(O):
            acc[:, :] = 0.0
            for p in range(rowptr[o], rowptr[o + 1]):
                k = colidx[p]
                t = k % taps
                c = (o // og) * cg + k // taps
                if unit:
                    _add_tap_padded(xp, c, (t // kw) * dh, (t % kw) * dw, np.float64(codes[p]), acc)
                else:
                    _add_tap(x, r, c, (t // kw) * dh - ph, (t % kw) * dw - pw, np.float64(codes[p]), geom, acc)
            for oy in range(Ho):
                for ox in range(Wo):
                    v = np.float32(acc[oy, ox])
                    if has_scale:
                        v = v * scale[o]
                    if has_bias:
                        v = v + bias[o]
                    out[r, o, oy, ox] = v


def conv_gather(x, store: CsrStore, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
    out = np.empty((x.shape[0], g.o, g.ho, g.wo), np.float32)
    _conv_gather(np.ascontiguousarray(x, dtype=np.float64), g.as_tuple(), store.rowptr, store.colidx, store.codes,
                 *_opt(scale), *_opt(bias), out)
    return out


@njit(**_JIT)
def _conv_popcount(xs, geom, neg, mask, has_mask, scale, has_scale, bias, has_bias, out):
    """Binary conv: channels of a pixel packed into words; per output pixel and tap, AND + popcount."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    cg = C // G
    og = O // G
    wc = neg.shape[2]
    R = xs.shape[0]
    hp = H + 2 * ph
    wp = W + 2 * pw
    xp = np.zeros((G, hp, wp, wc), np.uint64)
    for r in range(R):
        xp[:] = 0
        for c in range(C):
            g = c // cg
            cl = c - g * cg
            word = cl >> 6
            bit = np.uint64(1) << np.uint64(cl & 63)
            for iy in range(H):
                for ix in range(W):
                    if xs[r, c, iy, ix] != 0:
                        xp[g, iy + ph, ix + pw, word] |= bit
        for o in range(O):
            g = o // og
            for oy in range(Ho):
                for ox in range(Wo):
                    n = np.uint64(0)
                    kept = np.uint64(0)
                    for ky in range(kh):
                        iy = oy * sh + ky * dh
                        for kx in range(kw):
                            ix = ox * sw + kx * dw
                            t = ky * kw + kx
                            for j in range(wc):
                                xv = xp[g, iy, ix, j]
                                n += popcnt(neg[o, t, j] & xv)
                                if has_mask:
                                    kept += popcnt(mask[o, t, j] & xv)
                                else:
                                    kept += popcnt(xv)
                    v = np.float32(np.float64(np.int64(kept) - 2 * np.int64(n)))
                    if has_scale:
                        v = v * scale[o]
                    if has_bias:
                        v = v + bias[o]
                    out[r, o, oy, ox] = v


def conv_popcount(spikes, store: ConvPlaneStore, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
    out = np.empty((spikes.shape[0], g.o, g.ho, g.wo), np.float32)
    mask, has_mask = (_EMPTY_U64_3, False) if store.mask is None else (store.mask, True)
    _conv_popcount(np.ascontiguousarray(spikes), g.as_tuple(), store.neg, mask, has_mask, *_opt(scale),
                   *_opt(bias), out)
    return out
