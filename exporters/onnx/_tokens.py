"""Emitters and integer bounds of the token and attention kinds (:mod:`slt_deploy.ir.tokens`).

Views are native ops (``Reshape`` with the batch axis kept as -1, ``Transpose``, ``Gather``).
MatMul and Reduce sum exactly and round once: in float32 when both operands are integer-valued
(spikes, counts) and every sum stays below 2^24 (exact in any order: the spike x spike
coincidence counts of spiking attention), else in float64 (``Cast`` → op → ``Cast``) as the
reference does; MatMul then multiplies by its power-of-two scale, Reduce ``mean`` divides by
the axis length in float32. Mul is one float32 product.
"""

from __future__ import annotations

import numpy as np

from ...ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from ._context import Emitter
from ._graph import Graph
from ._meta import EXACT_F32_SUM


def emit_reshape(ctx: Emitter, g: Graph, node: Reshape, ins: list[str]) -> str:
    shape = ctx.cached_const(node, "shape", np.asarray([-1, *node.shape], np.int64))
    return g.op("Reshape", [ins[0], shape], "reshape")


def emit_transpose(ctx: Emitter, g: Graph, node: Transpose, ins: list[str]) -> str:
    return g.op("Transpose", [ins[0]], "transpose", perm=[0, *(p + 1 for p in node.perm)])


def emit_select(ctx: Emitter, g: Graph, node: Select, ins: list[str]) -> str:
    idx = ctx.cached_const(node, "indices", np.asarray(node.indices, np.int64))
    return g.op("Gather", [ins[0], idx], "select", axis=node.axis + 1)


def _bounds(ctx: Emitter, node: MatMul | Mul | Reduce) -> list[float | None]:
    return [ctx.bound[e.src] for e in ctx.incoming[node.name]]


def _in_double(ctx: Emitter, g: Graph, op: str, ins: list[str], consts: list[str], **attrs: object) -> str:
    """``op`` on float64 copies of ``ins`` (plus constant inputs ``consts``), rounded once to float32."""
    tp = ctx.onnx.TensorProto
    doubles = [g.op("Cast", [x], "xd", to=tp.DOUBLE) for x in ins]
    return g.op("Cast", [g.op(op, doubles + consts, op.lower(), **attrs)], op.lower(), to=tp.FLOAT)


def emit_matmul(ctx: Emitter, g: Graph, node: MatMul, ins: list[str]) -> str:
    """``a @ b`` rounded once (float32 when the integer counts stay below 2^24), then ``· 2^e``."""
    a, b = _bounds(ctx, node)
    k = ctx.ticket.shapes[ctx.incoming[node.name][0].src][-1]
    exact = a is not None and b is not None and a * b * k < EXACT_F32_SUM
    out = g.op("MatMul", ins, "matmul") if exact else _in_double(ctx, g, "MatMul", ins, [])
    if node.scale == 1.0:
        return out
    return g.op("Mul", [out, ctx.cached_const(node, "scale", np.asarray(node.scale, np.float32))], "scaled")


def emit_mul(ctx: Emitter, g: Graph, node: Mul, ins: list[str]) -> str:
    return g.op("Mul", ins, "product")


def emit_reduce(ctx: Emitter, g: Graph, node: Reduce, ins: list[str]) -> str:
    """Sum over the axis rounded once; ``mean`` then divides by the axis length in float32."""
    (b,) = _bounds(ctx, node)
    n = ctx.ticket.shapes[ctx.incoming[node.name][0].src][node.axis]
    axes = ctx.cached_const(node, "axes", np.asarray([node.axis + 1], np.int64))
    keep = int(node.keepdims)
    if b is not None and b * n < EXACT_F32_SUM:
        total = g.op("ReduceSum", [ins[0], axes], "rsum", keepdims=keep)
    else:
        total = _in_double(ctx, g, "ReduceSum", [ins[0]], [axes], keepdims=keep)
    if node.op == "sum":
        return total
    return g.op("Div", [total, ctx.cached_const(node, "count", np.asarray(n, np.float32))], "mean")


def bound_none(node: MatMul | Reduce, ins: list[float | None]) -> float | None:
    """Sums over an axis whose length the bound rule does not see: not declared integer (later sums use float64)."""
    return None


def bound_mul(node: Mul, ins: list[float | None]) -> float | None:
    return None if any(b is None for b in ins) else float(ins[0] * ins[1])  # type: ignore[operator]


__all__ = ["bound_mul", "bound_none", "emit_matmul", "emit_mul", "emit_reduce", "emit_reshape",
           "emit_select", "emit_transpose"]
