"""Step-packed spikes (numba): a conv and the LIF layer it feeds in one kernel.

A spike layer of a feed-forward conv net is held as *step masks*: ``masks[g, b, n]`` is one
byte whose bit ``t`` says neuron ``n`` of sample ``b`` fired at step ``8·g + t`` (``G =
ceil(T/8)`` groups). Three things get cheaper than the layer-major ``(T, B, N)`` arrays of
the graph executor:

- the SWAR conv scatter (:mod:`.numba_conv_event`) needs exactly this byte per input pixel:
  it is read once, contiguously, instead of gathered from 8 step planes; int8 / float32
  codes list the pixels that fired in the group once and take each step from that list;
- the LIF layer runs in the same kernel, block by block (about 4k neurons, a few output
  channels): the block's currents of the group's steps are filled from the sums, then the
  neuron kernels' own charge and fire loops run over the block, step by step; no
  ``(T, B, N)`` float32 current is written and read back, no ``(T, B, N)`` spike array;
- a max pool over spikes is the bytewise OR of the masks (:func:`.numba_pool.pool_spikes`).

The arithmetic is the graph executor's, operation for operation, so results are identical:
``I = float32(S)·scale[o] + bias_conv[o]`` (:func:`.numba_conv_event._finish_padded`; for
binary weights ``float32(S)`` is ``float32(lane) − 128``, exact), then the LIF update of
:mod:`.numba_neurons` in float32, one rounding per operation:

    leaky:        v ← beta·v + (I + bias)
    decay_input:  v ← v + ((I + bias) − v)/tau
    leaky_tau:    v ← (v − v/tau) + (I + bias)
    delayed resets first (subtract_delayed: v ← v − r·s; zero_delayed: v ← 0 where s);
    s ← v > thr;  zero: v ← 0 where s;  subtract: v ← v − r·s.

Spike counts per step are summed over the layer and the batch, as :func:`.numba_neurons.neuron_run` does.
"""

# Kernel code uses the math names O, H, W, T, B of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import numpy as np
from numba import njit

from . import numba_neurons as nneu
from .numba_base import _JIT

_BIAS128 = np.uint64(0x8080808080808080)
_BLOCK = 4096  # neurons per LIF block: ~100 KB of block state (L2); fewer calls than small blocks (measured)


@njit(**_JIT)
def _lif_block(cur, static, nt, v, s, beta, thr, bias, has_bias, ramt, tau, charge, reset, spk, bits, cnt):
    """``nt`` steps of a block of ``L`` neurons with :mod:`.numba_neurons`' own charge and fire loops.

    ``cur`` ``(1 or nt, 1, L)``, ``v``/``s`` ``(1, L)``, ``spk`` ``(8, 1, L)`` scratch, the
    parameters and ``bits`` ``(L,)``: C-contiguous views of the block (built from 1-D slices,
    which numba keeps contiguous, so the loops over neurons vectorize); ``bias`` is unused
    without ``has_bias``. Step-major over a block that stays in L2; ``bits[x]`` gets bit
    ``tt`` where neuron ``x`` fired at step ``tt``.
    """
    for tt in range(nt):
        nneu._charge(cur, 0 if static else tt, 0, beta, bias, has_bias, tau, charge, False, v)
        cnt[tt] += nneu._fire(tt, 0, thr, ramt, reset, v, s, spk)
    spk[nt:] = 0
    for x in range(bits.shape[0]):  # fixed shifts: the loop over neurons vectorizes
        bits[x] = (spk[0, 0, x] | (spk[1, 0, x] << 1) | (spk[2, 0, x] << 2) | (spk[3, 0, x] << 3)
                   | (spk[4, 0, x] << 4) | (spk[5, 0, x] << 5) | (spk[6, 0, x] << 6) | (spk[7, 0, x] << 7))


