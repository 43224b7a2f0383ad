"""Weight representations held by the CPU runtime, one per kernel family.

Every store describes the same matrix: a synapse layer viewed as ``(O, K)`` (Linear
``(out, in)``; Conv2d ``(C_out, C_in/groups · kH · kW)``, columns in C order
``(c, ky, kx)``) of integer codes (binary ±1, int8 ``q``) or float32 values, plus the per
output-channel scale. Bit layouts are those of :mod:`slt_deploy.bits` (little-endian
uint64 words, bit ``j`` of a row in word ``j // 64``, rows padded to a fresh word).

=================  =========================================  ==========================
store              arrays                                     used by
=================  =========================================  ==========================
``PlaneStore``     ``neg`` (O, W) and ``mask`` (O, W) or None  popcount, gather (binary)
                   (None: every synapse kept, 1 bit/synapse)
``CscStore``       ``colptr`` (K'+1), ``rowidx``, codes or     event
                   the split ``negstart`` (binary)
``CsrStore``       ``rowptr`` (O+1), ``colidx``, ``codes``     gather (int8 / float32)
``ConvPlaneStore`` ``neg``, ``mask`` (C_out, kH·kW, Wc) with   conv popcount
                   the input channels of a tap packed
=================  =========================================  ==========================

A store can be rebuilt from another through :class:`Coo` (``to_coo`` / ``from_coo``), so
the runtime keeps only the representation its chosen kernel needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slt_deploy import bits
from slt_deploy.ir.weights import BinaryWeights, FloatWeights, Int8Weights, Weights

__all__ = ["Coo", "PlaneStore", "CscStore", "CsrStore", "ConvPlaneStore", "index_dtype"]


def index_dtype(n: int) -> np.dtype:
    """uint16 indices when they fit (half the bytes of int32), else int32."""
    return np.dtype(np.uint16) if n <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


@dataclass
class Coo:
    """Transient canonical form: kept synapses of an ``(O, K)`` matrix in row-major order."""

    shape: tuple[int, int]
    rows: np.ndarray  # int64, sorted (row-major order)
    cols: np.ndarray  # int64
    codes: np.ndarray  # int8 (binary ±1 / int8 q) or float32 values
    kind: str  # binary | int8 | float32

    @classmethod
    def from_weights(cls, w: Weights) -> Coo:
        o = int(w.mask.shape[0])
        mask = w.mask.reshape(o, -1)
        rows, cols = np.nonzero(mask)
        if isinstance(w, FloatWeights):
            codes = w.values.reshape(o, -1)[rows, cols].astype(np.float32)
        elif isinstance(w, Int8Weights):
            codes = w.q.reshape(o, -1)[rows, cols].astype(np.int8)
        else:
            codes = np.where(w.negative.reshape(o, -1)[rows, cols], -1, 1).astype(np.int8)
        return cls((o, int(mask.shape[1])), rows.astype(np.int64), cols.astype(np.int64), codes, w.kind)

    @property
    def nnz(self) -> int:
        return int(self.rows.size)


def weight_scale(w: Weights) -> np.ndarray | None:
    """Per-output-channel float32 scale (α or int8 scale), None for float weights."""
    if isinstance(w, (BinaryWeights, Int8Weights)):
        return np.ascontiguousarray(w.channel_scale(), dtype=np.float32)
    return None


def _row_ptr(keys: np.ndarray, n: int) -> np.ndarray:
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=ptr[1:])
    return ptr


# ---------------------------------------------------------------------- bit planes
@dataclass
class PlaneStore:
    """Binary weights as bit planes: ``neg`` (kept and negative) and ``mask`` (kept).

    Positive kept synapses are ``mask & ~neg``; with ``mask is None`` every synapse is kept
    and only ``neg`` is stored. ``lastmask`` clears the padding bits of a row's last word.
    """

    shape: tuple[int, int]
    neg: np.ndarray
    mask: np.ndarray | None
    mapped: bool = False  # arrays are (partly) views of a memory-mapped .slt file

    kernel_family = "planes"

    @classmethod
    def from_coo(cls, coo: Coo) -> PlaneStore:
        if coo.kind != "binary":
            raise ValueError("bit planes hold binary weights only")
        o, k = coo.shape
        keep = np.zeros((o, k), dtype=bool)
        keep[coo.rows, coo.cols] = True
        neg = np.zeros((o, k), dtype=bool)
        neg[coo.rows, coo.cols] = coo.codes < 0
        mask = None if coo.nnz == o * k else bits.pack_rows(keep)
        return cls((o, k), bits.pack_rows(neg), mask)

    @property
    def words(self) -> int:
        return bits.words_per_row(self.shape[1])

    @property
    def lastmask(self) -> np.uint64:
        r = self.shape[1] % 64
        return np.uint64((1 << r) - 1 if r else (1 << 64) - 1)

    @property
    def nbytes(self) -> int:
        """Bytes in anonymous memory (memory-mapped planes are counted by ``mapped_bytes``)."""
        return int(sum(a.nbytes for a in (self.neg, self.mask) if a is not None and not isinstance(a, np.memmap)))

    @property
    def mapped_bytes(self) -> int:
        return int(sum(a.nbytes for a in (self.neg, self.mask) if isinstance(a, np.memmap)))

    def dense_mask(self) -> np.ndarray:
        o, k = self.shape
        if self.mask is None:
            return np.ones((o, k), dtype=bool)
        return bits.unpack_rows(self.mask, k, strict=False)

    def to_coo(self) -> Coo:
        o, k = self.shape
        keep = self.dense_mask()
        neg = bits.unpack_rows(self.neg, k, strict=False)
        rows, cols = np.nonzero(keep)
        codes = np.where(neg[rows, cols], -1, 1).astype(np.int8)
        return Coo((o, k), rows.astype(np.int64), cols.astype(np.int64), codes, "binary")

    def dense_block(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` as a dense float64 ±1/0 matrix (numpy gather)."""
        k = self.shape[1]
        neg = bits.unpack_rows(self.neg[lo:hi], k, strict=False)
        keep = np.ones_like(neg) if self.mask is None else bits.unpack_rows(self.mask[lo:hi], k, strict=False)
        return np.where(keep, np.where(neg, -1.0, 1.0), 0.0)


