"""The reference rules of the token and attention node kinds (:mod:`slt_deploy.ir.tokens`).

Arrays carry the batch axis first; node axes are per sample, hence the ``+ 1``. MatMul and
Reduce sum exactly and round once to the working precision (:mod:`slt_deploy.exact`); MatMul
then multiplies by its power-of-two scale; Mul is one product in the working precision; views
move values without arithmetic.
"""

from __future__ import annotations

import numpy as np

from . import exact
from .ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose


def reshape(node: Reshape, x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], *node.shape)


def transpose(node: Transpose, x: np.ndarray) -> np.ndarray:
    return x.transpose(0, *(p + 1 for p in node.perm))


def select(node: Select, x: np.ndarray) -> np.ndarray:
    return np.take(x, np.asarray(node.indices, np.int64), axis=node.axis + 1)


def matmul(node: MatMul, a: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
    """``float(Σ_k a·b) · scale`` per (batch, leading axes): exact dot products rounded once."""
    lead, (m, k), n = a.shape[:-2], a.shape[-2:], b.shape[-1]
    a3 = a.astype(np.float64).reshape(-1, m, k)
    b3 = b.astype(np.float64).reshape(-1, k, n)
    out = np.stack([exact.exact_matmul(ai, bi.T, dtype) for ai, bi in zip(a3, b3, strict=True)])
    return out.reshape(*lead, m, n) * dtype(node.scale)


def mul(node: Mul, a: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
    return a.astype(dtype) * b.astype(dtype)


def reduce(node: Reduce, x: np.ndarray, dtype: type) -> np.ndarray:
    """Exact sum over the axis rounded once; ``mean`` then divides by the axis length in ``dtype``."""
    axis = node.axis + 1
    total = exact.exact_sum(x.astype(np.float64), axis, dtype)
    if node.op == "mean":
        total = total / dtype(x.shape[axis])
    return np.expand_dims(total, axis) if node.keepdims else total


__all__ = ["matmul", "mul", "reduce", "reshape", "select", "transpose"]
