"""Event-driven conv scatter of the CPU runtime (numba): each input spike adds its kept taps.

A conv layer's sum at output ``(o, y, x)`` is ``S = Σ code·x[c, iy, ix]`` over the kept taps
``(c, ky, kx)`` whose window covers the pixel, ``iy = y·sh − ph + ky·dh`` (same for x). Read
from the input side, a nonzero input ``x[c, iy, ix]`` adds ``code·x`` to every output
``(o, (iy + ph − ky·dh)/sh, (ix + pw − kx·dw)/sw)`` that is on the output grid, one per kept
tap of channel ``c``. The store (:class:`.stores_conv.ConvEventStore`) lists each input channel's kept
taps (positive binary taps first, then negative), each with its flat output offset
``o·Ho·Wo + (ph − ky·dh)·Wo + (pw − kx·dw)``: for stride 1 and an input pixel whose every
window lies inside the output (the interior), the target is ``iy·Wo + ix + offset``, with
no bounds test; border pixels and strided convs test each tap.

Cost per input row: one pass over the ``C·H·W`` inputs, plus one add per (spike, kept tap
of its channel): ``rate·C·H·W · nnz/C`` adds, against ``O·Ho·Wo·K`` for a dense conv.

Sums: binary or int8 codes over spikes accumulate integers (int32: ``|S| <= 127·K``), exact;
float codes or analog input accumulate float64, exact under the caller's certificate (the
runtime sends uncertified analog sums to :mod:`.numba_conv_checked`).

Binary weights over spikes, several steps of the same sample (``steps`` > 1): the SWAR pass
:func:`_scatter_steps` builds, per input pixel, the byte mask ``m`` of the steps (up to 8) in
which it fired and adds ``lanes[m]`` (byte ``t`` = 1 where it fired at step ``t``) with one
64-bit add per kept tap: every step's count in its own byte lane. Lanes start at 128;
a positive tap adds, a negative one subtracts, so a lane stays within ``[0, 255]`` when
every output has at most 127 positive and 128 negative kept taps (``lane_ok``), and the
step's sum is ``lane − 128``. Fewer scatters than one pass per step: a pixel that fires in
any of 8 steps is visited once.
"""

# Kernel code uses the math names O, H, W of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import numpy as np
from numba import njit

from .geometry import ConvGeometry
from .numba_base import _JIT, _opt
from .stores_conv import ConvEventStore

_LANES = np.array([sum(((m >> t) & 1) << (8 * t) for t in range(8)) for m in range(256)], dtype=np.uint64)
_BIAS128 = np.uint64(0x8080808080808080)


@njit(**_JIT)
def _border_add(acc, iy, ix, a, z, sign, v, geom, out_ch, ky, kx, codes, coded):
    """Taps ``a:z`` of one input pixel, each tested against the output grid (border, strides)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    for p in range(a, z):
        ty = iy + ph - ky[p] * dh
        tx = ix + pw - kx[p] * dw
        if ty < 0 or tx < 0 or ty % sh != 0 or tx % sw != 0:
            continue
        oy = ty // sh
        ox = tx // sw
        if oy >= Ho or ox >= Wo:
            continue
        t = (out_ch[p] * Ho + oy) * Wo + ox
        if coded:
            acc[t] += codes[p] * v
        else:
            acc[t] += sign * v


@njit(**_JIT)
def _scatter(xs, r, geom, chptr, negstart, out_ch, ky, kx, offset, codes, coded, acc):
    """Add every nonzero input of row ``r`` to ``acc`` (flat ``O·Ho·Wo``), see the module docstring."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    unit = sh == 1 and sw == 1
    y_lo, y_hi = (kh - 1) * dh - ph, Ho - 1 - ph  # interior input rows (stride 1): every tap lands
    x_lo, x_hi = (kw - 1) * dw - pw, Wo - 1 - pw
    for c in range(C):
        a, ns, z = chptr[c], negstart[c], chptr[c + 1]
        if a == z:
            continue
        for iy in range(H):
            row_in = unit and y_lo <= iy <= y_hi
            for ix in range(W):
                v = xs[r, c, iy, ix]
                if v == 0:
                    continue
                if row_in and x_lo <= ix <= x_hi:
                    base = iy * Wo + ix
                    if coded:
                        for p in range(a, z):
                            acc[base + offset[p]] += codes[p] * v
                    else:
                        for p in range(a, ns):
                            acc[base + offset[p]] += v
                        for p in range(ns, z):
                            acc[base + offset[p]] -= v
                else:
                    _border_add(acc, iy, ix, a, ns, 1, v, geom, out_ch, ky, kx, codes, coded)
                    _border_add(acc, iy, ix, ns, z, -1, v, geom, out_ch, ky, kx, codes, coded)