# ---------------------------------------------------------------------- CSC / CSR
@dataclass
class CscStore:
    """Columns of kept synapses (event-driven kernels): for input ``k`` the outputs it feeds.

    Column keys are ``group · K + k`` for grouped convolutions (``groups`` blocks of
    ``O / groups`` rows), ``k`` otherwise. Binary weights store no codes: in each column
    the positive entries come first and ``negstart[key]`` is where the negative ones start.
    """

    shape: tuple[int, int]
    groups: int
    colptr: np.ndarray  # int64 (groups·K + 1)
    rowidx: np.ndarray  # uint16 / int32
    codes: np.ndarray | None  # int8 / float32, None for binary
    negstart: np.ndarray | None  # int64 (groups·K,), binary only
    kind: str
    max_lane: int = 0  # binary: most positive (or negative) kept synapses of any output

    kernel_family = "csc"

    @classmethod
    def from_coo(cls, coo: Coo, groups: int = 1, coded: bool = False) -> CscStore:
        """``coded``: keep an int8 ±1 code array for binary weights too (conv kernels)."""
        o, k = coo.shape
        g_of_row = coo.rows // (o // groups)
        key = g_of_row * k + coo.cols
        binary = coo.kind == "binary" and not coded
        neg = (coo.codes < 0) if binary else np.zeros(coo.nnz, bool)
        order = np.lexsort((coo.rows, neg, key))
        key_s = key[order]
        colptr = _row_ptr(key_s, groups * k)
        rowidx = coo.rows[order].astype(index_dtype(o) if binary else np.int32)
        if binary:
            negstart = colptr[:-1] + np.bincount(key_s[~neg[order]], minlength=groups * k)
            lane = max(int(np.bincount(coo.rows[~neg], minlength=1).max(initial=0)),
                       int(np.bincount(coo.rows[neg], minlength=1).max(initial=0)))
            return cls((o, k), groups, colptr, rowidx, None, negstart.astype(np.int64), coo.kind, lane)
        return cls((o, k), groups, colptr, rowidx, np.ascontiguousarray(coo.codes[order]), None, coo.kind)

    @property
    def nbytes(self) -> int:
        arrays = [self.colptr, self.rowidx, self.codes, self.negstart]
        return int(sum(a.nbytes for a in arrays if a is not None))

    def entry_codes(self) -> np.ndarray:
        """Codes of all entries in storage order (binary: ±1 from ``negstart``)."""
        if self.codes is not None:
            return self.codes
        pos = np.arange(self.rowidx.size)
        key = np.repeat(np.arange(self.colptr.size - 1), np.diff(self.colptr))
        return np.where(pos >= self.negstart[key], -1, 1).astype(np.int8)

    def to_coo(self) -> Coo:
        o, k = self.shape
        key = np.repeat(np.arange(self.colptr.size - 1), np.diff(self.colptr))
        rows = self.rowidx.astype(np.int64)
        cols = key % k
        order = np.lexsort((cols, rows))
        return Coo((o, k), rows[order], cols[order], self.entry_codes()[order], self.kind)