@njit(**_JIT)
def _lif_slices(cur, static, nt, v, s, b, j0, j1, beta, thr, bias, has_bias, ramt, tau, charge, reset, spk, bits,
                cnt):
    """:func:`_lif_block` on neurons ``j0:j1`` of sample ``b`` (``cur`` already the block's currents)."""
    L = j1 - j0
    _lif_block(cur, static, nt, v[b, j0:j1].reshape(1, L), s[b, j0:j1].reshape(1, L), beta[j0:j1], thr[j0:j1],
               bias[j0:j1] if has_bias else bias, has_bias, ramt[j0:j1], tau[j0:j1], charge, reset,
               spk[:8 * L].reshape(8, 1, L), bits, cnt)


@njit(**_JIT)
def _scatter_masks(masks, g, b, geom, Wp, chptr, negstart, poff, lanes, lst, lv, dense, acc):
    """Add every input pixel's lane word ``lanes[mask]`` to its kept taps' outputs in the padded
    accumulator (:func:`.numba_conv_event._conv_event_steps_padded`, one byte read per pixel).

    Per input channel, sparse (one add per fired pixel and tap) or dense (one vectorized add
    of the channel's whole ``H × Wp`` lane plane per tap, zero words where nothing fired),
    whichever is fewer operations: a dense word add costs about a quarter of a sparse one.
    """
    C, H, W = geom[0], geom[1], geom[2]
    span = H * Wp
    for c in range(C):
        a, ns, z = chptr[c], negstart[c], chptr[c + 1]
        if a == z:
            continue
        n = 0
        plane = masks[g, b, c * H * W:(c + 1) * H * W]
        for iy in range(H):
            row = dense[iy * Wp:iy * Wp + W]
            for ix in range(W):
                m = plane[iy * W + ix]
                word = lanes[m]
                row[ix] = word
                lst[n] = np.uint64(iy * Wp + ix)
                lv[n] = word
                n += np.int64(m != 0)
        if 4 * n > span:
            for p in range(a, z):
                dst = acc[poff[p]:poff[p] + span]
                if p < ns:
                    for q in range(span):
                        dst[q] += dense[q]
                else:
                    for q in range(span):
                        dst[q] -= dense[q]
            continue
        for p in range(a, ns):  # unsigned indices: no negative-index test in the loop
            off = np.uint64(poff[p])
            for i in range(n):
                acc[lst[i] + off] += lv[i]
        for p in range(ns, z):
            off = np.uint64(poff[p])
            for i in range(n):
                acc[lst[i] + off] -= lv[i]


