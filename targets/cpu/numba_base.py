"""Shared pieces of the compiled (numba) kernels: LLVM bit intrinsics, bit packing, row finishing.

Popcount and cttz are LLVM intrinsics (``llvm.ctpop`` / ``llvm.cttz``), so the host's POPCNT /
TZCNT instructions are used. ``_finish_row`` writes ``I = float32(S)·scale + bias`` (two
float32 roundings, in order) from an exact synaptic sum ``S``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_EMPTY_F32 = np.zeros(1, np.float32)
_EMPTY_U64 = np.zeros((1, 1), np.uint64)
_EMPTY_U64_3 = np.zeros((1, 1, 1), np.uint64)
_EMPTY_I64 = np.zeros(1, np.int64)
_FEW_ROWS = 4  # dense planes, at most this many rows: gather row by row (vectorised bit loop)


@intrinsic
def popcnt(typingctx, x):
    """Number of set bits of a uint64 (``llvm.ctpop``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def cttz(typingctx, x):
    """Index of the lowest set bit of a nonzero uint64 (``llvm.cttz``)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = builder.module.declare_intrinsic("llvm.cttz", [i64], ir.FunctionType(i64, [i64, ir.IntType(1)]))
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


@njit(inline="always")
def lsb_exponent(u):
    """Exponent ``g`` of the lowest set bit of a nonzero float64 given by its bits ``u``:
    ``|v| = odd · 2^g`` (subnormals included: ``g = −1074 + tz(m)``; normals:
    ``g = e − 1075 + tz(m | 2^52)``)."""
    e = np.int64((u >> np.uint64(52)) & np.uint64(0x7FF))
    m = u & np.uint64(0xFFFFFFFFFFFFF)
    if e == 0:
        return np.int64(-1074) + np.int64(cttz(m))
    return e - np.int64(1075) + np.int64(cttz(m | np.uint64(1 << 52)))


# ============================================================================ helpers
@njit(**_JIT)
def _pack(s, out):
    """Pack uint8 spike rows ``(R, K)`` into little-endian bit words ``(R, ceil(K/64))``."""
    R, K = s.shape
    W = out.shape[1]
    for r in range(R):
        for w in range(W):
            base = w * 64
            n = min(64, K - base)
            acc = np.uint64(0)
            for j in range(n):
                acc |= np.uint64(s[r, base + j] != 0) << np.uint64(j)
            out[r, w] = acc


def pack(spikes: np.ndarray) -> np.ndarray:
    """uint8 ``(R, K)`` -> ``(R, ceil(K/64))`` uint64 (layout of :mod:`slt_deploy.bits`)."""
    r, k = spikes.shape
    out = np.empty((r, -(-k // 64)), dtype=np.uint64)
    _pack(np.ascontiguousarray(spikes), out)
    return out


@njit(**_JIT)
def _finish_row(acc, r, out, scale, has_scale, bias, has_bias):
    """``out[r, o] = float32(acc[o]) · scale[o] + bias[o]`` (two float32 roundings, in order)."""
    for o in range(acc.shape[0]):
        v = np.float32(np.float64(acc[o]))
        if has_scale:
            v = v * scale[o]
        if has_bias:
            v = v + bias[o]
        out[r, o] = v


def _opt(a: np.ndarray | None) -> tuple[np.ndarray, bool]:
    return (_EMPTY_F32, False) if a is None else (a, True)
