"""What every per-kind emitter may use while the model is built: :class:`Emitter`.

The model builder (``_builder.ModelBuilder``) is an :class:`Emitter`; the emit functions of
the handler table (``_kinds.HANDLERS``) receive it as ``ctx`` and add ONNX nodes to the
graph ``g`` they are given: the Loop body (or the outer graph when unrolled) for per-step
values, the outer graph for values that do not change over time. Constants always go to
the outer graph, once per (node, role), so the unrolled layout shares them across steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.graph import Edge, Ticket
from ...ir.nodes import Node
from ...ir.weights import FloatWeights
from ._graph import Graph, ident
from ._meta import EXACT_F32_SUM


class Emitter:
    """Shared state of one build: the outer graph, constant and decode caches, integer bounds.

    ``bound[name]``: max |value| of node ``name``'s values when they are integers (spikes,
    rate-coded input, sums and maxima of those), else None; set by the builder's plan.
    """

    def __init__(self, onnx: Any, ticket: Ticket, weights: str) -> None:
        self.onnx = onnx
        self.ticket = ticket
        self.weights = weights  # weight storage: auto, dense, bitmask, index, float32
        self.counter = [0]
        self.outer = Graph(onnx, self.counter)
        self.incoming: dict[str, list[Edge]] = {name: ticket.inputs_of(name) for name in ticket.order}
        self.bound: dict[str, float | None] = {}
        self.layer_info: list[dict[str, Any]] = []
        self.decoded: dict[tuple[str, str], str] = {}  # (node, dtype/layout) -> dense code tensor
        self.consts: dict[tuple[str, str], str] = {}

    def input_bound(self, node: Node) -> float | None:
        """Integer bound of the values on ``node``'s first input edge (None: not integer-valued)."""
        return self.bound[self.incoming[node.name][0].src]

    def exact_f32(self, node: Any) -> bool:
        """True when the float32 sum of integer codes times integer inputs is exact (Linear, Conv2d)."""
        w = node.weights
        bound = self.input_bound(node)
        if isinstance(w, FloatWeights) or bound is None:
            return False
        rows = np.abs(w.integer_values().astype(np.int64)).reshape(w.mask.shape[0], -1).sum(axis=1)
        return float(rows.max(initial=0)) * bound < EXACT_F32_SUM

    def cached_const(self, node: Node, what: str, array: np.ndarray) -> str:
        """An outer-graph initializer, created once per (node, what)."""
        key = (node.name, what)
        if key not in self.consts:
            self.consts[key] = self.outer.const(np.asarray(array), f"{ident(node.name)}_{what}")
        return self.consts[key]

    def param(self, node: Node, what: str, array: Any) -> str:
        """A float32 neuron parameter, stored as a scalar when all values are equal."""
        key = (node.name, what)
        if key not in self.consts:
            a = np.asarray(array, np.float32)
            if a.size and np.all(a.view(np.uint32) == a.reshape(-1)[:1].view(np.uint32)):
                a = a.reshape(-1)[0]
            self.consts[key] = self.outer.const(np.asarray(a, np.float32), f"{ident(node.name)}_{what}")
        return self.consts[key]

    def zero_f32(self) -> str:
        """The shared float32 scalar 0."""
        key = ("", "zero_f32")
        if key not in self.consts:
            self.consts[key] = self.outer.scalar(0.0, np.float32, "zero")
        return self.consts[key]


__all__ = ["Emitter"]