@dataclass
class CsrStore:
    """Rows of kept synapses (gather kernels): for output ``o`` its inputs and codes."""

    shape: tuple[int, int]
    rowptr: np.ndarray  # int64 (O+1)
    colidx: np.ndarray  # int32
    codes: np.ndarray  # int8 / float32
    kind: str

    kernel_family = "csr"

    @classmethod
    def from_coo(cls, coo: Coo) -> CsrStore:
        o, _ = coo.shape
        return cls(coo.shape, _row_ptr(coo.rows, o), coo.cols.astype(np.int32),
                   np.ascontiguousarray(coo.codes), coo.kind)

    @property
    def nbytes(self) -> int:
        return int(self.rowptr.nbytes + self.colidx.nbytes + self.codes.nbytes)

    def to_coo(self) -> Coo:
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.rowptr))
        return Coo(self.shape, rows.astype(np.int64), self.colidx.astype(np.int64), self.codes, self.kind)

    def dense_block(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` as a dense float64 matrix of codes / values (numpy gather)."""
        out = np.zeros((hi - lo, self.shape[1]), dtype=np.float64)
        a, b = self.rowptr[lo], self.rowptr[hi]
        rows = np.repeat(np.arange(hi - lo), np.diff(self.rowptr[lo:hi + 1]))
        out[rows, self.colidx[a:b]] = self.codes[a:b]
        return out


# ---------------------------------------------------------------------- conv planes
@dataclass
class ConvPlaneStore:
    """Binary conv weights with the input channels of each tap packed into words.

    ``neg[o, tap, :]`` / ``mask[o, tap, :]`` hold channel ``c`` (within the group) of tap
    ``tap = ky · kW + kx`` at bit ``c`` (layout of :mod:`slt_deploy.bits`). The input is
    packed the same way per pixel, so one AND + popcount covers 64 channels.
    """

    shape: tuple[int, int]  # (O, K) with K = Cg·kH·kW
    taps: int
    channels: int  # Cg
    neg: np.ndarray  # (O, taps, Wc) uint64
    mask: np.ndarray | None

    kernel_family = "conv-planes"

    @classmethod
    def from_coo(cls, coo: Coo, channels: int, taps: int) -> ConvPlaneStore:
        if coo.kind != "binary":
            raise ValueError("bit planes hold binary weights only")
        o, k = coo.shape
        keep = np.zeros((o, k), dtype=bool)
        keep[coo.rows, coo.cols] = True
        neg = np.zeros((o, k), dtype=bool)
        neg[coo.rows, coo.cols] = coo.codes < 0

        def planes(a: np.ndarray) -> np.ndarray:  # (O, Cg·taps) -> (O, taps, Wc)
            per_tap = a.reshape(o, channels, taps).transpose(0, 2, 1).reshape(o * taps, channels)
            return np.ascontiguousarray(bits.pack_rows(per_tap).reshape(o, taps, -1))

        mask = None if coo.nnz == o * k else planes(keep)
        return cls((o, k), taps, channels, planes(neg), mask)

    @property
    def nbytes(self) -> int:
        return int(self.neg.nbytes + (0 if self.mask is None else self.mask.nbytes))

    def to_coo(self) -> Coo:
        o, k = self.shape

        def unplanes(p: np.ndarray) -> np.ndarray:
            per_tap = bits.unpack_rows(p.reshape(o * self.taps, -1), self.channels, strict=False)
            return per_tap.reshape(o, self.taps, self.channels).transpose(0, 2, 1).reshape(o, k)

        keep = np.ones((o, k), dtype=bool) if self.mask is None else unplanes(self.mask)
        neg = unplanes(self.neg)
        rows, cols = np.nonzero(keep)
        codes = np.where(neg[rows, cols], -1, 1).astype(np.int8)
        return Coo((o, k), rows.astype(np.int64), cols.astype(np.int64), codes, "binary")
