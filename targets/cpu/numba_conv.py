"""Compiled convolution synapse kernels: event-driven scatter, gather of shifted planes, popcount.

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
from .stores import ConvPlaneStore, CscStore, CsrStore


@njit(**_JIT)
def _finish_conv(acc, r, out, scale, has_scale, bias, has_bias):
    """``acc`` ``(Ho, Wo, O)`` -> ``out[r]`` ``(O, Ho, Wo)`` float32 with scale and bias."""
    Ho, Wo, O = acc.shape
    for o in range(O):
        for y in range(Ho):
            for x in range(Wo):
                v = np.float32(np.float64(acc[y, x, o]))
                if has_scale:
                    v = v * scale[o]
                if has_bias:
                    v = v + bias[o]
                out[r, o, y, x] = v


@njit(**_JIT)
def _conv_event(xs, geom, colptr, rowidx, codes, acc, scale, has_scale, bias, has_bias, out):
    """Event-driven convolution: each nonzero input scatters ``code·x`` of its taps to the outputs it reaches.

    Input channels without kept synapses are skipped without scanning their pixels.
    """
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    cg = C // G
    taps = kh * kw
    K = cg * taps
    R = xs.shape[0]
    unit = sh == 1 and sw == 1
    for r in range(R):
        acc[:] = 0
        for c in range(C):
            g = c // cg
            base = g * K + (c - g * cg) * taps
            if colptr[base] == colptr[base + taps]:
                continue
            for iy in range(H):
                for ix in range(W):
                    v = xs[r, c, iy, ix]
                    if v == 0:
                        continue
                    for ky in range(kh):
                        ty = iy + ph - ky * dh
                        if unit:  # stride 1: no divisions
                            oy = ty
                            if oy < 0 or oy >= Ho:
                                continue
                        else:
                            if ty < 0 or ty % sh != 0:
                                continue
                            oy = ty // sh
                            if oy >= Ho:
                                continue
                        for kx in range(kw):
                            tx = ix + pw - kx * dw
                            if unit:
                                ox = tx
                                if ox < 0 or ox >= Wo:
                                    continue
                            else:
                                if tx < 0 or tx % sw != 0:
                                    continue
                                ox = tx // sw
                                if ox >= Wo:
                                    continue
                            key = base + ky * kw + kx
                            for p in range(colptr[key], colptr[key + 1]):
                                acc[oy, ox, rowidx[p]] += codes[p] * v
        _finish_conv(acc, r, out, scale, has_scale, bias, has_bias)


def conv_event(spikes, store: CscStore, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
    """Event-driven conv over uint8 spikes (integer sums) or float64 analog input."""
    out = np.empty((spikes.shape[0], g.o, g.ho, g.wo), np.float32)
    analog = spikes.dtype != np.uint8 or store.kind == "float32"
    acc = np.zeros((g.ho, g.wo, g.o), np.float64 if analog else np.int64)
    _conv_event(np.ascontiguousarray(spikes), g.as_tuple(), store.colptr, store.rowidx, store.codes, acc,
                *_opt(scale), *_opt(bias), out)
    return out


@njit(**_JIT)
def _conv_gather(x, geom, rowptr, colidx, codes, scale, has_scale, bias, has_bias, out):
    """Convolution as a sum of shifted input planes, one per kept synapse (float64)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    cg = C // G
    og = O // G
    R = x.shape[0]
    acc = np.zeros((Ho, Wo), np.float64)
    for r in range(R):
        for o in range(O):
            g = o // og
            acc[:, :] = 0.0
            for p in range(rowptr[o], rowptr[o + 1]):
                k = colidx[p]
                cl = k // (kh * kw)
                ky = (k % (kh * kw)) // kw
                kx = k % kw
                c = g * cg + cl
                cv = np.float64(codes[p])
                for oy in range(Ho):
                    iy = oy * sh - ph + ky * dh
                    if iy < 0 or iy >= H:
                        continue
                    for ox in range(Wo):
                        ix = ox * sw - pw + kx * dw
                        if ix >= 0 and ix < W:
                            acc[oy, ox] += cv * x[r, c, iy, ix]
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
