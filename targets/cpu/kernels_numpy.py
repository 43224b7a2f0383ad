"""Pure-numpy kernels of the CPU runtime (``backend="numpy"``): nothing but numpy needed.

Every synaptic kernel computes the synaptic sum ``S[r, o]`` (float64 or int64) over the
kept synapses of output ``o`` for input row ``r`` and returns the float32 current
``float32(S)·scale + bias`` (with ``scale=None, bias=None``: ``float32(S)``, which the
caller's exact fallback may correct before scaling; :mod:`.synapse`). Inputs are spike rows
(uint8 0/1, ``(R, K)``) or analog rows (float64 holding float32 values, ``(R, K)``).
With spike inputs and binary/int8 weights every sum is an integer (exact); analog and
float-weight sums are exact under the certificate of :mod:`slt_deploy.exact` in any order
of accumulation, which is why BLAS may be used here.

Same kernel names and contracts as :mod:`.kernels_numba`; the executor picks a module.
"""

from __future__ import annotations

import numpy as np

from slt_deploy import bits, exact

from .geometry import ConvGeometry
from .stores import ConvPlaneStore, CscStore, CsrStore, PlaneStore

_CHUNK_ELEMENTS = 1 << 22  # cap on temporaries (elements) per chunk


def _finish(acc: np.ndarray, scale: np.ndarray | None, bias: np.ndarray | None, axis: int = 1) -> np.ndarray:
    """``float32(acc) · scale + bias`` per output channel (``axis``), float32 throughout."""
    out = acc.astype(np.float64, copy=False).astype(np.float32)
    shape = [1] * out.ndim
    shape[axis] = -1
    if scale is not None:
        out = out * scale.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def _chunks(n: int, per_item: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    for lo in range(0, n, step):
        yield lo, min(n, lo + step)


# ----------------------------------------------------------------------------- linear
def lin_popcount(spikes: np.ndarray, store: PlaneStore, scale=None, bias=None) -> np.ndarray:
    """Binary spikes x binary planes: ``n = popcount(kept & x) − 2·popcount(neg & x)`` per row."""
    xw = bits.pack_rows(spikes)
    r, o = xw.shape[0], store.shape[0]
    out = np.empty((r, o), dtype=np.int64)
    total = bits.popcount_words(xw)[:, None] if store.mask is None else None
    for lo, hi in _chunks(r, o * xw.shape[1]):
        x = xw[lo:hi, None, :]
        neg = bits.popcount_words(x & store.neg[None])
        kept = total[lo:hi] if total is not None else bits.popcount_words(x & store.mask[None])
        out[lo:hi] = kept - 2 * neg
    return _finish(out, scale, bias)


def lin_event(x: np.ndarray, store: CscStore, scale=None, bias=None, steps: int = 1) -> np.ndarray:
    """Event-driven: for every nonzero input ``(r, k)`` add column ``k``'s ``code·x`` to ``S[r, :]``.

    ``x`` is uint8 spikes or float64 analog rows.
    """
    return _finish(_event_sum(x, store), scale, bias)


def _event_sum(spikes: np.ndarray, store: CscStore, key_offset: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Unrounded event sums; ``key_offset`` selects a group of a grouped-conv store, ``out`` accumulates."""
    r_n, o = spikes.shape[0], store.shape[0]
    acc = np.zeros(r_n * o, dtype=np.float64) if out is None else out.reshape(-1)
    rows, cols = np.nonzero(spikes)
    values = None if spikes.dtype == np.uint8 else spikes[rows, cols].astype(np.float64)
    key = cols.astype(np.int64) + key_offset
    start = store.colptr[key]
    count = store.colptr[key + 1] - start
    total = int(count.sum())
    if total:
        seg_row = np.repeat(rows.astype(np.int64), count)
        first = np.cumsum(count) - count
        pos = np.repeat(start - first, count) + np.arange(total)
        if store.codes is not None:
            codes = store.codes[pos].astype(np.float64)
        else:
            codes = np.where(pos >= np.repeat(store.negstart[key], count), -1.0, 1.0)
        if values is not None:  # analog input: code · x (exact products in float64)
            codes = codes * np.repeat(values, count)
        acc += np.bincount(seg_row * o + store.rowidx[pos].astype(np.int64), weights=codes, minlength=r_n * o)
    return acc.reshape(r_n, o)


def lin_gather(x: np.ndarray, store: PlaneStore | CsrStore, scale=None, bias=None) -> np.ndarray:
    """Per output row, the sum of code·x over its kept synapses; ``x`` float64 ``(R, K)``."""
    return _finish(_gather_sum(x, store), scale, bias)


def _gather_sum(x: np.ndarray, store: PlaneStore | CsrStore, row_lo: int = 0, row_hi: int | None = None) -> np.ndarray:
    """Unrounded sums (float64, BLAS on dense blocks) of store rows ``row_lo:row_hi``."""
    row_hi = store.shape[0] if row_hi is None else row_hi
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], row_hi - row_lo), dtype=np.float64)
    k = store.shape[1]
    for lo, hi in _chunks(row_hi - row_lo, k):
        out[:, lo:hi] = x @ store.dense_block(row_lo + lo, row_lo + hi).T
    return out


# ----------------------------------------------------------------------------- conv
def im2col(x: np.ndarray, g: ConvGeometry, group: int, pad_value: float = 0) -> np.ndarray:
    """Patches of group ``group``: ``(R·H_out·W_out, Cg·kH·kW)``, columns in (c, ky, kx) order."""
    r = x.shape[0]
    xs = x[:, group * g.cg:(group + 1) * g.cg]
    xp = np.pad(xs, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)), constant_values=pad_value)
    rows = (np.arange(g.ho) * g.sh)[:, None] + (np.arange(g.kh) * g.dh)[None, :]
    cols = (np.arange(g.wo) * g.sw)[:, None] + (np.arange(g.kw) * g.dw)[None, :]
    patches = xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (R, Cg, Ho, Wo, kh, kw)
    return np.ascontiguousarray(patches.transpose(0, 2, 3, 1, 4, 5)).reshape(r * g.ho * g.wo, g.k)


def _to_nchw(acc: np.ndarray, r: int, g: ConvGeometry) -> np.ndarray:
    """(R·Ho·Wo, O) -> (R, O, Ho, Wo)."""
    return np.ascontiguousarray(acc.reshape(r, g.ho, g.wo, -1).transpose(0, 3, 1, 2))


def _conv_gather(x: np.ndarray, store: PlaneStore | CsrStore, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
    """Convolution as per-group im2col rows times the group's dense code block (float64)."""
    r = x.shape[0]
    out = np.empty((r * g.ho * g.wo, g.o), dtype=np.float64)
    for grp in range(g.groups):
        cols = im2col(x.astype(np.float64, copy=False), g, grp)
        out[:, grp * g.og:(grp + 1) * g.og] = _gather_sum(cols, store, grp * g.og, (grp + 1) * g.og)
    return _finish(_to_nchw(out, r, g), scale, bias)


def _conv_event(spikes: np.ndarray, store: CscStore, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
    """Event-driven convolution: every spike of every patch adds its column's codes."""
    r = spikes.shape[0]
    acc = np.zeros((r * g.ho * g.wo, g.o), dtype=np.float64)
    for grp in range(g.groups):
        _event_sum(im2col(spikes, g, grp), store, key_offset=grp * g.k, out=acc)
    return _finish(_to_nchw(acc, r, g), scale, bias)


def _conv_chunked(fn):
    """Run a conv kernel over chunks of input rows so im2col temporaries stay bounded."""

    def run(x: np.ndarray, store, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
        step = max(1, _CHUNK_ELEMENTS // max(1, g.ho * g.wo * max(g.k, g.o)))
        if x.shape[0] <= step:
            return fn(x, store, g, scale, bias)
        return np.concatenate([fn(x[lo:lo + step], store, g, scale, bias) for lo in range(0, x.shape[0], step)])

    run.__doc__ = fn.__doc__
    run.__name__ = fn.__name__.lstrip("_")
    return run


def pack_channels(spikes: np.ndarray, g: ConvGeometry, group: int) -> np.ndarray:
    """Spikes ``(R, C, H, W)`` -> zero-padded per-pixel channel words ``(R, Hp, Wp, Wc)``."""
    xs = spikes[:, group * g.cg:(group + 1) * g.cg]
    xp = np.pad(xs, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    r, cg, hp, wp = xp.shape
    pix = np.ascontiguousarray(xp.transpose(0, 2, 3, 1)).reshape(r * hp * wp, cg)
    return bits.pack_rows(pix).reshape(r, hp, wp, -1)


def _conv_popcount(spikes: np.ndarray, store: ConvPlaneStore, g: ConvGeometry, scale=None, bias=None) -> np.ndarray:
    """Binary conv: per output pixel and tap, AND + popcount over 64 input channels per word."""
    r = spikes.shape[0]
    out = np.empty((r, g.o, g.ho, g.wo), dtype=np.int64)
    rows = (np.arange(g.ho) * g.sh)[:, None] + (np.arange(g.kh) * g.dh)[None, :]  # (Ho, kh)
    cols = (np.arange(g.wo) * g.sw)[:, None] + (np.arange(g.kw) * g.dw)[None, :]  # (Wo, kw)
    for grp in range(g.groups):
        xw = pack_channels(spikes, g, grp)
        wc = xw.shape[-1]
        # (R, Ho, Wo, kh, kw, Wc) -> (R·Ho·Wo, taps, Wc)
        patches = xw[:, rows[:, None, :, None], cols[None, :, None, :]].reshape(-1, g.taps, wc)
        o_lo, o_hi = grp * g.og, (grp + 1) * g.og
        neg, mask = store.neg[o_lo:o_hi], None if store.mask is None else store.mask[o_lo:o_hi]
        n_rows = patches.shape[0]
        acc = np.empty((n_rows, g.og), dtype=np.int64)
        for lo, hi in _chunks(n_rows, g.og * g.taps * wc):
            p = patches[lo:hi, None]
            nn = bits.popcount_words((p & neg[None]).reshape(hi - lo, g.og, -1))
            if mask is None:
                kept = bits.popcount_words(patches[lo:hi].reshape(hi - lo, -1))[:, None]
            else:
                kept = bits.popcount_words((p & mask[None]).reshape(hi - lo, g.og, -1))
            acc[lo:hi] = kept - 2 * nn
        out[:, o_lo:o_hi] = acc.reshape(r, g.ho, g.wo, g.og).transpose(0, 3, 1, 2)
    return _finish(out, scale, bias)


# ----------------------------------------------------------------------------- neurons
def neuron_run(cur: np.ndarray, steps: int, p, state, rec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a LIF / LI / RLIF layer for ``steps`` steps (see :mod:`.neurons` for ``p`` and ``state``).

    ``rec`` (RLIF only): the recurrent current ``(steps or 1, B, N)``, added after the leak.

    ``cur``: float32 ``(steps or 1, B, N)`` (one row block reused when static). Returns the
    outputs ``(steps, B, N)`` (uint8 spikes, or float32 membrane for LI) and the spike count
    of each step. Operation order is that of :mod:`slt_deploy.ir.neurons`.
    """
    b, n = cur.shape[1], cur.shape[2]
    out = np.empty((steps, b, n), dtype=np.float32 if p.li else np.uint8)
    counts = np.zeros(steps, dtype=np.int64)
    v, sp = state.v, state.s
    for t in range(steps):
        u = cur[0 if cur.shape[0] == 1 else t]
        current = u if p.bias is None else u + p.bias
        if p.li or p.charge == 0:
            v = p.beta * v + current
        elif p.charge == 1:
            v = v + (current - v) / p.tau
        else:
            v = (v - v / p.tau) + current
        if rec is not None:
            v = v + rec[0 if rec.shape[0] == 1 else t]
        if p.li:
            out[t] = v
            continue
        if p.reset == 2:
            v = v - p.reset_amount * sp
        elif p.reset == 4:
            v = np.where(sp > 0, np.float32(0), v)
        spk = v > p.threshold
        s = spk.astype(np.float32)
        if p.reset == 0:
            v = np.where(spk, np.float32(0), v)
        elif p.reset == 1:
            v = v - p.reset_amount * s
        sp = s
        out[t] = spk
        counts[t] = int(np.count_nonzero(spk))
    state.v, state.s = v, sp
    return out, counts


# ----------------------------------------------------------------------------- certificate
def row_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(grid, Σ|x|)`` per row of float64 ``x`` ``(R, K)`` (see :mod:`slt_deploy.exact`)."""
    return exact.row_grid(x), np.abs(x).sum(axis=1)


def rows_certified(x: np.ndarray, w_max: float, w_grid: int) -> bool:
    """True when every row's sums with weights ``|w| <= w_max`` on a ``2^w_grid`` lattice are exact."""
    grid, total = row_stats(x)
    return bool(exact.certified(total * w_max, grid + w_grid).all())


def is_binary(x: np.ndarray) -> bool:
    """True when every value is 0 or 1 (inputs are finite: check_input ran before)."""
    return bool(np.all((x == 0) | (x == 1)))


def finite_in(x: np.ndarray, unit: bool) -> bool:
    """True when every value is finite (and in [0, 1] when ``unit``)."""
    if not np.isfinite(x).all():
        return False
    return not unit or bool((x.min() >= 0) and (x.max() <= 1))


conv_gather = _conv_chunked(_conv_gather)
conv_event = _conv_chunked(_conv_event)
conv_popcount = _conv_chunked(_conv_popcount)
