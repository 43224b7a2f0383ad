"""Sparse linear maps on C-order flat vectors: the algebra the planner composes synapses with.

A :class:`SparseMap` is a matrix in coordinate form; :func:`conv_map` and :func:`pool_map`
write a Conv2d and a sum pool as such maps, so a chain ``pool ∘ conv ∘ ...`` folds into one
matrix per spike source (:mod:`.plan`). :class:`ConvSpec` keeps a synapse that is exactly one
convolution, so a target can still build a real convolution for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SparseMap:
    """A sparse matrix ``(rows, cols)`` in coordinate form with unique (row, col) entries."""

    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray

    @classmethod
    def build(cls, shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> SparseMap:
        """Sum duplicate entries and drop zeros."""
        rows = np.asarray(rows, np.int64)
        cols = np.asarray(cols, np.int64)
        vals = np.asarray(vals)
        if rows.size:
            key = rows * shape[1] + cols
            uniq, inv = np.unique(key, return_inverse=True)
            if uniq.size != key.size:
                if np.issubdtype(vals.dtype, np.integer):
                    summed = np.zeros(uniq.size, np.int64)
                    np.add.at(summed, inv, vals.astype(np.int64))
                else:
                    summed = np.bincount(inv, weights=vals.astype(np.float64), minlength=uniq.size)
                vals = summed
                rows, cols = uniq // shape[1], uniq % shape[1]
            else:
                order = np.argsort(key, kind="stable")
                rows, cols, vals = rows[order], cols[order], vals[order]
            keep = vals != 0
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        return cls((int(shape[0]), int(shape[1])), rows, cols, vals)

    @classmethod
    def identity(cls, n: int) -> SparseMap:
        i = np.arange(n, dtype=np.int64)
        return cls((n, n), i, i.copy(), np.ones(n))

    @classmethod
    def from_dense(cls, w: np.ndarray) -> SparseMap:
        r, c = np.nonzero(w)
        return cls((w.shape[0], w.shape[1]), r.astype(np.int64), c.astype(np.int64), w[r, c])

    @property
    def nnz(self) -> int:
        return int(self.vals.size)

    def todense(self, dtype: Any = None) -> np.ndarray:
        out = np.zeros(self.shape, dtype or self.vals.dtype)
        out[self.rows, self.cols] = self.vals
        return out

    def compose(self, inner: SparseMap) -> SparseMap:
        """``self ∘ inner`` (the matrix product ``self @ inner``)."""
        if self.shape[1] != inner.shape[0]:
            raise ValueError(f"cannot compose maps {self.shape} and {inner.shape}")
        order = np.argsort(inner.rows, kind="stable")
        counts = np.bincount(inner.rows, minlength=inner.shape[0])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_e = counts[self.cols]
        total = int(n_e.sum())
        rep = np.repeat(np.arange(self.nnz), n_e)
        offset = np.arange(total) - np.repeat(np.cumsum(n_e) - n_e, n_e)
        partner = order[starts[self.cols[rep]] + offset]
        vals = self.vals[rep].astype(np.float64) * inner.vals[partner].astype(np.float64)
        return SparseMap.build((self.shape[0], inner.shape[1]), self.rows[rep], inner.cols[partner], vals)

    def plus(self, other: SparseMap) -> SparseMap:
        return SparseMap.build(self.shape, np.concatenate([self.rows, other.rows]),
                               np.concatenate([self.cols, other.cols]),
                               np.concatenate([self.vals.astype(np.float64), other.vals.astype(np.float64)]))

    def map_vals(self, vals: np.ndarray) -> SparseMap:
        """Same pattern, new values (zeros dropped)."""
        keep = vals != 0
        return SparseMap(self.shape, self.rows[keep], self.cols[keep], vals[keep])

    def row_abs_sum(self) -> np.ndarray:
        return np.bincount(self.rows, weights=np.abs(self.vals.astype(np.float64)), minlength=self.shape[0])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x @ self.T`` for a batch ``x`` of shape ``(batch, cols)``; exact for int64 values."""
        integer = np.issubdtype(self.vals.dtype, np.integer) and np.issubdtype(x.dtype, np.integer)
        dtype = np.int64 if integer else np.float64
        if self.shape[0] * self.shape[1] <= 4_000_000:
            return x.astype(dtype) @ self.todense(dtype).T
        out = np.zeros((x.shape[0], self.shape[0]), dtype)
        np.add.at(out.T, self.rows, (x[:, self.cols].astype(dtype) * self.vals.astype(dtype)).T)
        return out


def conv_map(in_shape: tuple[int, int, int], kernel: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], groups: int) -> SparseMap:
    """The cross-correlation of ``kernel`` ``(C_out, C_in/g, kH, kW)`` as a map on C-order flat vectors."""
    c_in, h, w = in_shape
    c_out, c_in_g, kh, kw = kernel.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    o, c, ki, kj = np.nonzero(kernel)
    vals = kernel[o, c, ki, kj]
    ci = (o // (c_out // groups)) * c_in_g + c
    oi, oj = np.meshgrid(np.arange(h_out), np.arange(w_out), indexing="ij")
    oi, oj = oi.reshape(-1, 1), oj.reshape(-1, 1)
    ii = oi * sh + ki[None, :] * dh - ph
    jj = oj * sw + kj[None, :] * dw - pw
    valid = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
    rows = (o[None, :] * h_out + oi) * w_out + oj
    cols = (ci[None, :] * h + ii) * w + jj
    v = np.broadcast_to(vals[None, :], rows.shape)
    return SparseMap.build((c_out * h_out * w_out, c_in * h * w), rows[valid], cols[valid], v[valid])


def pool_map(in_shape: tuple[int, int, int], kernel_size: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int], value: float = 1.0) -> SparseMap:
    """Sum pooling (each window entry weighted by ``value``) as a map; zero padding."""
    c = in_shape[0]
    kh, kw = kernel_size
    eye = np.zeros((c, 1, kh, kw))
    eye[:, 0] = value
    return conv_map(in_shape, eye, stride, padding, (1, 1), c)


@dataclass(frozen=True)
class ConvSpec:
    """A synapse that is exactly one Conv2d: kept so targets can build a real convolution."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: np.ndarray          # (C_out, C_in/g, kH, kW), float64 (plan) or int64 (fixed)
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


__all__ = ["ConvSpec", "SparseMap", "conv_map", "pool_map"]