@njit(**_JIT)
def _finish(acc, row, out, hw, scale, has_scale, bias, has_bias):
    """``out[row, o·hw + j] = float32(acc[o·hw + j]) · scale[o] + bias[o]``."""
    O = acc.shape[0] // hw
    for o in range(O):
        s = scale[o] if has_scale else np.float32(1)
        b = bias[o] if has_bias else np.float32(0)
        for j in range(o * hw, (o + 1) * hw):
            v = np.float32(np.float64(acc[j]))
            if has_scale:
                v = v * s
            if has_bias:
                v = v + b
            out[row, j] = v


@njit(**_JIT)
def _conv_event(xs, geom, chptr, negstart, out_ch, ky, kx, offset, codes, coded, acc, scale, has_scale, bias,
                has_bias, out):
    """One scatter pass per input row."""
    hw = geom[4] * geom[5]
    for r in range(xs.shape[0]):
        acc[:] = 0
        _scatter(xs, r, geom, chptr, negstart, out_ch, ky, kx, offset, codes, coded, acc)
        _finish(acc, r, out, hw, scale, has_scale, bias, has_bias)


@njit(**_JIT)
def _conv_event_steps(xs, steps, geom, chptr, negstart, out_ch, ky, kx, offset, lanes, scale, has_scale, bias,
                      has_bias, out):
    """Binary weights, spikes, rows ``t·B + b``: up to 8 steps of a sample per scatter pass (SWAR lanes)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    B = xs.shape[0] // steps
    hw = Ho * Wo
    mask = np.zeros((1, C, H, W), np.uint8)
    acc = np.empty(O * hw, np.uint64)
    byte = np.uint64(0xFF)
    for b in range(B):
        for t0 in range(0, steps, 8):
            nt = min(8, steps - t0)
            mask[:] = 0
            for tt in range(nt):
                row = (t0 + tt) * B + b
                for c in range(C):
                    for iy in range(H):
                        for ix in range(W):
                            mask[0, c, iy, ix] |= xs[row, c, iy, ix] << tt
            acc[:] = _BIAS128
            _scatter_lanes(mask, geom, chptr, negstart, out_ch, ky, kx, offset, lanes, acc)
            for tt in range(nt):
                row = (t0 + tt) * B + b
                shift = np.uint64(8 * tt)
                for o in range(O):
                    for j in range(o * hw, (o + 1) * hw):
                        v = np.float32(np.int32((acc[j] >> shift) & byte) - np.int32(128))
                        if has_scale:
                            v = v * scale[o]
                        if has_bias:
                            v = v + bias[o]
                        out[row, j] = v


@njit(**_JIT)
def _scatter_lanes(mask, geom, chptr, negstart, out_ch, ky, kx, offset, lanes, acc):
    """:func:`_scatter` of the step masks: ``lanes[m]`` added (positive taps) or subtracted (negative)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    unit = sh == 1 and sw == 1
    y_lo, y_hi = (kh - 1) * dh - ph, Ho - 1 - ph
    x_lo, x_hi = (kw - 1) * dw - pw, Wo - 1 - pw
    for c in range(C):
        a, ns, z = chptr[c], negstart[c], chptr[c + 1]
        if a == z:
            continue
        for iy in range(H):
            row_in = unit and y_lo <= iy <= y_hi
            for ix in range(W):
                m = mask[0, c, iy, ix]
                if m == 0:
                    continue
                lv = lanes[m]
                if row_in and x_lo <= ix <= x_hi:
                    base = iy * Wo + ix
                    for p in range(a, ns):
                        acc[base + offset[p]] += lv
                    for p in range(ns, z):
                        acc[base + offset[p]] -= lv
                else:
                    for p in range(a, z):
                        ty = iy + ph - ky[p] * dh
                        tx = ix + pw - kx[p] * dw
                        if ty < 0 or tx < 0 or ty % sh != 0 or tx % sw != 0:
                            continue
                        oy = ty // sh
                        ox = tx // sw
                        if oy >= Ho or ox >= Wo:
                            continue
                        t = (out_ch[p] * Ho + oy) * Wo + ox
                        if p < ns:
                            acc[t] += lv
                        else:
                            acc[t] -= lv


