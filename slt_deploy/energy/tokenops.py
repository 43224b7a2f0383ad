"""Counting the token / attention kinds in the energy report (exact integers from a recorded run).

A MatMul, Mul or Reduce is an *operation layer*: it has no weights, its operands are
activations. At step ``t`` of sample ``b``, with operands recorded in the run::

    MatMul a (.., m, k) · b (.., k, n):
        eff = Σ_(..) Σ_k nnz(a[.., :, k]) · nnz(b[.., k, :])     the pairs of nonzero operands (for spikes:
                                                                 the coincidences), per head = per leading index
    Mul     eff = #(a ≠ 0 ∧ b ≠ 0)                               (broadcast as the node does; spikes: an AND)
    Reduce  eff = #(x ≠ 0)                                       additions only: always accumulates
    bin     = every value of every operand in {−1, 0, 1}         (NeuroBench's rule: AC call, else MAC call)

Static counts of one pass (the dense operation count, every operand value taken as nonzero)::

    FLOPs(MatMul) = prod(a[:-2]) · m · k · n       FLOPs(Mul) = size(y)       FLOPs(Reduce) = size(x)
    buffer(MatMul) = size(b)  values: the operand a MatMul holds while the other streams past it

**All tokens.** A token mask (``Select``) drops tokens; the baselines of the report (dense SNN,
ANNs) and the ``all-tokens`` variant keep every token. :func:`full_shapes` follows each node's
shape with every Select undone (views keep track of the token axis; a Reshape maps a grown axis
to the output axis with the same prefix products on both sides, or merges it), and a layer's *token factor* is

    token_factor_l = FLOPs_l(all tokens) / FLOPs_l(kept tokens)        (neurons: size ratio)

e.g. 2 for a per-token projection with half the tokens kept, 4 for ``Q·Kᵀ`` (both of its
token axes grow). When the token axis cannot be followed (a Reshape mixing it with another
axis, a Linear over flattened tokens) every factor is 1 and the report says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SltValidationError
from ..ir.graph import Ticket
from ..ir.neurons import NeuronLayer
from ..ir.nodes import Conv2d, Input, Linear, Shape
from ..ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose

OP_KINDS: tuple[type, ...] = (MatMul, Mul, Reduce)
VIEW_KINDS: tuple[type, ...] = (Reshape, Transpose, Select)


def operands(ticket: Ticket, result: Any, name: str) -> list[np.ndarray]:
    """The recorded ``(T, batch, *shape)`` operands of an operation layer, in edge order."""
    out = []
    for e in ticket.inputs_of(name):
        src = result.layers[e.src]
        if e.recurrent:
            src = np.concatenate([np.zeros_like(src[:1]), src[:-1]])
        out.append(src)
    return out


def binary_calls(*xs: np.ndarray) -> np.ndarray:
    """``(T, B)``: every value of every operand of the call in {−1, 0, 1}."""
    ok = np.ones(xs[0].shape[:2], bool)
    for x in xs:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        ok &= np.all((flat == 0) | (flat == 1) | (flat == -1), axis=2)
    return ok


def op_effective(node: Any, ops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(eff (T,B), binary (T,B), per head (T,B,H) or None)`` of one operation layer (module docstring)."""
    T, B = ops[0].shape[:2]
    if isinstance(node, MatMul):
        a, b = ops
        za = (a != 0).sum(axis=-2, dtype=np.int64)  # (T, B, .., k): nonzero a per column
        zb = (b != 0).sum(axis=-1, dtype=np.int64)  # (T, B, .., k): nonzero b per row
        per = (za * zb).sum(axis=-1).reshape(T, B, -1)
        return per.sum(axis=2), binary_calls(a, b), (per if per.shape[2] > 1 else None)
    if isinstance(node, Mul):
        both = (ops[0] != 0) & (ops[1] != 0)
        return both.reshape(T, B, -1).sum(axis=2, dtype=np.int64), binary_calls(*ops), None
    if isinstance(node, Reduce):
        eff = (ops[0] != 0).reshape(T, B, -1).sum(axis=2, dtype=np.int64)
        return eff, np.ones((T, B), bool), None
    raise TypeError(f"not an operation layer: {type(node).__name__}")


def op_flops(node: Any, in_shapes: list[Shape], out_shape: Shape) -> int:
    """Dense operations of one pass of an operation layer (module docstring)."""
    if isinstance(node, MatMul):
        a, b = in_shapes
        return math.prod(a[:-2]) * a[-2] * a[-1] * b[-1]
    if isinstance(node, Mul):
        return math.prod(out_shape)
    return math.prod(in_shapes[0])


def op_tokens(node: Any, in_shapes: list[Shape], out_shape: Shape) -> int:
    """The token count an operation layer works on: MatMul ``m`` (query tokens), Mul the output's
    second-to-last axis, Reduce the reduced axis."""
    if isinstance(node, MatMul):
        return int(in_shapes[0][-2])
    if isinstance(node, Mul):
        return int(out_shape[-2]) if len(out_shape) >= 2 else 1
    return int(in_shapes[0][node.axis])


