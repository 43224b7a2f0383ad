"""The decode subgraph: compact weight initializers (``_encode``) back to a dense code tensor.

``BitShift``/``BitwiseAnd`` unpack bit planes, ``CumSum`` + ``Gather`` place bitmask values,
``CumSum`` + ``Compress`` + ``ScatterElements`` place gap-coded values. It depends only on
initializers, so a runtime computes it once (the ONNX Runtime target folds it at load).
ONNX ``sparse_initializer`` is not used: onnx's checker with ``full_check=True`` rejects
sparse initializers consumed by ordinary operators.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._context import Emitter
from ._encode import encode
from ._graph import Graph, ident


def decoded(ctx: Emitter, node: Any, codes: np.ndarray, dtype: type, layout: str, exact: bool) -> str:
    """The dense code tensor of ``node`` in ``dtype``, decoded from compact initializers (once per layer).

    Also records the layer's row of the export report (storage, bytes, density) the first time.
    """
    key = (node.name, layout + np.dtype(dtype).name)
    if key in ctx.decoded:
        return ctx.decoded[key]
    g = ctx.outer
    w = node.weights
    choice, tensors, nnz = encode(codes, w.kind, ctx.weights)
    dense_fp32 = 4 * codes.size
    stored = sum(int(t.nbytes) for t in tensors.values())
    TP = ctx.onnx.TensorProto
    onnx_dtype = TP.FLOAT if dtype == np.float32 else TP.DOUBLE
    hint = ident(node.name)
    names = {k: g.const(v, f"{hint}_{k}") for k, v in tensors.items()}
    n = codes.size
    if choice == "zero":
        value = ctx.onnx.helper.make_tensor("zero", onnx_dtype, [1], [0.0])
        flat = g.op("ConstantOfShape", [g.i64([n])], f"{hint}_w", value=value)
    elif choice in ("dense", "float32"):
        flat = g.op("Cast", [names["codes"]], f"{hint}_w", to=onnx_dtype)
    else:
        kept = _kept_values(ctx, g, names, w.kind, nnz, onnx_dtype, dtype, hint)
        if choice == "bitmask":
            flat = _bitmask_scatter(ctx, g, names["mask_bits"], kept, n, dtype, hint)
        else:
            escape = int(np.iinfo(tensors["gaps"].dtype).max)
            flat = _index_scatter(ctx, g, names["gaps"], kept, n, escape, onnx_dtype, hint)
    dense = g.op("Reshape", [flat, g.i64(list(codes.shape))], f"{hint}_w")
    ctx.decoded[key] = dense
    if not any(row["name"] == node.name for row in ctx.layer_info):
        ctx.layer_info.append({
            "name": node.name, "kind": node.kind, "weights": w.kind, "shape": list(w.mask.shape),
            "density": float(w.mask.mean()) if w.mask.size else 0.0, "storage": choice, "bytes": stored,
            "dense_fp32_bytes": dense_fp32, "ratio_vs_dense_fp32": (dense_fp32 / stored) if stored else None,
            "sum": "float32 (exact integer sums)" if exact else "float64",
        })
    return dense


def _bitmask_scatter(ctx: Emitter, g: Graph, mask_bits: str, kept: str, n: int, dtype: type, hint: str) -> str:
    """Kept value ``k`` goes to the position of the k-th set mask bit: ``Gather`` by running count."""
    TP = ctx.onnx.TensorProto
    mask = _unpack_bits(ctx, g, mask_bits, n, hint)
    idx = g.op("CumSum", [g.op("Cast", [mask], "mi", to=TP.INT64), g.scalar(0, np.int64, "axis")], "idx")
    idx = g.op("Sub", [idx, g.i64([1], "one")], "idx")
    idx = g.op("Max", [idx, g.i64([0], "zero")], "idx")
    gathered = g.op("Gather", [kept, idx], "vals", axis=0)
    zero = g.const(np.zeros(1, dtype), "zero")
    return g.op("Where", [mask, gathered, zero], f"{hint}_w")


def _index_scatter(ctx: Emitter, g: Graph, gap_codes: str, kept: str, n: int, escape: int, onnx_dtype: int,
                   hint: str) -> str:
    """Gaps (with escapes, see ``_encode.escaped_gaps``) -> positions -> ``ScatterElements``."""
    TP = ctx.onnx.TensorProto
    gaps = g.op("Cast", [gap_codes], "gaps", to=TP.INT64)
    esc = g.i64([escape], "escape")
    real = g.op("Not", [g.op("Equal", [gaps, esc], "is_escape")], "is_real")
    advance = g.op("Min", [g.op("Add", [gaps, g.i64([1], "one")], "adv"), esc], "adv")
    pos = g.op("CumSum", [advance, g.scalar(0, np.int64, "axis")], "pos")
    pos = g.op("Sub", [pos, g.i64([1], "one")], "pos")
    pos = g.op("Compress", [pos, real], "pos", axis=0)
    value = ctx.onnx.helper.make_tensor("zero", onnx_dtype, [1], [0.0])
    zeros = g.op("ConstantOfShape", [g.i64([n])], "zeros", value=value)
    return g.op("ScatterElements", [zeros, pos, kept], f"{hint}_w", axis=0)


def _kept_values(ctx: Emitter, g: Graph, names: dict[str, str], kind: str, nnz: int, onnx_dtype: int,
                 dtype: type, hint: str) -> str:
    """The kept weights in ``dtype``: ±1 from packed sign bits (binary), else a cast of the stored values."""
    if kind == "binary":
        neg = _unpack_bits(ctx, g, names["sign_bits"], nnz, hint)
        plus, minus = g.const(np.ones(1, dtype), "plus"), g.const(-np.ones(1, dtype), "minus")
        return g.op("Where", [neg, minus, plus], f"{hint}_kept")
    return g.op("Cast", [names["values"]], f"{hint}_kept", to=onnx_dtype)


def _unpack_bits(ctx: Emitter, g: Graph, packed: str, n: int, hint: str) -> str:
    """Little-endian bit order within each byte (np.packbits(..., bitorder='little'))."""
    TP = ctx.onnx.TensorProto
    col = g.op("Unsqueeze", [packed, g.i64([1], "axes")], "bytes")
    shifted = g.op("BitShift", [col, g.const(np.arange(8, dtype=np.uint8), "shifts")], "bits", direction="RIGHT")
    bits = g.op("BitwiseAnd", [shifted, g.const(np.ones(1, np.uint8), "one")], "bits")
    flat = g.op("Reshape", [bits, g.i64([-1])], "bits")
    flat = g.op("Slice", [flat, g.i64([0], "starts"), g.i64([n], "ends")], "bits")
    return g.op("Cast", [flat], f"{hint}_bits", to=TP.BOOL)


__all__ = ["decoded"]