@njit(**_JIT)
def _spike_list(xs, r, c, H, W, Wp, lst):
    """Padded-plane bases ``iy·Wp + ix`` of the nonzero inputs of ``xs[r, c]`` (branch-free compaction)."""
    n = 0
    for iy in range(H):
        b = iy * Wp
        for ix in range(W):
            lst[n] = np.uint64(b + ix)
            n += np.int64(xs[r, c, iy, ix] != 0)
    return n


@njit(**_JIT)
def _scatter_padded(xs, r, H, W, Wp, chptr, negstart, poff, codes, coded, lst, acc):
    """Spikes of row ``r`` into the padded accumulator, tap by tap (one output plane per inner loop).

    Indices are unsigned (``lst`` uint64): numba then emits no negative-index test per add."""
    for c in range(chptr.shape[0] - 1):
        a, ns, z = chptr[c], negstart[c], chptr[c + 1]
        if a == z:
            continue
        n = _spike_list(xs, r, c, H, W, Wp, lst)
        for p in range(a, z):
            off = np.uint64(poff[p])
            if coded:
                cv = codes[p]
                for i in range(n):
                    acc[lst[i] + off] += cv
            elif p < ns:
                for i in range(n):
                    acc[lst[i] + off] += 1
            else:
                for i in range(n):
                    acc[lst[i] + off] -= 1


@njit(**_JIT)
def _finish_padded(acc, row, out, O, Ho, Wo, Hp, Wp, ty0, tx0, scale, has_scale, bias, has_bias):
    """``out[row, o, y, x] = float32(acc[o, y + ty0, x + tx0]) · scale[o] + bias[o]``."""
    for o in range(O):
        for y in range(Ho):
            src = (o * Hp + y + ty0) * Wp + tx0
            dst = (o * Ho + y) * Wo
            for x in range(Wo):
                v = np.float32(np.float64(acc[src + x]))
                if has_scale:
                    v = v * scale[o]
                if has_bias:
                    v = v + bias[o]
                out[row, dst + x] = v


