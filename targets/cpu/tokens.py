"""The CPU runtime's token and attention kinds (:mod:`slt_deploy.ir.tokens`), on :class:`.values.Value`.

Values are ``(T, B, *shape)`` (or one static step); spikes stay uint8 through views, through
Mul of two spike operands (a logical AND) and are counted exactly by MatMul and Reduce:

- MatMul of two spike operands is an integer count of coincidences. Two exact kernels:
  ``blas`` (float32 matmul of the 0/1 values: every partial sum is an integer below 2^24, exact
  in any order, since ``k < 2^24``) and ``popcount`` (rows of ``a`` and columns of ``b`` bit-packed
  along ``k`` into 64-bit words, ``Σ popcount(a_word AND b_word)``). Which is faster depends on
  the shapes and the machine (benchmarks/attention.py measures both), so the operator *measures*
  both on its first spike x spike call (and checks they agree), then keeps the faster one.
- Any other MatMul or Reduce: the reference's exact sums rounded once (:mod:`slt_deploy.exact`).
- The scale 2^e is applied after the rounding; Reduce ``mean`` divides in float32.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from slt_deploy import exact, tokens_ref
from slt_deploy.ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose

from .values import Value

SPIKE_KERNELS = ("blas", "popcount")


class TokenOp:
    """One token node; ``choice`` holds the spike x spike kernel a MatMul picked (by measuring)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.choice: dict[str, str] = {}


def prepare(rt: Any, node: Any) -> TokenOp:
    return TokenOp(node)


def _flags(xs: list[Value], binary: bool) -> tuple[bool, bool, bool]:
    return all(v.static for v in xs), binary, all(v.rate_known for v in xs)


def _operands(xs: list[Value], steps: int) -> list[np.ndarray]:
    """The operands' data with a common leading step axis (a static value broadcast when the other is not)."""
    if all(v.static for v in xs):
        return [v.data for v in xs]
    t = max(v.data.shape[0] for v in xs)
    return [np.broadcast_to(v.data, (t, *v.data.shape[1:])) if v.static else v.data for v in xs]


def apply_view(op: TokenOp, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    node, x = op.node, ins[0]
    lead = x.data.shape[:2]
    if isinstance(node, Reshape):
        data = x.data.reshape(*lead, *node.shape)
    elif isinstance(node, Transpose):
        data = x.data.transpose(0, 1, *(p + 2 for p in node.perm))
    else:
        assert isinstance(node, Select)
        data = np.take(x.data, np.asarray(node.indices, np.int64), axis=node.axis + 2)
    return Value(data, x.static, x.binary, x.rate_known)


def popcount_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Coincidence counts ``a @ b`` of 0/1 arrays ``(..., m, k) x (..., k, n)`` by AND + popcount, float32."""
    pa = np.packbits(a.astype(np.uint8, copy=False), axis=-1)
    pb = np.packbits(np.swapaxes(b, -1, -2).astype(np.uint8, copy=False), axis=-1)
    pad = (-pa.shape[-1]) % 8
    if pad:
        pa = np.concatenate([pa, np.zeros((*pa.shape[:-1], pad), np.uint8)], axis=-1)
        pb = np.concatenate([pb, np.zeros((*pb.shape[:-1], pad), np.uint8)], axis=-1)
    wa, wb = np.ascontiguousarray(pa).view(np.uint64), np.ascontiguousarray(pb).view(np.uint64)
    return np.bitwise_count(wa[..., :, None, :] & wb[..., None, :, :]).sum(axis=-1, dtype=np.int64) \
        .astype(np.float32)


def blas_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Coincidence counts by float32 matmul of 0/1 values (integers below 2^24: exact in any order)."""
    return np.matmul(a.astype(np.float32), b.astype(np.float32))


_SPIKE_FNS = {"blas": blas_matmul, "popcount": popcount_matmul}


def _spike_counts(op: TokenOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spike x spike counts with the kernel measured fastest on the first call (both checked equal then)."""
    kernel = op.choice.get("spikes")
    if kernel is not None:
        return _SPIKE_FNS[kernel](a, b)
    results, seconds = {}, {}
    for k, fn in _SPIKE_FNS.items():
        t0 = time.perf_counter()
        results[k] = fn(a, b)
        seconds[k] = time.perf_counter() - t0
    if not np.array_equal(results["blas"], results["popcount"]):  # pragma: no cover - both are exact
        raise AssertionError(f"node '{op.node.name}': spike x spike kernels disagree")
    op.choice["spikes"] = min(seconds, key=seconds.__getitem__)
    return results[op.choice["spikes"]]


def apply_matmul(op: TokenOp, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    node: MatMul = op.node
    a, b = _operands(ins, steps)
    if ins[0].binary and ins[1].binary and a.shape[-1] < 2**24:
        out = _spike_counts(op, a, b)
    else:
        lead = a.shape[:2]
        out = tokens_ref.matmul(node, a.astype(np.float32).reshape(-1, *a.shape[2:]),
                                b.astype(np.float32).reshape(-1, *b.shape[2:]), np.float32)
        out = out.reshape(*lead, *out.shape[1:])
        return Value(out, *_flags(ins, False))
    if node.scale != 1.0:
        out = out * np.float32(node.scale)
    return Value(out, *_flags(ins, False))


def apply_mul(op: TokenOp, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    a, b = _operands(ins, steps)
    if ins[0].binary and ins[1].binary:
        return Value(a & b, *_flags(ins, True))  # spike AND spike
    return Value(a.astype(np.float32) * b.astype(np.float32), *_flags(ins, False))


def apply_reduce(op: TokenOp, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    node: Reduce = op.node
    x, axis = ins[0], op.node.axis + 2
    if x.binary:
        total = x.data.sum(axis=axis, dtype=np.int64).astype(np.float32)  # exact spike counts
    else:
        lead = x.data.shape[:2]
        flat = x.data.reshape(-1, *x.data.shape[2:]).astype(np.float64)
        total = exact.exact_sum(flat, node.axis + 1, np.float32)
        total = total.reshape(*lead, *total.shape[1:])
    if node.op == "mean":
        total = total / np.float32(x.data.shape[axis])
    if node.keepdims:
        total = np.expand_dims(total, axis)
    return Value(total, x.static, False, x.rate_known)


HANDLERS = {Reshape: (prepare, apply_view), Transpose: (prepare, apply_view), Select: (prepare, apply_view),
            MatMul: (prepare, apply_matmul), Mul: (prepare, apply_mul), Reduce: (prepare, apply_reduce)}
"""(prepare, apply) per token kind, merged into the runtime's handler table."""
