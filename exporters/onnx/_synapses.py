"""Emitters of the synapse layers (Linear, Conv2d): the exact synaptic sum, then scale and bias.

Binary / int8 layers whose input is integer-valued with ``Σ|code|·max|x| < 2^24`` compute
``n = x @ codes`` in float32 (every partial sum is an integer below 2^24: exact in any
order). Otherwise the sum runs in float64 (``Cast`` → ``MatMul`` → ``Cast``), as the
reference does; ONNX Runtime has no float64 ``Conv``, so a float64 convolution is an
explicit im2col (``Pad``, a strided ``Slice`` per kernel tap, one batched ``MatMul``).
Then ``Mul`` by the per-channel scale (binary/int8) and ``Add`` the bias, in float32.
"""

from __future__ import annotations

import numpy as np

from ...ir.nodes import Conv2d, Linear
from ...ir.weights import FloatWeights
from ._context import Emitter
from ._decode import decoded
from ._encode import codes_of
from ._graph import Graph


def emit_linear(ctx: Emitter, g: Graph, node: Linear, ins: list[str]) -> str:
    """``y = float32(x @ codesᵀ) · scale + bias``."""
    x = ins[0]
    TP = ctx.onnx.TensorProto
    codes = codes_of(node.weights).T  # (in, out)
    exact = ctx.exact_f32(node)
    w = decoded(ctx, node, codes, np.float32 if exact else np.float64, "linear", exact)
    if exact:
        n = g.op("MatMul", [x, w], "n")
    else:
        xd = g.op("Cast", [x], "xd", to=TP.DOUBLE)
        n = g.op("Cast", [g.op("MatMul", [xd, w], "nd")], "n", to=TP.FLOAT)
    return _finish(ctx, g, node, n, (node.out_features,))


def emit_conv(ctx: Emitter, g: Graph, node: Conv2d, ins: list[str]) -> str:
    """A float32 ``Conv`` on integer codes when exact, else the float64 im2col."""
    x = ins[0]
    exact = ctx.exact_f32(node)
    codes = codes_of(node.weights)  # (C_out, C_in/g, kh, kw)
    c_out, _, kh, kw = codes.shape
    (ph, pw), (sh, sw), (dh, dw), groups = node.padding, node.stride, node.dilation, node.groups
    if exact:
        w = decoded(ctx, node, codes, np.float32, "conv", True)
        n = g.op("Conv", [x, w], "n", kernel_shape=[kh, kw], pads=[ph, pw, ph, pw], strides=[sh, sw],
                 dilations=[dh, dw], group=groups)
        return _finish(ctx, g, node, n, (c_out, 1, 1))
    return _conv_im2col(ctx, g, node, x, codes)


def _conv_im2col(ctx: Emitter, g: Graph, node: Conv2d, x: str, codes: np.ndarray) -> str:
    """float64 im2col: (B, taps, C, Ho, Wo) -> (B, G, C_in_g·taps, Ho·Wo), then one batched MatMul."""
    TP = ctx.onnx.TensorProto
    c_out, c_in_g, kh, kw = codes.shape
    (ph, pw), (sh, sw), (dh, dw), groups = node.padding, node.stride, node.dilation, node.groups
    _, ho, wo = ctx.ticket.shapes[node.name]
    wmat = codes.reshape(groups, c_out // groups, c_in_g * kh * kw)
    w = decoded(ctx, node, wmat, np.float64, "conv-im2col", False)
    xd = padded_double(ctx, g, x, ph, pw)
    taps = []
    axes = ctx.outer.i64([2, 3], "axes")
    steps = ctx.outer.i64([sh, sw], "steps")
    unsq = ctx.outer.i64([1], "axes")
    for ki in range(kh):
        for kj in range(kw):
            starts = ctx.outer.i64([ki * dh, kj * dw], "starts")
            ends = ctx.outer.i64([ki * dh + (ho - 1) * sh + 1, kj * dw + (wo - 1) * sw + 1], "ends")
            tap = g.op("Slice", [xd, starts, ends, axes, steps], "tap")
            taps.append(g.op("Unsqueeze", [tap, unsq], "tap"))
    cols = taps[0] if len(taps) == 1 else g.op("Concat", taps, "cols", axis=1)
    cols = g.op("Reshape", [cols, ctx.outer.i64([0, kh * kw, groups, c_in_g, ho * wo])], "cols")
    cols = g.op("Transpose", [cols], "cols", perm=[0, 2, 3, 1, 4])
    cols = g.op("Reshape", [cols, ctx.outer.i64([0, groups, c_in_g * kh * kw, ho * wo])], "cols")
    nd = g.op("MatMul", [w, cols], "nd")  # (B, G, C_out/G, Ho·Wo)
    nd = g.op("Reshape", [nd, ctx.outer.i64([0, c_out, ho, wo])], "nd")
    return _finish(ctx, g, node, g.op("Cast", [nd], "n", to=TP.FLOAT), (c_out, 1, 1))


def padded_double(ctx: Emitter, g: Graph, x: str, ph: int, pw: int) -> str:
    """``x`` cast to float64 and zero-padded by (ph, pw) on both sides of H and W."""
    xd = g.op("Cast", [x], "xd", to=ctx.onnx.TensorProto.DOUBLE)
    if ph or pw:
        xd = g.op("Pad", [xd, ctx.outer.i64([0, 0, ph, pw, 0, 0, ph, pw], "pads")], "xpad", mode="constant")
    return xd


def _finish(ctx: Emitter, g: Graph, node: Linear | Conv2d, n: str, channel_shape: tuple[int, ...]) -> str:
    """float32(n) · scale (binary/int8), then + bias, each one float32 op."""
    w = node.weights
    out = n
    if not isinstance(w, FloatWeights):
        scale = np.asarray(w.channel_scale(), np.float32)
        scale = scale[:1].reshape(()) if np.all(scale.view(np.uint32) == scale[:1].view(np.uint32)) \
            else scale.reshape(channel_shape)
        out = g.op("Mul", [out, ctx.cached_const(node, "scale", scale)], "scaled")
    if node.bias is not None:
        out = g.op("Add", [out, ctx.cached_const(node, "bias", node.bias.reshape(channel_shape))], "biased")
    return out


__all__ = ["emit_conv", "emit_linear", "padded_double"]
