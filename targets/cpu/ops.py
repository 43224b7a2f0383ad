"""Stateless, weight-free nodes (pools, Flatten, Add, Output): plain numpy in both backends.

Rules of docs/semantics.md: Sum/Avg pools sum each window exactly and round once (spike
windows are integer counts; analog windows go through :func:`slt_deploy.exact.exact_sum`),
AvgPool then divides by ``kH·kW`` in float32; MaxPool takes the maximum (padding never
wins); Add sums in edge order in float32.
"""

from __future__ import annotations

import numpy as np

from slt_deploy import exact
from slt_deploy.ir.nodes import AvgPool2d, MaxPool2d, SumPool2d

from .values import Value


def _windows(x: np.ndarray, node: SumPool2d | AvgPool2d | MaxPool2d, pad_value: float) -> np.ndarray:
    """``(R, C, H_out, W_out, kH, kW)`` windows of the padded input."""
    (ph, pw), (sh, sw), (kh, kw) = node.padding, node.stride, node.kernel_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    h_out = (xp.shape[2] - kh) // sh + 1
    w_out = (xp.shape[3] - kw) // sw + 1
    rows = (np.arange(h_out) * sh)[:, None] + np.arange(kh)[None, :]
    cols = (np.arange(w_out) * sw)[:, None] + np.arange(kw)[None, :]
    return xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]


def pool(node: SumPool2d | AvgPool2d | MaxPool2d, x: Value, spikes_kernel=None) -> Value:
    """``spikes_kernel``: a compiled pool over uint8 spikes (:func:`.numba_pool.pool_spikes`), or None."""
    data = x.data
    lead = data.shape[:2]
    flat = data.reshape(-1, *data.shape[2:])
    if x.binary and spikes_kernel is not None:
        maxpool = isinstance(node, MaxPool2d)
        out = spikes_kernel(flat, node.kernel_size, node.stride, node.padding, not maxpool)
        if isinstance(node, AvgPool2d):
            out = out / np.float32(node.kernel_size[0] * node.kernel_size[1])
        return Value(out.reshape(*lead, *out.shape[1:]), x.static, maxpool, x.rate_known)
    if isinstance(node, MaxPool2d):
        pad = 0 if x.binary else -np.inf  # spikes are >= 0, so a 0 pad never wins either
        out = _windows(flat, node, pad).max(axis=(-2, -1))
        return Value(out.reshape(*lead, *out.shape[1:]), x.static, x.binary, x.rate_known)
    if x.binary:
        total = _windows(flat, node, 0).sum(axis=(-2, -1), dtype=np.int64).astype(np.float32)
    else:
        total = exact.exact_sum(_windows(flat.astype(np.float64), node, 0.0), (-2, -1), np.float32)
    if isinstance(node, AvgPool2d):
        total = total / np.float32(node.kernel_size[0] * node.kernel_size[1])
    return Value(total.reshape(*lead, *total.shape[1:]), x.static, False, x.rate_known)


def flatten(x: Value) -> Value:
    data = x.data
    return Value(data.reshape(data.shape[0], data.shape[1], -1), x.static, x.binary, x.rate_known)


def add(xs: list[Value]) -> Value:
    """Edge-order float32 sum ``((x0 + x1) + x2) + …`` (static inputs broadcast over steps)."""
    total = xs[0].as_float().astype(np.float32, copy=False)
    for other in xs[1:]:
        total = total + other.as_float()
    return Value(total, all(v.static for v in xs), False, all(v.rate_known for v in xs))
