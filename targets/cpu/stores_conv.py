"""Conv weight store of the event-driven scatter kernel (:mod:`.numba_conv_event`), numpy only.

:class:`ConvEventStore` lists each input channel's kept taps (binary: positive taps first,
then negative) with the output channel, ``ky``, ``kx``, the code and the flat output offset
``o·Ho·Wo + (ph − ky·dh)·Wo + (pw − kx·dw)``, so a spike at ``(c, iy, ix)`` in the interior
of a stride-1 conv adds to ``acc[iy·Wo + ix + offset]`` for each tap of ``c``.

``poff`` is the offset into a *padded* accumulator ``(O, Hp, Wp)``, ``Hp = H + (kH−1)·dh``,
``Wp = W + (kW−1)·dw``, in which every tap of every input pixel lands (``iy·Wp + ix + poff``,
no test at all); output ``(y, x)`` sits at ``(y + ty0, x + tx0)``, ``ty0 = (kH−1)·dh − ph``.
It applies to stride-1 convs with ``ph <= (kH−1)·dh`` and ``pw <= (kW−1)·dw`` (``padded``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import ConvGeometry
from .stores import Coo

__all__ = ["ConvEventStore"]


@dataclass
class ConvEventStore:
    """Kept taps of a conv layer grouped by input channel (see the module docstring)."""

    shape: tuple[int, int]  # (O, K)
    chptr: np.ndarray  # int64 (C+1): taps of input channel c are chptr[c]:chptr[c+1]
    negstart: np.ndarray  # int64 (C,): binary: negative taps from here; coded: = chptr[c+1]
    out_ch: np.ndarray  # int32
    ky: np.ndarray  # int32
    kx: np.ndarray  # int32
    offset: np.ndarray  # int64: o·Ho·Wo + (ph − ky·dh)·Wo + (pw − kx·dw)
    poff: np.ndarray  # int64: o·Hp·Wp + (kh−1−ky)·dh·Wp + (kw−1−kx)·dw (padded accumulator), see padded
    codes: np.ndarray  # int8 / float32 (binary: ±1, used only for analog input)
    kind: str
    lane_ok: bool  # binary: every output has <= 127 positive and <= 128 negative kept taps
    cg: int  # input channels per group
    og: int  # output channels per group
    kw: int
    taps: int
    padded: tuple[int, int, int, int] | None  # (Hp, Wp, ty0, tx0) when the padded scatter applies

    kernel_family = "conv-event"

    @classmethod
    def from_coo(cls, coo: Coo, g: ConvGeometry) -> ConvEventStore:
        o = coo.rows
        cl, tap = coo.cols // g.taps, coo.cols % g.taps
        chan = (o // g.og) * g.cg + cl
        ky, kx = tap // g.kw, tap % g.kw
        binary = coo.kind == "binary"
        neg = (coo.codes < 0) if binary else np.zeros(coo.nnz, bool)
        order = np.lexsort((o, tap, neg, chan))
        chptr = np.zeros(g.c + 1, np.int64)
        np.cumsum(np.bincount(chan, minlength=g.c), out=chptr[1:])
        negstart = chptr[:-1] + np.bincount(chan[~neg], minlength=g.c)
        offset = o * (g.ho * g.wo) + (g.ph - ky * g.dh) * g.wo + (g.pw - kx * g.dw)
        padded = None
        ty0, tx0 = (g.kh - 1) * g.dh - g.ph, (g.kw - 1) * g.dw - g.pw
        hp, wp = g.h + (g.kh - 1) * g.dh, g.w + (g.kw - 1) * g.dw
        if g.sh == g.sw == 1 and ty0 >= 0 and tx0 >= 0:
            padded = (hp, wp, ty0, tx0)
        poff = o * (hp * wp) + (g.kh - 1 - ky) * g.dh * wp + (g.kw - 1 - kx) * g.dw
        lane_ok = binary and int(np.bincount(o[~neg], minlength=1).max(initial=0)) <= 127 \
            and int(np.bincount(o[neg], minlength=1).max(initial=0)) <= 128
        return cls(coo.shape, chptr, negstart.astype(np.int64), o[order].astype(np.int32), ky[order].astype(np.int32),
                   kx[order].astype(np.int32), offset[order].astype(np.int64), poff[order].astype(np.int64),
                   np.ascontiguousarray(coo.codes[order]), coo.kind, lane_ok, g.cg, g.og, g.kw, g.taps, padded)

    @property
    def nbytes(self) -> int:
        arrays = (self.chptr, self.negstart, self.out_ch, self.ky, self.kx, self.offset, self.poff, self.codes)
        return int(sum(a.nbytes for a in arrays))

    def to_coo(self) -> Coo:
        c = np.repeat(np.arange(self.chptr.size - 1), np.diff(self.chptr))
        o = self.out_ch.astype(np.int64)
        k = (c - (o // self.og) * self.cg) * self.taps + self.ky.astype(np.int64) * self.kw + self.kx
        order = np.lexsort((k, o))
        return Coo(self.shape, o[order], k[order], self.codes[order], self.kind)
