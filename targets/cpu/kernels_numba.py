"""Compiled kernels of the CPU runtime (``backend="numba"``): numba, cached on disk, GIL-free.

Same names and contracts as :mod:`.kernels_numpy`, with one addition: every synaptic
kernel takes the per-output ``scale`` and ``bias`` (or None) and returns the finished
float32 current ``I = float32(S)·scale + bias`` in one pass (``S`` being the exact
synaptic sum; with ``scale=None, bias=None`` it returns ``float32(S)`` for the caller's
exact fallback). Popcount and cttz are LLVM intrinsics (``llvm.ctpop`` / ``llvm.cttz``),
so the host's POPCNT / TZCNT instructions are used.
"""

# Kernel code uses the math names O, K, R, W, T, B of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .geometry import ConvGeometry
from .stores import ConvPlaneStore, CscStore, CsrStore, PlaneStore

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_EMPTY_F32 = np.zeros(1, np.float32)
_EMPTY_U64 = np.zeros((1, 1), np.uint64)
_EMPTY_U64_3 = np.zeros((1, 1, 1), np.uint64)
_EMPTY_I64 = np.zeros(1, np.int64)
_FEW_ROWS = 4  # dense planes, at most this many rows: gather row by row (vectorised bit loop)


@intrinsic
def popcnt(typingctx, x):
    """Number of set bits of a uint64 (``llvm.ctpop``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def cttz(typingctx, x):
    """Index of the lowest set bit of a nonzero uint64 (``llvm.cttz``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.cttz", [i64], ir.FunctionType(i64, [i64, ir.IntType(1)]))
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


# ============================================================================ helpers
@njit(**_JIT)
def _pack(s, out):
    """Pack uint8 spike rows ``(R, K)`` into little-endian bit words ``(R, ceil(K/64))``."""
    R, K = s.shape
    W = out.shape[1]
    for r in range(R):
        for w in range(W):
            base = w * 64
            n = min(64, K - base)
            acc = np.uint64(0)
            for j in range(n):
                acc |= np.uint64(s[r, base + j] != 0) << np.uint64(j)
            out[r, w] = acc


def pack(spikes: np.ndarray) -> np.ndarray:
    """uint8 ``(R, K)`` -> ``(R, ceil(K/64))`` uint64 (layout of :mod:`slt_deploy.bits`)."""
    r, k = spikes.shape
    out = np.empty((r, -(-k // 64)), dtype=np.uint64)
    _pack(np.ascontiguousarray(spikes), out)
    return out


@njit(**_JIT)
def _finish_row(acc, r, out, scale, has_scale, bias, has_bias):
    """``out[r, o] = float32(acc[o]) · scale[o] + bias[o]`` (two float32 roundings, in order)."""
    for o in range(acc.shape[0]):
        v = np.float32(np.float64(acc[o]))
        if has_scale:
            v = v * scale[o]
        if has_bias:
            v = v + bias[o]
        out[r, o] = v


def _opt(a: np.ndarray | None) -> tuple[np.ndarray, bool]:
    return (_EMPTY_F32, False) if a is None else (a, True)


# ============================================================================ linear
@njit(**_JIT)
def _lin_popcount(xw, neg, mask, has_mask, scale, has_scale, bias, has_bias, out):
    """Binary spikes x binary planes: ``n = popcount(kept & x) − 2·popcount(neg & x)``.

    Four input rows share each loaded weight word; without a mask every synapse is kept
    and ``popcount(kept & x)`` is the row's spike count.
    """
    R, W = xw.shape
    O = neg.shape[0]
    acc = np.zeros((4, O), np.int64)
    for r0 in range(0, R, 4):
        nr = min(4, R - r0)
        x0 = xw[r0]
        x1 = xw[r0 + 1] if nr > 1 else x0
        x2 = xw[r0 + 2] if nr > 2 else x0
        x3 = xw[r0 + 3] if nr > 3 else x0
        t0 = t1 = t2 = t3 = np.uint64(0)
        if not has_mask:
            for w in range(W):
                t0 += popcnt(x0[w])
                t1 += popcnt(x1[w])
                t2 += popcnt(x2[w])
                t3 += popcnt(x3[w])
        for o in range(O):
            n0 = n1 = n2 = n3 = np.uint64(0)
            nw = neg[o]
            for w in range(W):
                a = nw[w]
                n0 += popcnt(a & x0[w])
                n1 += popcnt(a & x1[w])
                n2 += popcnt(a & x2[w])
                n3 += popcnt(a & x3[w])
            if has_mask:
                k0 = k1 = k2 = k3 = np.uint64(0)
                mw = mask[o]
                for w in range(W):
                    m = mw[w]
                    k0 += popcnt(m & x0[w])
                    k1 += popcnt(m & x1[w])
                    k2 += popcnt(m & x2[w])
                    k3 += popcnt(m & x3[w])
                acc[0, o] = np.int64(k0) - 2 * np.int64(n0)
                acc[1, o] = np.int64(k1) - 2 * np.int64(n1)
                acc[2, o] = np.int64(k2) - 2 * np.int64(n2)
                acc[3, o] = np.int64(k3) - 2 * np.int64(n3)
            else:
                acc[0, o] = np.int64(t0) - 2 * np.int64(n0)
                acc[1, o] = np.int64(t1) - 2 * np.int64(n1)
                acc[2, o] = np.int64(t2) - 2 * np.int64(n2)
                acc[3, o] = np.int64(t3) - 2 * np.int64(n3)
        for i in range(nr):
            _finish_row(acc[i], r0 + i, out, scale, has_scale, bias, has_bias)


def lin_popcount(spikes, store: PlaneStore, scale=None, bias=None) -> np.ndarray:
    """AND + popcount over 64-bit words; returns float32 currents ``(R, O)``."""
    xw = pack(spikes)
    out = np.empty((xw.shape[0], store.shape[0]), np.float32)
    mask, has_mask = (_EMPTY_U64, False) if store.mask is None else (store.mask, True)
    _lin_popcount(xw, np.asarray(store.neg), np.asarray(mask), has_mask, *_opt(scale), *_opt(bias), out)
    return out


@njit(**_JIT)
def _lin_event_binary(xw, colptr, negstart, rowidx, scale, has_scale, bias, has_bias, out):
    """Event-driven, binary weights: each spike adds +1 / −1 to the outputs of its column."""
    R, W = xw.shape
    O = out.shape[1]
    acc = np.zeros(O, np.int32)
    for r in range(R):
        acc[:] = 0
        for w in range(W):
            b = xw[r, w]
            while b != 0:
                k = w * 64 + np.int64(cttz(b))
                b &= b - np.uint64(1)
                for p in range(colptr[k], negstart[k]):
                    acc[rowidx[p]] += 1
                for p in range(negstart[k], colptr[k + 1]):
                    acc[rowidx[p]] -= 1
        _finish_row(acc, r, out, scale, has_scale, bias, has_bias)


_LANES = np.array([sum(((m >> t) & 1) << (8 * t) for t in range(8)) for m in range(256)], dtype=np.uint64)


@njit(**_JIT)
def _lin_event_binary_steps(xw, steps, colptr, negstart, rowidx, lanes, scale, has_scale, bias, has_bias, out):
    """Event-driven over up to 8 steps at once (SWAR): rows ``t·B + b`` of one sample share a pass.

    For each input that fires in any of the steps, its column adds the byte lanes
    ``lanes[mask]`` (byte t = fired at step t) to per-output positive / negative counters,
    one 64-bit add for all steps. Needs at most 255 positive and 255 negative kept
    synapses per output (checked by the caller). Same sums as :func:`_lin_event_binary`.
    """
    R, W = xw.shape
    B = R // steps
    O = out.shape[1]
    pos = np.zeros(O, np.uint64)
    neg = np.zeros(O, np.uint64)
    acc = np.zeros(O, np.int32)
    byte = np.uint64(0xFF)
    for b in range(B):
        for t0 in range(0, steps, 8):
            nt = min(8, steps - t0)
            pos[:] = 0
            neg[:] = 0
            for w in range(W):
                any_ = np.uint64(0)
                for tt in range(nt):
                    any_ |= xw[(t0 + tt) * B + b, w]
                while any_ != 0:
                    j = cttz(any_)
                    any_ &= any_ - np.uint64(1)
                    m = 0
                    for tt in range(nt):
                        m |= np.int64((xw[(t0 + tt) * B + b, w] >> j) & np.uint64(1)) << tt
                    lv = lanes[m]
                    k = w * 64 + np.int64(j)
                    for p in range(colptr[k], negstart[k]):
                        pos[rowidx[p]] += lv
                    for p in range(negstart[k], colptr[k + 1]):
                        neg[rowidx[p]] += lv
            for tt in range(nt):
                sh = np.uint64(8 * tt)
                for o in range(O):
                    acc[o] = np.int32((pos[o] >> sh) & byte) - np.int32((neg[o] >> sh) & byte)
                _finish_row(acc, (t0 + tt) * B + b, out, scale, has_scale, bias, has_bias)


@njit(**_JIT)
def _lin_event_coded(xw, colptr, rowidx, codes, acc, scale, has_scale, bias, has_bias, out):
    """Event-driven, int8 / float codes: each spike adds its column's codes (int64 / float64)."""
    R, W = xw.shape
    for r in range(R):
        acc[:] = 0
        for w in range(W):
            b = xw[r, w]
            while b != 0:
                k = w * 64 + np.int64(cttz(b))
                b &= b - np.uint64(1)
                for p in range(colptr[k], colptr[k + 1]):
                    acc[rowidx[p]] += codes[p]
        _finish_row(acc, r, out, scale, has_scale, bias, has_bias)


@njit(**_JIT)
def _lin_event_analog(x, colptr, negstart, rowidx, codes, coded, acc, scale, has_scale, bias, has_bias, out):
    """Event-driven over analog rows: each nonzero input ``x[r, k]`` adds ``code·x`` to its column's outputs.

    float64 accumulation (exact under the certificate of :mod:`slt_deploy.exact`).
    """
    R, K = x.shape
    for r in range(R):
        acc[:] = 0.0
        for k in range(K):
            v = x[r, k]
            if v == 0.0:
                continue
            if coded:
                for p in range(colptr[k], colptr[k + 1]):
                    acc[rowidx[p]] += np.float64(codes[p]) * v
            else:
                for p in range(colptr[k], negstart[k]):
                    acc[rowidx[p]] += v
                for p in range(negstart[k], colptr[k + 1]):
                    acc[rowidx[p]] -= v
        _finish_row(acc, r, out, scale, has_scale, bias, has_bias)


def lin_event(x, store: CscStore, scale=None, bias=None, steps: int = 1) -> np.ndarray:
    """Event-driven linear layer: uint8 spikes (packed, cttz scan) or float64 analog rows.

    ``steps`` > 1: the rows are ``(steps, B)`` of the same samples (layer-major), which lets
    binary layers take the SWAR all-steps pass.
    """
    if x.dtype != np.uint8:
        out = np.empty((x.shape[0], store.shape[0]), np.float32)
        coded = store.codes is not None
        codes = store.codes if coded else _EMPTY_F32
        negstart = _EMPTY_I64 if coded else store.negstart
        _lin_event_analog(np.ascontiguousarray(x, dtype=np.float64), store.colptr, negstart, store.rowidx, codes,
                          coded, np.zeros(store.shape[0], np.float64), *_opt(scale), *_opt(bias), out)
        return out
    spikes = x
    xw = pack(spikes)
    out = np.empty((xw.shape[0], store.shape[0]), np.float32)
    if store.codes is None and steps > 1 and store.max_lane <= 255:
        _lin_event_binary_steps(xw, steps, store.colptr, store.negstart, store.rowidx, _LANES, *_opt(scale),
                                *_opt(bias), out)
    elif store.codes is None:
        _lin_event_binary(xw, store.colptr, store.negstart, store.rowidx, *_opt(scale), *_opt(bias), out)
    else:
        acc = np.zeros(store.shape[0], np.float64 if store.kind == "float32" else np.int64)
        _lin_event_coded(xw, store.colptr, store.rowidx, store.codes, acc, *_opt(scale), *_opt(bias), out)
    return out


@njit(**_JIT)
def _lin_gather_planes(xt, neg, mask, has_mask, scale, has_scale, bias, has_bias, out):
    """Analog rows x binary planes: ``Σ_pos x − Σ_neg x`` over kept bits (float64, batch-vectorised).

    Without a mask (every synapse kept) it is ``Σ x − 2·Σ_neg x``: half the bits to visit.
    ``xt`` is the input transposed, ``(K, R)``.
    """
    K, R = xt.shape
    O, W = neg.shape
    total = np.zeros(R, np.float64)
    if not has_mask:
        for k in range(K):
            for r in range(R):
                total[r] += xt[k, r]
    pos_acc = np.zeros(R, np.float64)
    neg_acc = np.zeros(R, np.float64)
    res = np.zeros(R, np.float64)
    for o in range(O):
        pos_acc[:] = 0.0
        neg_acc[:] = 0.0
        for w in range(W):
            b = neg[o, w]
            while b != 0:
                k = w * 64 + np.int64(cttz(b))
                b &= b - np.uint64(1)
                for r in range(R):
                    neg_acc[r] += xt[k, r]
            if has_mask:
                b = mask[o, w] & ~neg[o, w]
                while b != 0:
                    k = w * 64 + np.int64(cttz(b))
                    b &= b - np.uint64(1)
                    for r in range(R):
                        pos_acc[r] += xt[k, r]
        for r in range(R):
            if has_mask:
                res[r] = pos_acc[r] - neg_acc[r]
            else:
                res[r] = total[r] - 2.0 * neg_acc[r]
        for r in range(R):
            v = np.float32(res[r])
            if has_scale:
                v = v * scale[o]
            if has_bias:
                v = v + bias[o]
            out[r, o] = v


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc"})
def _lin_gather_planes_rows(x, neg, mask, has_mask, scale, has_scale, bias, has_bias, out):
    """Analog rows x binary planes, row by row: ``Σ x·kept − 2·Σ x·neg`` with 0/1 bit factors.

    For few rows (batch 1): the loop over a word's 64 bits has no branches and vectorises;
    reassociating the float64 sum is allowed because the certificate of
    :mod:`slt_deploy.exact` makes it exact in any order.
    """
    R, K = x.shape
    O, W = neg.shape
    one = np.uint64(1)
    for r in range(R):
        total = 0.0
        if not has_mask:
            for k in range(K):
                total += x[r, k]
        for o in range(O):
            sn = 0.0
            sk = 0.0
            for w in range(W):
                base = w * 64
                n = min(64, K - base)
                bn = neg[o, w]
                if has_mask:
                    bk = mask[o, w]
                    for j in range(n):
                        xv = x[r, base + j]
                        sh = np.uint64(j)
                        sn += xv * np.float64((bn >> sh) & one)
                        sk += xv * np.float64((bk >> sh) & one)
                else:
                    for j in range(n):
                        sn += x[r, base + j] * np.float64((bn >> np.uint64(j)) & one)
            res = (sk if has_mask else total) - 2.0 * sn
            v = np.float32(res)
            if has_scale:
                v = v * scale[o]
            if has_bias:
                v = v + bias[o]
            out[r, o] = v


@njit(**_JIT)
def _lin_gather_coded(xt, rowptr, colidx, codes, scale, has_scale, bias, has_bias, out):
    """Analog (or spike) rows x CSR codes: per output, Σ code·x over kept inputs (float64)."""
    K, R = xt.shape
    O = rowptr.shape[0] - 1
    acc = np.zeros(R, np.float64)
    for o in range(O):
        acc[:] = 0.0
        for p in range(rowptr[o], rowptr[o + 1]):
            c = np.float64(codes[p])
            k = colidx[p]
            for r in range(R):
                acc[r] += c * xt[k, r]
        for r in range(R):
            v = np.float32(acc[r])
            if has_scale:
                v = v * scale[o]
            if has_bias:
                v = v + bias[o]
            out[r, o] = v


def lin_gather(x, store: PlaneStore | CsrStore, scale=None, bias=None) -> np.ndarray:
    """Gather over kept synapses; ``x`` float64 ``(R, K)``; float32 currents ``(R, O)``."""
    x = np.asarray(x, np.float64)
    if isinstance(store, PlaneStore) and store.mask is None and x.shape[0] <= _FEW_ROWS:
        out = np.empty((x.shape[0], store.shape[0]), np.float32)
        mask, has_mask = (_EMPTY_U64, False) if store.mask is None else (np.asarray(store.mask), True)
        _lin_gather_planes_rows(np.ascontiguousarray(x), np.asarray(store.neg), mask, has_mask, *_opt(scale),
                                *_opt(bias), out)
        return out
    xt = np.ascontiguousarray(x.T)
    out = np.empty((xt.shape[1], store.shape[0]), np.float32)
    if isinstance(store, PlaneStore):
        mask, has_mask = (_EMPTY_U64, False) if store.mask is None else (np.asarray(store.mask), True)
        _lin_gather_planes(xt, np.asarray(store.neg), mask, has_mask, *_opt(scale), *_opt(bias), out)
    else:
        _lin_gather_coded(xt, store.rowptr, store.colidx, store.codes, *_opt(scale), *_opt(bias), out)
    return out


# ============================================================================ conv
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


# ============================================================================ neurons
@njit(**_JIT)
def _charge(cur, tt, b, beta, bias, has_bias, tau, charge, li, v):
    """Input (+ bias) and charge of one sample's neurons, in place on ``v[b]`` (float32)."""
    N = v.shape[1]
    if li or charge == 0:
        if has_bias:
            for n in range(N):
                v[b, n] = beta[n] * v[b, n] + (cur[tt, b, n] + bias[n])
        else:
            for n in range(N):
                v[b, n] = beta[n] * v[b, n] + cur[tt, b, n]
    elif charge == 1:
        for n in range(N):
            u = cur[tt, b, n] + bias[n] if has_bias else cur[tt, b, n]
            v[b, n] = v[b, n] + (u - v[b, n]) / tau[n]
    else:
        for n in range(N):
            u = cur[tt, b, n] + bias[n] if has_bias else cur[tt, b, n]
            v[b, n] = (v[b, n] - v[b, n] / tau[n]) + u


@njit(**_JIT)
def _fire(t, b, thr, ramt, reset, v, s, spikes):
    """Threshold and reset of one sample's neurons; returns the number of spikes."""
    N = v.shape[1]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    c = 0
    if reset == 2:
        for n in range(N):
            v[b, n] = v[b, n] - ramt[n] * s[b, n]
    elif reset == 4:
        for n in range(N):
            if s[b, n] > zero:
                v[b, n] = zero
    if reset == 0:
        for n in range(N):
            vv = v[b, n]
            f = vv > thr[n]
            spikes[t, b, n] = f
            c += f
            s[b, n] = one if f else zero
            v[b, n] = zero if f else vv
    elif reset == 1:
        for n in range(N):
            vv = v[b, n]
            f = vv > thr[n]
            spikes[t, b, n] = f
            c += f
            sf = one if f else zero
            s[b, n] = sf
            v[b, n] = vv - ramt[n] * sf
    else:
        for n in range(N):
            f = v[b, n] > thr[n]
            spikes[t, b, n] = f
            c += f
            s[b, n] = one if f else zero
    return c


@njit(**_JIT)
def _neuron(cur, steps, beta, thr, bias, has_bias, ramt, tau, charge, reset, li, v, s, spikes, mem, counts,
            rec, has_rec):
    """LIF / LI update of :mod:`slt_deploy.ir.neurons`, float32, one operation at a time.

    ``cur`` ``(steps or 1, B, N)``; writes ``spikes`` (uint8) or ``mem`` (LI membrane) and
    the spike count of each step; ``v``/``s`` (membrane, previous spikes) are updated.
    Variant branches sit outside the loops over neurons.
    """
    B, N = v.shape
    for t in range(steps):
        tt = 0 if cur.shape[0] == 1 else t
        c = 0
        for b in range(B):
            _charge(cur, tt, b, beta, bias, has_bias, tau, charge, li, v)
            if has_rec:  # RLIF: the recurrent current, after the leak
                rt = 0 if rec.shape[0] == 1 else t
                for n in range(N):
                    v[b, n] = v[b, n] + rec[rt, b, n]
            if li:
                for n in range(N):
                    mem[t, b, n] = v[b, n]
            else:
                c += _fire(t, b, thr, ramt, reset, v, s, spikes)
        counts[t] = c


def neuron_run(cur: np.ndarray, steps: int, p, state, rec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a LIF / LI layer for ``steps`` steps; see :func:`.kernels_numpy.neuron_run`."""
    b, n = cur.shape[1], cur.shape[2]
    counts = np.zeros(steps, np.int64)
    if p.li:
        mem = np.empty((steps, b, n), np.float32)
        spikes = np.empty((1, 1, 1), np.uint8)
    else:
        spikes = np.empty((steps, b, n), np.uint8)
        mem = np.empty((1, 1, 1), np.float32)
    bias, has_bias = _opt(p.bias)
    _neuron(cur, steps, p.beta, p.threshold, bias, has_bias, p.reset_amount, p.tau, p.charge, p.reset, p.li,
            state.v, state.s, spikes, mem, counts,
            rec if rec is not None else np.zeros((1, 1, 1), np.float32), rec is not None)
    return (mem if p.li else spikes), counts


# ============================================================================ certificate
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
            u = bits[r, k]
            e = np.int64((u >> np.uint64(52)) & np.uint64(0x7FF))
            m = u & np.uint64(0xFFFFFFFFFFFFF)
            if e == 0:
                ge = np.int64(-1074) + np.int64(cttz(m))
            else:
                ge = e - np.int64(1075) + np.int64(cttz(m | np.uint64(1 << 52)))
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
            u = bits[r, k]
            e = np.int64((u >> np.uint64(52)) & np.uint64(0x7FF))
            m = u & np.uint64(0xFFFFFFFFFFFFF)
            if e == 0:
                ge = np.int64(-1074) + np.int64(cttz(m))
            else:
                ge = e - np.int64(1075) + np.int64(cttz(m | np.uint64(1 << 52)))
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


@njit(**_JIT)
def _is_binary(x):
    for v in x.flat:
        if v != 0.0 and v != 1.0:
            return False
    return True


def is_binary(x: np.ndarray) -> bool:
    """True when every value is 0 or 1 (inputs are finite: check_input ran before)."""
    return bool(_is_binary(x))


@njit(**_JIT)
def _finite_in(x, unit):
    for v in x.flat:
        if not np.isfinite(v):
            return False
        if unit and (v < 0.0 or v > 1.0):
            return False
    return True


def finite_in(x: np.ndarray, unit: bool) -> bool:
    """True when every value is finite (and in [0, 1] when ``unit``)."""
    return bool(_finite_in(x, unit))
