"""Compiled linear (fully connected) synapse kernels: popcount, event-driven and gather.

Each takes the per-output ``scale`` and ``bias`` (or None) and returns the finished float32
current ``I = float32(S)·scale + bias``; ``S`` is the exact synaptic sum (integer for spikes x
binary / int8 codes, float64 under the certificate of :mod:`slt_deploy.exact` for analog rows).
"""

# Kernel code uses the math names O, K, R, W, T, B of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import numpy as np
from numba import njit

from .numba_base import _EMPTY_F32, _EMPTY_I64, _EMPTY_U64, _FEW_ROWS, _JIT, _finish_row, _opt, cttz, pack, popcnt
from .stores import CscStore, CsrStore, PlaneStore


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
