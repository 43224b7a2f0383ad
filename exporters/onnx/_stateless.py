"""Emitters of the stateless, weightless node kinds: pools, Flatten, Add, Input, Output.

Sum/Avg pools are exact window sums rounded once: a float32 ones-kernel ``Conv`` when the
input is integer-valued and every window sum stays below 2^24, else a float64 sum of strided
slices in row-major tap order (numpy's order); AvgPool then divides by kH·kW in float32.
``MaxPool`` is native. ``Add`` sums in edge order in float32.
"""

from __future__ import annotations

import numpy as np

from ...ir.nodes import Add, AvgPool2d, Flatten, Input, MaxPool2d, Output, SumPool2d
from ._context import Emitter
from ._graph import Graph
from ._meta import EXACT_F32_SUM
from ._synapses import padded_double


def emit_input(ctx: Emitter, g: Graph, node: Input, ins: list[str]) -> str:
    """The model input of the step (the builder passes it as the input node's one value): no op."""
    return ins[0]


def emit_output(ctx: Emitter, g: Graph, node: Output, ins: list[str]) -> str:
    return g.op("Identity", [ins[0]], "out")


def emit_flatten(ctx: Emitter, g: Graph, node: Flatten, ins: list[str]) -> str:
    return g.op("Flatten", [ins[0]], "flat", axis=1)


def emit_add(ctx: Emitter, g: Graph, node: Add, ins: list[str]) -> str:
    """``((x0 + x1) + x2) + …`` in edge order."""
    total = ins[0]
    for other in ins[1:]:
        total = g.op("Add", [total, other], "sum")
    return total


def emit_max_pool(ctx: Emitter, g: Graph, node: MaxPool2d, ins: list[str]) -> str:
    (ph, pw), (sh, sw), (kh, kw) = node.padding, node.stride, node.kernel_size
    return g.op("MaxPool", [ins[0]], "maxpool", kernel_shape=[kh, kw], pads=[ph, pw, ph, pw], strides=[sh, sw])


def emit_sum_pool(ctx: Emitter, g: Graph, node: SumPool2d, ins: list[str]) -> str:
    return _window_sum(ctx, g, node, ins[0])


def emit_avg_pool(ctx: Emitter, g: Graph, node: AvgPool2d, ins: list[str]) -> str:
    total = _window_sum(ctx, g, node, ins[0])
    k = node.kernel_size[0] * node.kernel_size[1]
    return g.op("Div", [total, ctx.outer.scalar(k, np.float32, "k")], "avg")


def _window_sum(ctx: Emitter, g: Graph, node: SumPool2d | AvgPool2d, x: str) -> str:
    """Exact window sum rounded once to float32."""
    (ph, pw), (sh, sw), (kh, kw) = node.padding, node.stride, node.kernel_size
    src = ctx.incoming[node.name][0].src
    bound = ctx.bound[src]
    c, _, _ = ctx.ticket.shapes[src]
    if bound is not None and bound * kh * kw < EXACT_F32_SUM:
        ones = ctx.cached_const(node, "ones", np.ones((c, 1, kh, kw), np.float32))
        return g.op("Conv", [x, ones], "wsum", kernel_shape=[kh, kw], pads=[ph, pw, ph, pw],
                    strides=[sh, sw], group=c)
    _, ho, wo = ctx.ticket.shapes[node.name]
    xd = padded_double(ctx, g, x, ph, pw)
    axes = ctx.outer.i64([2, 3], "axes")
    steps = ctx.outer.i64([sh, sw], "steps")
    total = None
    for ki in range(kh):  # row-major tap order, sequential float64 sum (as numpy's window sum)
        for kj in range(kw):
            starts = ctx.outer.i64([ki, kj], "starts")
            ends = ctx.outer.i64([ki + (ho - 1) * sh + 1, kj + (wo - 1) * sw + 1], "ends")
            tap = g.op("Slice", [xd, starts, ends, axes, steps], "tap")
            total = tap if total is None else g.op("Add", [total, tap], "wsum")
    return g.op("Cast", [total], "wsum", to=ctx.onnx.TensorProto.FLOAT)  # type: ignore[list-item]


__all__ = ["emit_add", "emit_avg_pool", "emit_flatten", "emit_input", "emit_max_pool", "emit_output",
           "emit_sum_pool"]