@njit(**_JIT)
def _conv_event_padded(xs, geom, padded, chptr, negstart, poff, codes, coded, acc, scale, has_scale, bias, has_bias,
                       out):
    """One scatter pass per row into the padded accumulator (stride 1, see :class:`.ConvEventStore`)."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    Hp, Wp, ty0, tx0 = padded
    lst = np.empty(H * W, np.uint64)
    for r in range(xs.shape[0]):
        acc[:] = 0
        _scatter_padded(xs, r, H, W, Wp, chptr, negstart, poff, codes, coded, lst, acc)
        _finish_padded(acc, r, out, O, Ho, Wo, Hp, Wp, ty0, tx0, scale, has_scale, bias, has_bias)


@njit(**_JIT)
def _conv_event_steps_padded(xs, steps, geom, padded, chptr, negstart, poff, lanes, scale, has_scale, bias, has_bias,
                             out):
    """:func:`_conv_event_steps` into the padded accumulator: per channel, the pixels that fired in
    any of the (up to 8) steps are listed once with their lane word, then added tap by tap."""
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    Hp, Wp, ty0, tx0 = padded
    B = xs.shape[0] // steps
    lst = np.empty(H * W, np.int64)
    lv = np.empty(H * W, np.uint64)
    acc = np.empty(O * Hp * Wp, np.uint64)
    byte = np.uint64(0xFF)
    for b in range(B):
        for t0 in range(0, steps, 8):
            nt = min(8, steps - t0)
            acc[:] = _BIAS128
            for c in range(C):
                a, ns, z = chptr[c], negstart[c], chptr[c + 1]
                if a == z:
                    continue
                n = 0
                for iy in range(H):
                    for ix in range(W):
                        m = 0
                        for tt in range(nt):
                            m |= np.int64(xs[(t0 + tt) * B + b, c, iy, ix]) << tt
                        lst[n] = iy * Wp + ix
                        lv[n] = lanes[m]
                        n += np.int64(m != 0)
                for p in range(a, ns):
                    off = poff[p]
                    for i in range(n):
                        acc[lst[i] + off] += lv[i]
                for p in range(ns, z):
                    off = poff[p]
                    for i in range(n):
                        acc[lst[i] + off] -= lv[i]
            for tt in range(nt):
                row = (t0 + tt) * B + b
                shift = np.uint64(8 * tt)
                for o in range(O):
                    for y in range(Ho):
                        src = (o * Hp + y + ty0) * Wp + tx0
                        dst = (o * Ho + y) * Wo
                        for x in range(Wo):
                            v = np.float32(np.int32((acc[src + x] >> shift) & byte) - np.int32(128))
                            if has_scale:
                                v = v * scale[o]
                            if has_bias:
                                v = v + bias[o]
                            out[row, dst + x] = v


def conv_event(x: np.ndarray, store: ConvEventStore, g: ConvGeometry, scale=None, bias=None,
               steps: int = 1) -> np.ndarray:
    """Event-driven conv: uint8 spikes (integer sums; SWAR over ``steps`` for binary weights) or
    float64 analog input; returns float32 ``(R, O, Ho, Wo)`` with scale and bias applied."""
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0], g.o, g.ho, g.wo), np.float32)
    flat = out.reshape(x.shape[0], -1)
    spikes = x.dtype == np.uint8
    binary = store.kind == "binary"
    swar = spikes and binary and steps > 1 and store.lane_ok and x.shape[0] % steps == 0
    if swar and store.padded is not None:
        _conv_event_steps_padded(x, steps, g.as_tuple(), store.padded, store.chptr, store.negstart, store.poff, _LANES,
                                 *_opt(scale), *_opt(bias), flat)
        return out
    if swar:
        _conv_event_steps(x, steps, g.as_tuple(), store.chptr, store.negstart, store.out_ch, store.ky, store.kx,
                          store.offset, _LANES, *_opt(scale), *_opt(bias), flat)
        return out
    exact_int = spikes and store.kind != "float32"
    if spikes and store.padded is not None:
        hp, wp = store.padded[:2]
        acc = np.zeros(g.o * hp * wp, np.int32 if exact_int else np.float64)
        _conv_event_padded(x, g.as_tuple(), store.padded, store.chptr, store.negstart, store.poff, store.codes,
                           not binary, acc, *_opt(scale), *_opt(bias), flat)
        return out
    acc = np.zeros(g.o * g.ho * g.wo, np.int32 if exact_int else np.float64)
    xs = x if spikes else np.asarray(x, np.float64)
    _conv_event(xs, g.as_tuple(), store.chptr, store.negstart, store.out_ch, store.ky, store.kx, store.offset,
                store.codes, not binary, acc, *_opt(scale), *_opt(bias), flat)
    return out
