"""Compiled pooling over spikes (numba): MaxPool as a window OR, Sum/Avg pools as window counts.

Spikes are 0/1 (uint8), so a max-pool window is 1 when any of its inputs fired (padding never
wins: it counts as 0, below or equal to every spike), and a sum-pool window is an integer
count, exact in float32 (docs/semantics.md: sums exact, rounded once). Same results as
:func:`.ops.pool`, without building the ``(R, C, Ho, Wo, kH, kW)`` window array.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .numba_base import _JIT


@njit(**_JIT)
def _pool_u8(x, kh, kw, sh, sw, ph, pw, out):
    """``out[r, c, y, x]`` = OR (uint8 ``out``) or count (float32 ``out``) of the window at
    ``(y·sh − ph, x·sw − pw)``, one tap at a time over the output plane (no test in the
    inner loop, which vectorizes)."""
    R, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    out[:] = 0
    for ky in range(kh):
        dy = ky - ph
        for kx in range(kw):
            dx = kx - pw
            lo = 0
            while lo < Wo and lo * sw + dx < 0:
                lo += 1
            hi = Wo
            while hi > lo and (hi - 1) * sw + dx >= W:
                hi -= 1
            for r in range(R):
                for c in range(C):
                    for oy in range(Ho):
                        iy = oy * sh + dy
                        if iy < 0 or iy >= H:
                            continue
                        for ox in range(lo, hi):
                            out[r, c, oy, ox] |= x[r, c, iy, ox * sw + dx]


@njit(**_JIT)
def _count_u8(x, kh, kw, sh, sw, ph, pw, out):
    """Window counts (float32, exact: at most kH·kW), same loop order as :func:`_pool_u8`."""
    R, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    out[:] = 0
    for ky in range(kh):
        dy = ky - ph
        for kx in range(kw):
            dx = kx - pw
            lo = 0
            while lo < Wo and lo * sw + dx < 0:
                lo += 1
            hi = Wo
            while hi > lo and (hi - 1) * sw + dx >= W:
                hi -= 1
            for r in range(R):
                for c in range(C):
                    for oy in range(Ho):
                        iy = oy * sh + dy
                        if iy < 0 or iy >= H:
                            continue
                        for ox in range(lo, hi):
                            out[r, c, oy, ox] += np.float32(x[r, c, iy, ox * sw + dx])


@njit(**_JIT)
def _max2x2(x16, out):
    """2x2 windows, stride 2, no padding, even width: ``x16`` is the input viewed as uint16 pixel
    pairs, so one 16-bit OR of two rows covers a window and the loop is contiguous. The OR is
    bytewise, so step-packed masks (:mod:`.numba_packed`, bit t = step t) pool the same way."""
    R, C, H, W2 = x16.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for r in range(R):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    v = x16[r, c, 2 * oy, ox] | x16[r, c, 2 * oy + 1, ox]
                    out[r, c, oy, ox] = np.uint8((v | (v >> np.uint16(8))) & np.uint16(0xFF))


def pool_spikes(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                count: bool) -> np.ndarray:
    """uint8 spikes ``(R, C, H, W)`` -> max pool (uint8 0/1) or window counts (float32, ``count``).

    The max pool is a bytewise OR, so it pools step-packed masks too (bit t of a byte = step t).
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    r, c, h, w = x.shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.empty((r, c, ho, wo), np.float32 if count else np.uint8)
    x = np.ascontiguousarray(x)
    if not count and kh == kw == sh == sw == 2 and ph == pw == 0 and w % 2 == 0:
        _max2x2(x.view(np.uint16), out)
    else:
        (_count_u8 if count else _pool_u8)(x, kh, kw, sh, sw, ph, pw, out)
    return out