def buffer_values(node: Any, in_shapes: list[Shape]) -> int:
    """Values a MatMul buffers per pass (its second operand); 0 for the other layers."""
    return math.prod(in_shapes[1]) if isinstance(node, MatMul) else 0


def synapse_flops(node: Linear | Conv2d, out_shape: Shape, dense: bool = True) -> int:
    """MACs of one pass: weights (all, or the kept ones) times output positions."""
    w = node.weights.mask.size if dense else int(np.count_nonzero(node.weights.mask))
    return int(w) * (int(out_shape[1]) * int(out_shape[2]) if isinstance(node, Conv2d) else 1)


def layer_flops(ticket: Ticket, name: str, shapes: dict[str, Shape]) -> int:
    """Dense operations of one pass of a synapse or operation layer under ``shapes``."""
    node = ticket.node(name)
    if isinstance(node, (Linear, Conv2d)):
        return synapse_flops(node, shapes[name])
    return op_flops(node, [shapes[e.src] for e in ticket.inputs_of(name)], shapes[name])


def _reshape_full(node: Reshape, kept: Shape, full: Shape) -> Shape | None:
    """Output shape with all tokens: input and output axes are grouped between the boundaries where
    their prefix products agree; a group whose input axes grew maps to one output axis (a merge keeps
    the product), else the token axis is lost (None)."""
    out = node.shape
    cuts_in = {math.prod(kept[:i]): i for i in range(len(kept) + 1)}
    cuts = [(cuts_in[p], j) for j in range(len(out) + 1) if (p := math.prod(out[:j])) in cuts_in]
    result: list[int] = []
    for (i0, j0), (i1, j1) in zip(cuts, cuts[1:], strict=False):
        if tuple(kept[i0:i1]) == tuple(full[i0:i1]):
            result += out[j0:j1]
        elif j1 - j0 == 1:
            result.append(math.prod(full[i0:i1]))
        else:
            return None
    return tuple(result)


def full_shapes(ticket: Ticket) -> dict[str, Shape] | None:
    """Every node's per-sample shape with each token mask (Select) undone; None when a token axis
    cannot be followed (see the module docstring). Equals ``ticket.shapes`` without a Select."""
    if not any(isinstance(n, Select) for n in ticket.nodes):
        return dict(ticket.shapes)
    full: dict[str, Shape] = {}
    for name in ticket.order:
        node = ticket.node(name)
        ins = [e.src for e in ticket.inputs_of(name)]
        if isinstance(node, Input):
            full[name] = ticket.shapes[name]
        elif isinstance(node, Select):
            full[name] = full[ins[0]]
        elif isinstance(node, Reshape):
            shape = _reshape_full(node, ticket.shapes[ins[0]], full[ins[0]])
            if shape is None:
                return None
            full[name] = shape
        elif isinstance(node, NeuronLayer):
            full[name] = full[ins[0]]
        else:
            try:
                full[name] = tuple(node.out_shape([full[s] for s in ins]))
            except SltValidationError:
                return None
    return full


def token_factors(ticket: Ticket) -> tuple[dict[str, float], bool]:
    """``({layer or neuron layer: factor}, followed)``: all-tokens / kept-tokens work per layer
    (module docstring); every factor 1 and ``followed`` False when the token axis is lost."""
    full = full_shapes(ticket)
    names = [n for n in ticket.order if isinstance(ticket.node(n), (Linear, Conv2d, *OP_KINDS, NeuronLayer))]
    if full is None:
        return dict.fromkeys(names, 1.0), False
    out: dict[str, float] = {}
    for name in names:
        if isinstance(ticket.node(name), NeuronLayer):
            out[name] = math.prod(full[name]) / math.prod(ticket.shapes[name])
        else:
            kept = layer_flops(ticket, name, dict(ticket.shapes))
            out[name] = layer_flops(ticket, name, full) / kept if kept else 1.0
    return out, True


def full_buffer_values(ticket: Ticket, name: str) -> int:
    """Values a MatMul buffers per pass with every token kept."""
    full = full_shapes(ticket) or dict(ticket.shapes)
    return buffer_values(ticket.node(name), [full[e.src] for e in ticket.inputs_of(name)])


def operand_density(ticket: Ticket, src: str, sparsity: float) -> float:
    """Nonzero fraction the estimated ANN assumes for an operand produced by ``src``: ``1 − s`` when it
    is (through views) a ReLU output (a neuron layer of the ticket), else 1 (products and sums of
    ReLU outputs are taken as dense: an upper bound)."""
    node = ticket.node(src)
    while isinstance(node, VIEW_KINDS):
        src = ticket.inputs_of(src)[0].src
        node = ticket.node(src)
    return 1.0 - sparsity if isinstance(node, NeuronLayer) else 1.0


__all__ = ["OP_KINDS", "VIEW_KINDS", "binary_calls", "buffer_values", "full_buffer_values", "full_shapes",
           "layer_flops", "op_effective", "op_flops", "op_tokens", "operand_density", "operands", "synapse_flops",
           "token_factors"]
