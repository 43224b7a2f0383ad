"""Ticket rewrites that provably change nothing the ticket computes.

:func:`store_binary_where_exact` turns float32 weights that already are binary (every kept
weight of an output channel is ``+α`` or ``−α``, bit for bit) into :class:`BinaryWeights`, which
store one bit per synapse instead of 32. It does so only where the two encodings compute the same
value: the float32 rule rounds the exact sum ``Σ ±α·x`` once, the binary rule rounds ``n = Σ ±x``
and then ``float(n)·α``. When every input value is an integer below 2^24 (spikes, spike counts,
rate-coded input, sums and max-pools of those) and ``|n| < 2^24``, ``n`` is exact, so both give
``round(n·α)``. On analog input the binary rule rounds twice, so such layers stay float32.
"""

from __future__ import annotations

import numpy as np

from .graph import Edge, Ticket
from .neurons import LIF
from .nodes import Add, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, SumPool2d
from .weights import BinaryWeights, FloatWeights

_INTEGER_PRESERVING = (Flatten.kind, MaxPool2d.kind, SumPool2d.kind)


def integer_bounds(ticket: Ticket) -> dict[str, int | None]:
    """Per node: a bound on |value| when its values are provably integers (spikes, counts), else None."""
    known: dict[str, int | None] = {}

    def of(edge: Edge) -> int | None:
        return (1 if ticket.node(edge.src).kind == LIF.kind else None) if edge.recurrent else known[edge.src]

    for name in ticket.order:
        node: Node = ticket.node(name)
        bounds = [of(e) for e in ticket.inputs_of(name)]
        if node.kind == Input.kind:
            known[name] = 1 if ticket.encoding.kind == "rate" else None  # spike trains may be graded
        elif node.kind == LIF.kind:
            known[name] = 1
        elif node.kind in _INTEGER_PRESERVING and bounds[0] is not None:
            k = node.kernel_size[0] * node.kernel_size[1] if node.kind == SumPool2d.kind else 1  # type: ignore[attr-defined]
            known[name] = bounds[0] * k
        elif node.kind == Add.kind and None not in bounds:
            known[name] = sum(bounds)  # type: ignore[arg-type]
        else:
            known[name] = None
    return known


def binary_form(w: FloatWeights) -> BinaryWeights | None:
    """``w`` as BinaryWeights when every kept weight of each channel is ±α (bit for bit), else None."""
    values = w.values.reshape(w.values.shape[0], -1)
    mask = w.mask.reshape(values.shape)
    alpha = np.zeros(values.shape[0], np.float32)
    for o in range(values.shape[0]):
        kept = np.abs(values[o][mask[o]])
        if kept.size == 0:
            continue
        if not np.all(kept.view(np.uint32) == kept[0].view(np.uint32)):
            return None
        alpha[o] = kept[0]
    negative = np.signbit(w.values) & w.mask
    binary = BinaryWeights(w.mask, negative, alpha)
    dense = np.where(binary.mask, np.where(binary.negative, -1.0, 1.0) * binary.alpha.reshape(
        (-1,) + (1,) * (w.mask.ndim - 1)), 0.0).astype(np.float32)
    return binary if np.array_equal(dense.view(np.uint32), (w.values + np.float32(0)).view(np.uint32)) else None


def store_binary_where_exact(ticket: Ticket) -> tuple[Ticket, list[str]]:
    """The ticket with already-binary float32 layers on integer inputs stored as binary; and their names."""
    bounds = integer_bounds(ticket)
    nodes, changed = [], []
    for node in ticket.nodes:
        new = node
        if node.kind in (Linear.kind, Conv2d.kind) and isinstance(node.weights, FloatWeights):
            (edge,) = ticket.inputs_of(node.name)
            bound = (1 if ticket.node(edge.src).kind == LIF.kind else None) if edge.recurrent else bounds[edge.src]
            fan_in = int(node.weights.mask.reshape(node.weights.mask.shape[0], -1).sum(axis=1).max(initial=0))
            exact = bound is not None and bound * fan_in < 2**24  # n = Σ ±x is exact in float32
            binary = binary_form(node.weights) if exact else None
            if binary is not None:
                new = _with_weights(node, binary)
                changed.append(node.name)
        nodes.append(new)
    if not changed:
        return ticket, []
    return Ticket(tuple(nodes), ticket.edges, ticket.timesteps, ticket.encoding, ticket.metadata), changed


def _with_weights(node: Linear | Conv2d, weights: BinaryWeights) -> Linear | Conv2d:
    if node.kind == Linear.kind:
        return Linear(node.name, weights, node.bias)
    return Conv2d(node.name, weights, node.bias, stride=node.stride, padding=node.padding, dilation=node.dilation,
                  groups=node.groups)
