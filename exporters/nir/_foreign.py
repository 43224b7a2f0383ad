"""Foreign NIR graphs (not written by slt) -> Ticket, read with the discretisation of ``_common``
(snnTorch's), keeping only what the IR states exactly; the wiring is :mod:`._wire` (linear)."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import numpy as np

from ...ir.graph import Edge, Encoding, Ticket
from ...ir.neurons import LI, LIF
from ...ir.nodes import Add, Conv2d, Flatten, Input, Linear, Node, Output, Shape
from ...ir.weights import FloatWeights
from ._common import (
    DEFAULT_TIMESTEPS,
    GAIN_RTOL,
    as_array,
    beta_from_tau,
)
from ._fields import _broadcast, _Fail, _float32, _ints, _numeric, _pool, _port, _shape, _timesteps, _type

NEURON_TYPES = ("LIF", "IF", "LI", "I")
SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", *NEURON_TYPES)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


class _Foreign:
    """Any NIR graph, read with the snnTorch discretisation (see docs/targets-nir.md)."""

    def __init__(self, graph: Any, dt: float, timesteps: int | None) -> None:
        self.dt = dt
        self.timesteps = DEFAULT_TIMESTEPS if timesteps is None else timesteps
        self.nodes, self.edges = self.flatten(graph, "", 0)
        self.rename = self._names()
        self._used = set(self.rename.values())  # names taken, for unique()

    # ---------------------------------------------------------------- structure
    def flatten(self, graph: Any, prefix: str, depth: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Inline nested NIRGraph nodes (names 'outer.inner'); returns nodes and edges."""
        import nir

        if depth > 16:
            raise _Fail("NIR subgraphs nested more than 16 levels deep")
        if not isinstance(graph.nodes, dict) or not isinstance(graph.edges, (list, tuple)):
            raise _Fail(f"graph '{prefix or '/'}' has malformed nodes or edges")
        nodes: dict[str, Any] = {}
        edges: list[tuple[str, str]] = []
        ports: dict[str, tuple[list[str], list[str]]] = {}
        for key, node in graph.nodes.items():
            key = str(key)
            if isinstance(node, nir.NIRGraph):
                inner, inner_edges = self.flatten(node, f"{prefix}{key}.", depth + 1)
                ins = [k for k, v in inner.items() if isinstance(v, nir.Input)]
                outs = [k for k, v in inner.items() if isinstance(v, nir.Output)]
                if len(ins) != 1 or len(outs) != 1:
                    raise _Fail(f"subgraph '{prefix}{key}' needs exactly one Input and one Output node")
                if (ins[0], outs[0]) in inner_edges:
                    raise _Fail(f"subgraph '{prefix}{key}' connects its Input straight to its Output")
                nodes.update({k: v for k, v in inner.items() if k not in (ins[0], outs[0])})
                edges.extend((s, d) for s, d in inner_edges if s != ins[0] and d != outs[0])
                ports[key] = ([d for s, d in inner_edges if s == ins[0]], [s for s, d in inner_edges if d == outs[0]])
            else:
                nodes[f"{prefix}{key}"] = node
        names = {str(k) for k in graph.nodes}
        for edge in graph.edges:
            if not (isinstance(edge, (tuple, list)) and len(edge) == 2 and all(isinstance(v, str) for v in edge)):
                raise _Fail(f"graph '{prefix or '/'}' has a malformed edge {edge!r}")
            src, dst = edge
            for end in (src, dst):
                if end not in names:
                    raise _Fail(f"edge {prefix}{src} -> {prefix}{dst} names a missing node '{prefix}{end}'")
            srcs = ports[src][1] if src in ports else [f"{prefix}{src}"]
            dsts = ports[dst][0] if dst in ports else [f"{prefix}{dst}"]
            edges.extend((a, b) for a in srcs for b in dsts)
        return nodes, edges

    def _names(self) -> dict[str, str]:
        """NIR names -> valid, unique IR names (letters, digits, '_', '.', '-'; at most 128)."""
        out: dict[str, str] = {}
        used: set[str] = set()
        for name in self.nodes:
            base = _NAME_BAD.sub("_", name)[:120] or "node"
            if not re.match(r"[A-Za-z0-9_]", base[0]):
                base = "n" + base[:119]
            cand, i = base, 2
            while cand in used:
                cand, i = f"{base}_{i}", i + 1
            used.add(cand)
            out[name] = cand
        return out

    def unique(self, base: str) -> str:
        used = self._used
        cand, i = base[:120], 2
        while cand in used:
            cand, i = f"{base[:116]}_{i}", i + 1
        used.add(cand)
        return cand

    # ---------------------------------------------------------------- conversion
    def ticket(self) -> Ticket:
        import nir

        for name, node in self.nodes.items():
            if _type(node) not in SUPPORTED:
                raise _Fail(
                    f"node '{name}' is a NIR {_type(node)}, which slt does not import "
                    f"(supported: {', '.join(SUPPORTED)})"
                )
        for kind in (nir.Input, nir.Output):
            found = [k for k, v in self.nodes.items() if isinstance(v, kind)]
            if len(found) != 1:
                raise _Fail(f"the graph needs exactly one {kind.__name__} node, found {len(found)}")
        self.extra: dict[str, Node] = {}
        incoming = self._wire()
        order = self._order(incoming)
        built: dict[str, Node] = {}
        shapes: dict[str, Shape] = {}
        for name in order:
            ins = incoming[name]
            known = [shapes[s] for s, _ in ins if s in shapes]
            node = self.extra.get(name) or self.nodes[self._orig[name]]
            built[name], shapes[name] = self._node(name, node, known)
        ir_nodes = [built[self.rename[k]] for k in self.nodes] + list(self.extra.values())
        edges = [Edge(s, d, rec) for d, ins in incoming.items() for s, rec in ins]
        meta = {"source": "nir", "nir.dt": repr(self.dt)}
        return Ticket(tuple(ir_nodes), tuple(edges), _timesteps(self.timesteps), Encoding("direct"), meta)

    def _wire(self) -> dict[str, list[tuple[str, bool]]]:
        """IR inputs per node: recurrent marks (edges leaving a neuron that close a cycle) and
        an Add wherever several edges meet (NIR sums them)."""
        from ._wire import first_duplicate, mark_recurrent, non_neuron_cycle_edge

        self._orig = {v: k for k, v in self.rename.items()}
        is_neuron = {k: _type(v) in NEURON_TYPES for k, v in self.nodes.items()}
        cyclic = non_neuron_cycle_edge(self.nodes, self.edges, is_neuron)
        if cyclic is not None:  # a cycle of non-neuron nodes has no state to break it
            raise _Fail(f"edge {cyclic[0]} -> {cyclic[1]} closes a cycle without a neuron layer; slt needs state in "
                        "every cycle")
        marked = mark_recurrent(list(self.nodes), self.edges, is_neuron)
        dup = first_duplicate(marked)
        if dup is not None:
            raise _Fail(f"edge {dup[0]} -> {dup[1]} appears twice")
        incoming: dict[str, list[tuple[str, bool]]] = {self.rename[k]: [] for k in self.nodes}
        for s, d, rec in marked:
            incoming[self.rename[d]].append((self.rename[s], rec))
        for dst in list(incoming):
            if len(incoming[dst]) > 1:
                add = self.unique(f"{dst}_sum")
                self.extra[add] = Add(add)
                incoming[add] = incoming[dst]
                incoming[dst] = [(add, False)]
        return incoming

    def _order(self, incoming: dict[str, list[tuple[str, bool]]]) -> list[str]:
        pending = {n: sum(not rec for _, rec in ins) for n, ins in incoming.items()}
        consumers: dict[str, list[str]] = {n: [] for n in incoming}
        for n, ins in incoming.items():
            for s, rec in ins:
                if not rec:
                    consumers[s].append(n)
        ready = deque(n for n in incoming if pending[n] == 0)
        order: list[str] = []
        while ready:
            n = ready.popleft()
            order.append(n)
            for c in consumers[n]:
                pending[c] -= 1
                if pending[c] == 0:
                    ready.append(c)
        if len(order) != len(incoming):  # pragma: no cover - _wire breaks every cycle
            raise _Fail("the graph has a cycle slt cannot schedule")
        return order

    def _node(self, name: str, node: Any, known: list[Shape]) -> tuple[Node, Shape]:
        """The IR node for one NIR node and its output shape (``known``: input shapes seen so far)."""
        label = self._orig.get(name, name)
        kind = _type(node) if not isinstance(node, Add) else "Add"
        if kind == "Add":
            if not known:
                raise _Fail(f"cannot infer the shape of the sum into '{name}'")
            return node, known[0]
        if kind == "Input":
            shape = _shape(_port(node.input_type, "input"), label, "input shape")
            return Input(name, shape=shape), shape
        if kind in NEURON_TYPES:
            return self._neuron(name, label, kind, node, known)
        in_shape = known[0] if known else self._fallback_shape(label, kind, node)
        if kind == "Output":
            declared = _port(node.output_type, "output")
            if declared is not None and as_array(declared).size and _shape(declared, label, "output shape") != in_shape:
                raise _Fail(f"node '{label}': Output declares shape {as_array(declared).tolist()}, "
                            f"the graph computes {list(in_shape)}")
            return Output(name), in_shape
        ir = self._layer(name, label, kind, node, in_shape)
        return ir, ir.out_shape([in_shape])

    def _fallback_shape(self, label: str, kind: str, node: Any) -> Shape:
        """Input shape of a node whose only inputs are recurrent (not yet computed)."""
        if kind in ("Affine", "Linear"):
            return (int(as_array(node.weight).shape[-1]),)
        if kind == "Conv2d" and node.input_shape is not None:
            w = as_array(node.weight)
            return (int(w.shape[1]) * _ints(node.groups, label, "groups", 1)[0],
                    *_ints(node.input_shape, label, "input_shape", 2))
        raise _Fail(f"node '{label}': cannot infer its input shape (its only inputs are recurrent)")

    def _layer(self, name: str, label: str, kind: str, node: Any, in_shape: Shape) -> Node:
        if kind in ("Affine", "Linear"):
            w = _float32(node.weight, label, "weight")
            if w.ndim != 2:
                raise _Fail(f"node '{label}': weight must be 2-D (out, in), got shape {w.shape}")
            bias = None
            if kind == "Affine":
                bias = _float32(node.bias, label, "bias")
                if bias.shape not in ((w.shape[0],), ()):
                    raise _Fail(f"node '{label}': bias has shape {bias.shape}, expected ({w.shape[0]},)")
                bias = np.broadcast_to(bias, (w.shape[0],))
            return Linear(name, FloatWeights(w != 0, w), bias)
        if kind == "Conv2d":
            w = _float32(node.weight, label, "weight")
            if w.ndim != 4:
                raise _Fail(f"node '{label}': weight must be 4-D (C_out, C_in/groups, kH, kW), got shape {w.shape}")
            bias = _float32(node.bias, label, "bias")
            if bias.shape not in ((w.shape[0],), ()):
                raise _Fail(f"node '{label}': bias has shape {bias.shape}, expected ({w.shape[0]},)")
            dilation = _ints(node.dilation, label, "dilation", 2)
            return Conv2d(name, FloatWeights(w != 0, w), np.broadcast_to(bias, (w.shape[0],)),
                          stride=_ints(node.stride, label, "stride", 2),
                          padding=self._padding(label, node.padding, w.shape[2:], dilation),
                          dilation=dilation, groups=_ints(node.groups, label, "groups", 1)[0])
        if kind in ("SumPool2d", "AvgPool2d"):
            return _pool(name, kind.lower(), node)
        # Flatten: only the per-sample flatten to one axis
        nd = len(in_shape)
        start = _ints(node.start_dim, label, "start_dim", 1)[0]
        end = _ints(node.end_dim, label, "end_dim", 1)[0]
        whole = -nd <= start < nd and -nd <= end < nd and start % nd == 0 and end % nd == nd - 1
        if not whole:
            raise _Fail(f"node '{label}': Flatten(start_dim={start}, end_dim={end}) of a {list(in_shape)} input does "
                        "not flatten the whole sample; slt flattens per sample to one axis")
        return Flatten(name)

    @staticmethod
    def _padding(label: str, padding: Any, kernel: tuple[int, ...], dilation: tuple[int, int]) -> tuple[int, int]:
        if isinstance(padding, bytes):
            padding = padding.decode("utf-8", "replace")
        if isinstance(padding, str):
            if padding == "valid":
                return (0, 0)
            if padding == "same":
                span = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
                if any(s % 2 for s in span):
                    raise _Fail(f"node '{label}': padding 'same' pads asymmetrically for this kernel; not supported")
                return (span[0] // 2, span[1] // 2)
            raise _Fail(f"node '{label}': padding {padding!r} is not supported")
        return _ints(padding, label, "padding", 2)  # type: ignore[return-value]

    def _neuron(self, name: str, label: str, kind: str, node: Any, known: list[Shape]) -> tuple[Node, Shape]:
        params = {f: _numeric(getattr(node, f), label, f) for f in ("tau", "r", "v_leak", "v_threshold", "v_reset")
                  if getattr(node, f, None) is not None}
        if known:
            shape = known[0]
        else:
            dims = [p.shape for p in params.values() if p.ndim > 0]
            if not dims:
                raise _Fail(f"node '{label}': cannot infer the layer shape (scalar parameters, recurrent input only)")
            shape = tuple(int(v) for v in dims[0])
        p = {f: _broadcast(a, shape, label, f) for f, a in params.items()}
        for f in ("v_leak", "v_reset"):
            if f in p and not (np.all(np.isfinite(p[f])) and np.all(p[f] == 0)):
                raise _Fail(f"node '{label}': {f} != 0 is not supported (slt neurons leak to 0 and reset to 0)")
        if kind in ("IF", "I"):
            if not np.all(p["r"] == 1):
                raise _Fail(f"node '{label}': {kind} with r != 1 is not supported (slt reads a NIR {kind} as v += I)")
            beta = np.ones(shape, np.float32)
        else:
            beta = self._beta(label, p["tau"], p["r"])
        if kind in ("LI", "I"):
            return LI(name, shape=shape, beta=beta), shape
        theta = _float32(p["v_threshold"], label, "v_threshold")
        return LIF(name, shape=shape, beta=beta, threshold=theta, reset="zero"), shape

    def _beta(self, label: str, tau: np.ndarray, r: np.ndarray) -> np.ndarray:
        if np.any(tau <= 0):
            raise _Fail(f"node '{label}': tau must be positive")
        tau = tau.astype(np.float32) if tau.dtype != np.float64 else tau
        with np.errstate(all="ignore"):
            gain = np.where(np.isinf(tau) & np.isinf(r), 1.0,
                            r.astype(np.float64) * self.dt / tau.astype(np.float64))
        if not np.all(np.abs(gain - 1) <= GAIN_RTOL):
            bad = gain.reshape(-1)[np.flatnonzero(~(np.abs(gain - 1) <= GAIN_RTOL).reshape(-1))[0]]
            raise _Fail(
                f"node '{label}': input gain r*dt/tau = {bad:.6g} at dt={self.dt:g}, not 1; slt reads a NIR LIF/LI as "
                "v[t] = beta*v[t-1] + I[t] with r = tau/dt (snnTorch's discretisation); pass the dt the graph was "
                "made for, or fold the gain into the weights"
            )
        beta = beta_from_tau(tau, self.dt)
        if np.any(beta < 0) or np.any(beta > 1):
            raise _Fail(f"node '{label}': tau < dt={self.dt:g} gives a decay beta = 1 - dt/tau outside [0, 1]")
        return beta