@njit(**_JIT)
def _conv_lif(masks, T, geom, padded, chptr, negstart, poff, lanes, scale, cbias, has_cb, beta, thr, bias, has_bias,
              ramt, tau, charge, reset, v, s, out, counts):
    """Binary conv (stride 1, padded accumulator) over step masks, then the LIF layer (module docstring).

    ``scale`` is all ones for a layer without one; ``cbias`` (the conv's bias) is added only with ``has_cb``.
    """
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    Hp, Wp, ty0, tx0 = padded
    B = masks.shape[1]
    hw = Ho * Wo
    lst = np.empty(H * W, np.uint64)
    lv = np.empty(H * W, np.uint64)
    dense = np.zeros(H * Wp, np.uint64)  # columns W..Wp stay zero
    acc = np.empty(O * Hp * Wp + Wp, np.uint64)  # + Wp: the dense adds of a row's zero tail may run past the end
    per = max(1, _BLOCK // hw)  # output channels per LIF block
    cur_flat = np.empty(8 * per * hw, np.float32)
    spk = np.empty(8 * per * hw, np.uint8)
    cnt = np.zeros(8, np.int64)
    byte = np.uint64(0xFF)
    for b in range(B):
        for g in range(masks.shape[0]):
            t0 = 8 * g
            nt = min(8, T - t0)
            acc[:] = _BIAS128
            _scatter_masks(masks, g, b, geom, Wp, chptr, negstart, poff, lanes, lst, lv, dense, acc)
            cnt[:] = 0
            for o0 in range(0, O, per):
                o1 = min(O, o0 + per)
                L = (o1 - o0) * hw
                cur = cur_flat[:8 * L].reshape(8, 1, L)
                for o in range(o0, o1):
                    sc = scale[o]  # 1 without a scale: u·1 is u, bit for bit
                    cb = cbias[o]
                    for y in range(Ho):
                        src = (o * Hp + y + ty0) * Wp + tx0
                        dst = (o - o0) * hw + y * Wo
                        for tt in range(nt):
                            shift = np.uint64(8 * tt)
                            words = acc[src:src + Wo]  # 1-D slices: indices from 0, no negative-index test
                            row = cur_flat[tt * L + dst:tt * L + dst + Wo]
                            if has_cb:
                                for x in range(Wo):
                                    u = np.float32(np.int32((words[x] >> shift) & byte)) - np.float32(128.0)
                                    row[x] = u * sc + cb
                            else:
                                for x in range(Wo):
                                    u = np.float32(np.int32((words[x] >> shift) & byte)) - np.float32(128.0)
                                    row[x] = u * sc
                _lif_slices(cur, False, nt, v, s, b, o0 * hw, o1 * hw, beta, thr, bias, has_bias, ramt, tau,
                            charge, reset, spk, out[g, b, o0 * hw:o1 * hw], cnt)
            for tt in range(nt):
                counts[t0 + tt] += cnt[tt]


@njit(**_JIT)
def _fired_pixels(masks, g, b, geom, Wp, chptr, nz_ptr, nz_idx, nz_mask):
    """Per input channel with kept taps, the pixels that fired in any step of group ``g``:
    padded index and step mask (branch-free compaction), channel ``c`` at ``nz_ptr[c]:nz_ptr[c+1]``."""
    C, H, W = geom[0], geom[1], geom[2]
    n = 0
    for c in range(C):
        nz_ptr[c] = n
        if chptr[c] == chptr[c + 1]:
            continue
        plane = masks[g, b, c * H * W:(c + 1) * H * W]
        for iy in range(H):
            for ix in range(W):
                m = plane[iy * W + ix]
                nz_idx[n] = np.uint64(iy * Wp + ix)
                nz_mask[n] = m
                n += np.int64(m != 0)
    nz_ptr[C] = n


@njit(**_JIT)
def _scatter_step(tt, chptr, poff, codes, nz_ptr, nz_idx, nz_mask, lst, acc):
    """Coded weights (int8, float32): the spikes of step ``8·g + tt`` (bit ``tt`` of the fired
    pixels' masks, :func:`_fired_pixels`) into the padded float64 accumulator, one add of the
    tap's code per spike and kept tap (``poff`` uint64, ``codes`` float64)."""
    bit = np.uint8(1 << tt)
    for c in range(chptr.shape[0] - 1):
        a, z = chptr[c], chptr[c + 1]
        if a == z:
            continue
        n = 0
        for i in range(nz_ptr[c], nz_ptr[c + 1]):
            lst[n] = nz_idx[i]
            n += np.int64((nz_mask[i] & bit) != 0)
        for p in range(a, z):
            off = poff[p]
            cv = codes[p]
            for i in range(n):
                acc[lst[i] + off] += cv


@njit(**_JIT)
def _conv_lif_coded(masks, T, geom, padded, chptr, poff, codes, scale, cbias, has_cb, beta, thr, bias, has_bias,
                    ramt, tau, charge, reset, v, s, out, counts):
    """Int8 or float32 codes (stride 1, padded accumulator) over step masks, then the LIF layer.

    Step by step: the float64 sum ``S`` (exact: integer codes, or float rows under the
    certificate), ``I = float32(S)·scale + bias`` (scale all ones for float32 weights) into
    block-major currents ``(8, L)`` per block of output channels, then :func:`_lif_slices`.
    """
    C, H, W, O, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, G = geom
    Hp, Wp, ty0, tx0 = padded
    hw = Ho * Wo
    per = max(1, _BLOCK // hw)  # output channels per LIF block
    lst = np.empty(H * W, np.uint64)
    nz_ptr = np.empty(C + 1, np.int64)
    nz_idx = np.empty(C * H * W, np.uint64)
    nz_mask = np.empty(C * H * W, np.uint8)
    acc = np.zeros(O * Hp * Wp, np.float64)  # the fill zeroes what it reads; the border is never read
    cur = np.empty(8 * O * hw, np.float32)  # block k (channels k·per ...): 8 rows of its L neurons
    spk = np.empty(8 * per * hw, np.uint8)
    cnt = np.zeros(8, np.int64)
    for b in range(masks.shape[1]):
        for g in range(masks.shape[0]):
            t0 = 8 * g
            nt = min(8, T - t0)
            _fired_pixels(masks, g, b, geom, Wp, chptr, nz_ptr, nz_idx, nz_mask)
            for tt in range(nt):
                _scatter_step(tt, chptr, poff, codes, nz_ptr, nz_idx, nz_mask, lst, acc)
                for o in range(O):
                    j0 = (o // per) * per * hw
                    L = (min(O, (o // per + 1) * per) - (o // per) * per) * hw
                    sc, cb = scale[o], cbias[o]
                    for y in range(Ho):  # unsigned indices, no slice views: no per-row view set-up
                        src = np.uint64((o * Hp + y + ty0) * Wp + tx0)
                        dst = np.uint64(8 * j0 + tt * L + o * hw - j0 + y * Wo)
                        if has_cb:  # each sum read is zeroed for the next step (the border, never read, is not)
                            for x in range(np.uint64(Wo)):
                                cur[dst + x] = np.float32(acc[src + x]) * sc + cb
                                acc[src + x] = 0.0
                        else:
                            for x in range(np.uint64(Wo)):
                                cur[dst + x] = np.float32(acc[src + x]) * sc
                                acc[src + x] = 0.0
            cnt[:] = 0
            for o0 in range(0, O, per):
                j0, j1 = o0 * hw, min(O, o0 + per) * hw
                _lif_slices(cur[8 * j0:8 * j1].reshape(8, 1, j1 - j0), False, nt, v, s, b, j0, j1, beta, thr, bias,
                            has_bias, ramt, tau, charge, reset, spk, out[g, b, j0:j1], cnt)
            for tt in range(nt):
                counts[t0 + tt] += cnt[tt]


@njit(**_JIT)
def _lif_packed(cur, T, beta, thr, bias, has_bias, ramt, tau, charge, reset, v, s, out, counts):
    """LIF layer from float32 currents ``(1 or T, B, N)`` to step masks, in blocks of ``_BLOCK`` neurons."""
    B, N = v.shape
    static = cur.shape[0] == 1
    cnt = np.zeros(8, np.int64)
    spk = np.empty(8 * _BLOCK, np.uint8)
    rows = np.empty((8, 1, _BLOCK), np.float32)
    for b in range(B):
        for g in range(out.shape[0]):
            t0 = 8 * g
            nt = min(8, T - t0)
            cnt[:] = 0
            for j0 in range(0, N, _BLOCK):
                j1 = min(N, j0 + _BLOCK)
                L = j1 - j0
                blk = rows.reshape(-1)[:8 * L].reshape(8, 1, L)
                for tt in range(1 if static else nt):
                    blk[tt, 0, :] = cur[0 if static else t0 + tt, b, j0:j1]
                _lif_slices(blk, static, nt, v, s, b, j0, j1, beta, thr, bias, has_bias, ramt, tau, charge, reset,
                            spk, out[g, b, j0:j1], cnt)
            for tt in range(nt):
                counts[t0 + tt] += cnt[tt]


@njit(**_JIT)
def _pack(spikes, out):
    """``(T, B, N)`` uint8 0/1 -> step masks ``(G, B, N)``."""
    T = spikes.shape[0]
    out[:] = 0
    for t in range(T):
        g, sh = t // 8, t % 8
        for b in range(spikes.shape[1]):
            for n in range(spikes.shape[2]):
                out[g, b, n] |= spikes[t, b, n] << sh


@njit(**_JIT)
def _unpack(masks, out):
    """Step masks ``(G, B, N)`` -> ``(T, B, N)`` uint8 0/1."""
    T = out.shape[0]
    for t in range(T):
        g, sh = t // 8, np.uint8(t % 8)
        for b in range(out.shape[1]):
            for n in range(out.shape[2]):
                out[t, b, n] = (masks[g, b, n] >> sh) & np.uint8(1)


def groups(timesteps: int) -> int:
    """Mask bytes per neuron: ``ceil(T/8)``."""
    return (timesteps + 7) // 8


def pack(spikes: np.ndarray) -> np.ndarray:
    """uint8 0/1 spikes ``(T, B, *shape)`` -> step masks ``(G, B, N)``."""
    t, b = spikes.shape[:2]
    out = np.empty((groups(t), b, int(np.prod(spikes.shape[2:]))), np.uint8)
    _pack(np.ascontiguousarray(spikes.reshape(t, b, -1)), out)
    return out


def unpack(masks: np.ndarray, timesteps: int) -> np.ndarray:
    """Step masks ``(G, B, N)`` -> uint8 0/1 spikes ``(T, B, N)``."""
    out = np.empty((timesteps, masks.shape[1], masks.shape[2]), np.uint8)
    _unpack(masks, out)
    return out


def _params(p) -> tuple:
    """A :class:`.neurons.NeuronParams` as kernel arguments (bias absent: a one-element placeholder)."""
    has_bias = p.bias is not None
    bias = p.bias if has_bias else np.zeros(1, np.float32)
    return p.beta, p.threshold, bias, has_bias, p.reset_amount, p.tau, p.charge, p.reset


class PackedLif:
    """A LIF layer from float32 currents to step masks; arguments prepared once."""

    def __init__(self, params, n: int) -> None:
        self.args, self.n = _params(params), n

    def __call__(self, cur: np.ndarray, timesteps: int) -> tuple[np.ndarray, np.ndarray]:
        """``cur`` ``(1 or T, B, N)`` -> (step masks ``(G, B, N)``, spike counts ``(T,)``)."""
        b = cur.shape[1]
        v, s = np.zeros((b, self.n), np.float32), np.zeros((b, self.n), np.float32)
        out = np.empty((groups(timesteps), b, self.n), np.uint8)
        counts = np.zeros(timesteps, np.int64)
        _lif_packed(np.ascontiguousarray(cur, dtype=np.float32), timesteps, *self.args, v, s, out, counts)
        return out, counts


class PackedConvLif:
    """A stride-1 conv (``store.padded``) and the LIF layer it feeds, over step masks: binary
    weights in byte lanes (``store.lane_ok``), int8 / float32 codes step by step in float64
    (exact: integer sums, or float rows the certificate covers, as the caller checks)."""

    def __init__(self, store, geom, scale, bias, params, lanes: np.ndarray) -> None:
        self.n = geom.o * geom.ho * geom.wo
        scale = scale if scale is not None else np.ones(geom.o, np.float32)  # x·1 is x, bit for bit
        cbias = bias if bias is not None else np.zeros(geom.o, np.float32)
        if store.kind == "binary":
            self.kernel = _conv_lif
            weights: tuple = (store.negstart, store.poff, lanes)
        else:
            self.kernel = _conv_lif_coded
            weights = (store.poff.astype(np.uint64), store.codes.astype(np.float64))
        self.args = (geom.as_tuple(), store.padded, store.chptr, *weights, scale, cbias, bias is not None,
                     *_params(params))

    def __call__(self, masks: np.ndarray, timesteps: int) -> tuple[np.ndarray, np.ndarray]:
        """Step masks ``(G, B, C·H·W)`` -> (step masks ``(G, B, O·Ho·Wo)``, spike counts ``(T,)``)."""
        b = masks.shape[1]
        v, s = np.zeros((b, self.n), np.float32), np.zeros((b, self.n), np.float32)
        out = np.empty((masks.shape[0], b, self.n), np.uint8)
        counts = np.zeros(timesteps, np.int64)
        self.kernel(masks, timesteps, *self.args, v, s, out, counts)
        return out, counts
