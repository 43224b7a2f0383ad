"""Weight tables of synapse layers for the C exporter: layouts, flash bytes, row iteration.

A Linear or Conv2d weight tensor is viewed as a ``(rows, K)`` matrix (rows = output
channels, K = the other axes flattened in C order, as the .slt format does) and stored in
flash in the smallest of three layouts:

- ``dense`` (density 1): binary sign bits ``neg`` (rows padded to 64 bits), or the int8 /
  float32 values of every synapse;
- ``mask``: the keep-mask ``mask`` (rows padded to 64 bits) plus binary sign bits ``neg``
  in the same layout, or the int8 / float32 values of the kept synapses in row-major order;
- ``index``: CSR row pointers ``rp``, column indices ``idx`` (uint8/16/32) and the kept
  synapses' sign bits ``sgn`` (bits.pack_bits order) or values;
- ``csc`` (Linear over spikes, binary/int8 weights): the same lists by column, so a step
  visits only the columns of inputs that spiked (event-driven).

All bit tables come from :func:`slt_deploy.bits.pack_rows` / ``pack_bits`` (little-endian
bit order, ``uint64`` words, rows padded to 64 bits), viewed as two little-endian ``uint32``
halves for 32-bit words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from slt_deploy import bits
from slt_deploy.ir.weights import BinaryWeights, FloatWeights, Int8Weights, Weights

LAYOUTS = ("dense", "mask", "index", "csc")


def word_view(words64: np.ndarray, word: int) -> np.ndarray:
    """``'<u8'`` words as ``word``-bit words (32: low half first, little-endian)."""
    w = np.ascontiguousarray(words64, dtype="<u8").reshape(-1)
    return w.view("<u4") if word == 32 else w


def uint_type(max_value: int) -> tuple[str, np.dtype]:
    if max_value < 1 << 8:
        return "uint8_t", np.dtype("u1")
    if max_value < 1 << 16:
        return "uint16_t", np.dtype("<u2")
    return "uint32_t", np.dtype("<u4")


@dataclass
class Table:
    """One static const array in flash."""

    ctype: str
    name: str
    values: np.ndarray
    itemsize: int

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * self.itemsize


@dataclass
class WeightTables:
    kind: str                     # binary | int8 | float32
    layout: str                   # dense | mask | index
    rows: int
    k: int
    nnz: int
    wpr: int                      # words per mask/sign row (dense, mask)
    tables: dict[str, Table] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables.values())


def _values(w: Weights, flat_mask: np.ndarray | None) -> tuple[str, np.ndarray, int]:
    """(ctype, values, itemsize) of the int8 codes / float32 bit patterns, kept ones or all."""
    rows = w.mask.shape[0]
    if isinstance(w, Int8Weights):
        v = w.q.reshape(rows, -1)
        v = v[flat_mask] if flat_mask is not None else v.reshape(-1)
        return "int8_t", v.astype(np.int8), 1
    assert isinstance(w, FloatWeights)
    v = w.values.reshape(rows, -1)
    v = v[flat_mask] if flat_mask is not None else v.reshape(-1)
    return "uint32_t", np.ascontiguousarray(v, dtype="<f4").view("<u4"), 4


def build_tables(w: Weights, prefix: str, word: int, spike_columns: bool = False) -> WeightTables:
    """The smallest layout of ``w`` (ties: dense, mask, index, csc).

    ``spike_columns``: the layer is a Linear over spike input with binary/int8 weights, so the
    event-driven column layout ``csc`` applies too: column pointers ``cp``, row indices
    ``ridx`` and, per column, positive weights first (``cn``: start of the negative ones) for
    binary weights, or the int8 codes ``val`` in column order.
    """
    rows = int(w.mask.shape[0])
    mask = w.mask.reshape(rows, -1)
    k = int(mask.shape[1])
    nnz = int(mask.sum())
    wtype = "uint32_t" if word == 32 else "uint64_t"
    wb = word // 8
    wpr = bits.words_per_row(k) * (64 // word)
    candidates: list[WeightTables] = []
    neg_words = word_view(bits.pack_rows(w.negative.reshape(rows, k)), word) if isinstance(w, BinaryWeights) else None

    if nnz == rows * k and nnz > 0:
        t = WeightTables(w.kind, "dense", rows, k, nnz, wpr)
        if isinstance(w, BinaryWeights):
            t.tables["neg"] = Table(wtype, f"{prefix}_neg", neg_words, wb)
        else:
            ct, v, sz = _values(w, None)
            t.tables["val"] = Table(ct, f"{prefix}_val", v, sz)
        candidates.append(t)

    t = WeightTables(w.kind, "mask", rows, k, nnz, wpr)
    t.tables["mask"] = Table(wtype, f"{prefix}_mask", word_view(bits.pack_rows(mask), word), wb)
    if isinstance(w, BinaryWeights):
        t.tables["neg"] = Table(wtype, f"{prefix}_neg", neg_words, wb)
    elif nnz:
        ct, v, sz = _values(w, mask)
        t.tables["val"] = Table(ct, f"{prefix}_val", v, sz)
    candidates.append(t)

    t = WeightTables(w.kind, "index", rows, k, nnz, wpr)
    rp = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    ct, dt = uint_type(nnz)
    t.tables["rp"] = Table(ct, f"{prefix}_rp", rp.astype(dt), dt.itemsize)
    if nnz:
        cols = np.nonzero(mask)[1]
        ct, dt = uint_type(k - 1)
        t.tables["idx"] = Table(ct, f"{prefix}_idx", cols.astype(dt), dt.itemsize)
        if isinstance(w, BinaryWeights):
            sg = bits.pack_bits(w.negative.reshape(rows, k)[mask])
            t.tables["sgn"] = Table(wtype, f"{prefix}_sgn", word_view(sg, word), wb)
        else:
            ct, v, sz = _values(w, mask)
            t.tables["val"] = Table(ct, f"{prefix}_val", v, sz)
    candidates.append(t)
    if spike_columns and nnz and not isinstance(w, FloatWeights):
        t = WeightTables(w.kind, "csc", rows, k, nnz, wpr)
        r_idx, c_idx = np.nonzero(mask)
        if isinstance(w, BinaryWeights):
            neg = w.negative.reshape(rows, k)[r_idx, c_idx]
            order = np.lexsort((r_idx, neg, c_idx))          # by column, positives first, then row
        else:
            order = np.lexsort((r_idx, c_idx))
        r_idx, c_idx = r_idx[order], c_idx[order]
        cp = np.concatenate([[0], np.cumsum(np.bincount(c_idx, minlength=k))]).astype(np.int64)
        ct, dt = uint_type(nnz)
        t.tables["cp"] = Table(ct, f"{prefix}_cp", cp.astype(dt), dt.itemsize)
        if isinstance(w, BinaryWeights):
            npos = np.bincount(c_idx[~neg[order]], minlength=k)
            t.tables["cn"] = Table(ct, f"{prefix}_cn", (cp[:-1] + npos).astype(dt), dt.itemsize)
        rt, rdt = uint_type(rows - 1)
        t.tables["ridx"] = Table(rt, f"{prefix}_ridx", r_idx.astype(rdt), rdt.itemsize)
        if isinstance(w, Int8Weights):
            t.tables["val"] = Table("int8_t", f"{prefix}_val", w.q.reshape(rows, k)[r_idx, c_idx].astype(np.int8), 1)
        candidates.append(t)
    return min(candidates, key=lambda c: (c.nbytes, LAYOUTS.index(c.layout)))


def max_abs_code(w: Weights) -> int:
    if isinstance(w, BinaryWeights):
        return 1
    if isinstance(w, Int8Weights):
        return int(np.abs(w.q.astype(np.int32)).max(initial=0))
    return 0


def row_code_bound(w: Weights) -> int:
    """max over rows of sum |code| (bound of an integer sum over spike inputs)."""
    rows = w.mask.shape[0]
    if isinstance(w, BinaryWeights):
        return int(w.mask.reshape(rows, -1).sum(axis=1).max(initial=0))
    if isinstance(w, Int8Weights):
        return int(np.abs(w.q.reshape(rows, -1).astype(np.int64)).sum(axis=1).max(initial=0))
    return 0


def float_exponent_range(w: FloatWeights) -> tuple[int, int]:
    """(min, max) biased exponent (subnormals count as 1) of the kept float32 weights."""
    v = np.ascontiguousarray(w.values[w.mask], dtype="<f4").view("<u4")
    if v.size == 0:
        return 1, 1
    e = ((v >> 23) & 0xFF).astype(np.int64)
    e = np.maximum(e, 1)
    return int(e.min()), int(e.max())


def limbs(top_bit: int, max_shift: int) -> int:
    """Accumulator limbs holding a signed value below 2^top_bit with terms written at <= max_shift."""
    return max(math.ceil((top_bit + 1) / 32), (max_shift >> 5) + 2)
