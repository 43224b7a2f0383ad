"""NIR graph -> Ticket.

Two readings:

- a graph written by slt-deploy (graph metadata ``slt.ticket``): the ticket is rebuilt
  exactly from the metadata, then re-exported and compared field by field with the
  file's NIR nodes and edges, so a file edited after export is refused, not half-read;
- any other NIR graph: read with the discretisation of ``_common`` (snnTorch's), keeping
  only what the IR states exactly, refusing the rest with a message naming the node.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import deque
from typing import Any

import numpy as np

from ...errors import SltError, SltImportError, SltValidationError
from ...ir.graph import MAX_TIMESTEPS, Edge, Encoding, Ticket
from ...ir.neurons import LI, LIF, RLIF
from ...ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, Node, Output, Shape, SumPool2d
from ...ir.weights import FloatWeights
from ...ratecode import LEGACY_RATE_CODE
from ._common import (
    DEFAULT_DT,
    DEFAULT_TIMESTEPS,
    DT_KEY,
    FORMAT,
    GAIN_RTOL,
    TICKET_KEY,
    VERSION,
    as_array,
    beta_from_tau,
    decode_weights,
)

NEURON_TYPES = ("LIF", "IF", "LI", "I")
SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", *NEURON_TYPES)
_NIR_FOR_KIND = {
    "input": ("Input",), "output": ("Output",), "linear": ("Linear", "Affine"), "conv2d": ("Conv2d",),
    "sumpool2d": ("SumPool2d",), "avgpool2d": ("AvgPool2d",), "flatten": ("Flatten",), "lif": ("LIF", "IF"),
    "rlif": ("LIF",),
    "li": ("LI", "I"),
}
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


class _Fail(Exception):
    """Internal: a one-line problem; ``import_graph`` prefixes the source and raises SltImportError."""


def import_graph(graph: Any, timesteps: int | None = None, dt: float | None = None, where: str = "NIR graph") -> Ticket:
    """Convert a ``nir.NIRGraph``; every problem is a one-line :class:`SltImportError`."""
    import nir

    if not isinstance(graph, nir.NIRGraph):
        raise SltImportError(f"{where}: expected a nir.NIRGraph, got {type(graph).__name__}")
    try:
        meta = graph.metadata if isinstance(graph.metadata, dict) else {}
        if TICKET_KEY in meta:
            return _from_slt(graph, meta, timesteps)
        return _Foreign(graph, _dt(dt, meta), timesteps).ticket()
    except _Fail as exc:
        raise SltImportError(f"{where}: {exc}") from None
    except SltValidationError as exc:
        raise SltImportError(f"{where}: not a valid ticket: {exc}") from None
    except SltError:
        raise
    except RecursionError:
        raise SltImportError(f"{where}: the graph is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - an untrusted graph must never escape as a bare exception
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SltImportError(f"{where}: malformed NIR graph ({type(exc).__name__}: {text})") from None


# ====================================================================== helpers
def _dt(dt: Any, meta: dict[str, Any]) -> float:
    if dt is None:
        if DT_KEY not in meta:
            return DEFAULT_DT
        dt, label = meta[DT_KEY], f"graph metadata '{DT_KEY}'"
    else:
        label = "dt"
    a = as_array(dt)
    if a.shape != () or a.dtype.kind not in "iuf" or not math.isfinite(float(a)) or float(a) <= 0:
        raise _Fail(f"{label} must be a positive, finite number of seconds, got {dt!r}")
    return float(a)


def _timesteps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_TIMESTEPS:
        raise _Fail(f"timesteps must be an integer in [1, {MAX_TIMESTEPS}], got {value!r}")
    return int(value)


def _type(node: Any) -> str:
    return type(node).__name__


def _numeric(x: Any, node: str, field: str) -> np.ndarray:
    try:
        a = as_array(x)
    except Exception:  # noqa: BLE001
        raise _Fail(f"node '{node}': field '{field}' is not an array") from None
    if a.dtype.kind not in "biuf":
        raise _Fail(f"node '{node}': field '{field}' is not numeric ({a.dtype})")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise _Fail(f"node '{node}': field '{field}' contains NaN")
    return a


def _float32(x: Any, node: str, field: str, finite: bool = True) -> np.ndarray:
    """float32 values of a field; values float32 cannot hold exactly are refused, not rounded."""
    a = _numeric(x, node, field)
    if finite and not np.all(np.isfinite(a)):
        raise _Fail(f"node '{node}': field '{field}' contains inf")
    out = a.astype(np.float32)
    with np.errstate(all="ignore"):
        same = np.array_equal(out.astype(np.float64), a.astype(np.float64))
    if not same:
        raise _Fail(
            f"node '{node}': field '{field}' ({a.dtype}) has values float32 cannot hold exactly; "
            "slt tickets are float32, convert the file's arrays to float32 first"
        )
    return out


def _broadcast(a: np.ndarray, shape: Shape, node: str, field: str) -> np.ndarray:
    try:
        return np.array(np.broadcast_to(a, shape))
    except ValueError:
        raise _Fail(f"node '{node}': field '{field}' has shape {a.shape}, the layer has shape {shape}") from None


def _ints(x: Any, node: str, field: str, n: int | None = None) -> tuple[int, ...]:
    a = _numeric(x, node, field)
    if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))):
        raise _Fail(f"node '{node}': field '{field}' must hold integers, got {a.tolist()!r}")
    flat = tuple(int(v) for v in a.reshape(-1))
    if n is not None and a.ndim == 0:
        flat = flat * n
    if n is not None and len(flat) != n:
        raise _Fail(f"node '{node}': field '{field}' must be one integer or {n}, got {a.tolist()!r}")
    return flat


def _shape(x: Any, node: str, field: str) -> Shape:
    if x is None:
        raise _Fail(f"node '{node}': {field} is not given")
    s = _ints(x, node, field)
    if as_array(x).ndim != 1 or not s or min(s) < 1:
        raise _Fail(f"node '{node}': {field} must be a list of positive sizes, got {as_array(x).tolist()!r}")
    return s


def _port(types: Any, key: str) -> Any:
    return types.get(key) if isinstance(types, dict) else None


# ====================================================================== slt-written graphs
def _from_slt(graph: Any, meta: dict[str, Any], timesteps: int | None) -> Ticket:
    from ._export import build_graph

    doc = _document(meta[TICKET_KEY])
    dt = _dt(None, meta)
    nodes = {str(k): v for k, v in graph.nodes.items()}
    ir_nodes: list[Node] = []
    for name, kind in doc["nodes"]:
        if kind == "add":
            ir_nodes.append(Add(name))
            continue
        if kind not in _NIR_FOR_KIND:
            raise _Fail(f"node '{name}': slt metadata names unknown kind {kind!r}")
        n = nodes.get(name)
        if n is None:
            raise _Fail(f"node '{name}' ({kind}) is described by the slt metadata but missing from the graph")
        if _type(n) not in _NIR_FOR_KIND[kind]:
            raise _Fail(f"node '{name}': slt metadata says {kind}, the graph has a NIR {_type(n)}")
        ir_nodes.append(_slt_node(name, kind, n))
    described = {name for name, _ in doc["nodes"]}
    extra = [k for k in nodes if k not in described]
    if extra:
        raise _Fail(f"node '{extra[0]}' is not described by the slt metadata (added after export?)")
    enc = doc["encoding"]
    ticket = Ticket(
        tuple(ir_nodes), tuple(Edge(s, d, r) for s, d, r in doc["edges"]),
        _timesteps(doc["timesteps"] if timesteps is None else timesteps),
        Encoding(enc["kind"], enc["seed"], enc.get("code", LEGACY_RATE_CODE if enc["kind"] == "rate" else None)),
        doc["metadata"],
    )
    try:
        again, _ = build_graph(ticket, dt, allow_approximate=True, notes=False)
    except SltError as exc:
        raise _Fail(f"the slt metadata describes a ticket this exporter would not write ({exc})") from None
    _same_graph(again, graph)
    return ticket


def _document(raw: Any) -> dict[str, Any]:
    bad = _Fail(f"graph metadata '{TICKET_KEY}' is not a valid slt ticket description")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise bad
    try:
        doc = json.loads(raw)
    except ValueError:
        raise bad from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad
    if doc.get("version") != VERSION:
        raise _Fail(f"slt ticket description version {doc.get('version')!r} is not supported (this reader: {VERSION})")
    nodes, edges, enc, md = doc.get("nodes"), doc.get("edges"), doc.get("encoding"), doc.get("metadata")
    ok = (
        isinstance(nodes, list) and all(isinstance(n, list) and len(n) == 2 and all(isinstance(v, str) for v in n)
                                        for n in nodes)
        and isinstance(edges, list)
        and all(isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[1], str)
                and isinstance(e[2], bool) for e in edges)
        and isinstance(enc, dict) and set(enc) in ({"kind", "seed"}, {"kind", "seed", "code"})
        and isinstance(md, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
    )
    if not ok:
        raise bad
    return doc


def _meta_array(meta: dict[str, Any], key: str, node: str, optional: bool = False) -> np.ndarray | None:
    if key not in meta:
        if optional:
            return None
        raise _Fail(f"node '{node}': slt metadata field '{key}' is missing")
    a = as_array(meta[key])
    if a.dtype != np.float32 or not np.all(np.isfinite(a)):
        raise _Fail(f"node '{node}': slt metadata field '{key}' must be finite float32 values")
    return a


def _meta_str(meta: dict[str, Any], key: str, node: str) -> str:
    v = meta.get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        raise _Fail(f"node '{node}': slt metadata field '{key}' is missing")
    return v


def _slt_node(name: str, kind: str, n: Any) -> Node:
    meta = n.metadata if isinstance(n.metadata, dict) else {}
    if kind == "input":
        return Input(name, shape=_shape(_port(n.input_type, "input"), name, "input shape"))
    if kind == "output":
        return Output(name)
    if kind in ("linear", "conv2d"):
        dense = as_array(n.weight)
        if dense.dtype != np.float32 or dense.ndim != (2 if kind == "linear" else 4):
            raise _Fail(f"node '{name}': weight must be a float32 array of {2 if kind == 'linear' else 4} dimensions")
        weights, reason = decode_weights(meta, dense)
        if weights is None:
            raise _Fail(f"node '{name}': {reason}")
        bias = _meta_array(meta, "slt.bias", name, optional=True)
        if kind == "linear":
            return Linear(name, weights, bias)
        return Conv2d(name, weights, bias, stride=_ints(n.stride, name, "stride", 2),
                      padding=_ints(n.padding, name, "padding", 2), dilation=_ints(n.dilation, name, "dilation", 2),
                      groups=_ints(n.groups, name, "groups", 1)[0])
    if kind in ("sumpool2d", "avgpool2d"):
        return _pool(name, kind, n)
    if kind == "flatten":
        return Flatten(name)
    beta = _meta_array(meta, "slt.beta", name)
    bias = _meta_array(meta, "slt.bias", name, optional=True)
    shape = tuple(int(v) for v in beta.shape)  # type: ignore[union-attr]
    if kind == "li":
        return LI(name, shape=shape, beta=beta, bias=bias)
    charge = _meta_str(meta, "slt.charge", name)
    cls = RLIF if kind == "rlif" else LIF
    return cls(name, shape=shape, beta=beta, threshold=_meta_array(meta, "slt.threshold", name), bias=bias,
               reset=_meta_str(meta, "slt.reset", name), reset_amount=_meta_array(meta, "slt.reset_amount", name),
               charge=charge, tau=_meta_array(meta, "slt.tau", name, optional=charge == "leaky"))


def _pool(name: str, kind: str, n: Any) -> Node:
    cls = SumPool2d if kind == "sumpool2d" else AvgPool2d
    return cls(name, kernel_size=_ints(n.kernel_size, name, "kernel_size", 2),
               stride=_ints(n.stride, name, "stride", 2), padding=_ints(n.padding, name, "padding", 2))


def _same_graph(expected: Any, got: Any) -> None:
    """Every NIR field of the file equals what the exporter writes for the rebuilt ticket."""
    for name, want in expected.nodes.items():
        have = got.nodes[name]
        if type(have) is not type(want):
            raise _Fail(f"node '{name}': the graph has a NIR {_type(have)}, the slt metadata implies {_type(want)}")
        for f in dataclasses.fields(want):
            if f.name == "metadata" or (f.name in ("input_type", "output_type")
                                        and not isinstance(want, _io_types())):
                continue
            if not _equal(getattr(want, f.name), getattr(have, f.name)):
                raise _Fail(f"node '{name}': field '{f.name}' disagrees with the slt metadata (edited after export?)")
    want_edges = sorted((str(a), str(b)) for a, b in expected.edges)
    have_edges = sorted((str(a), str(b)) for a, b in got.edges)
    if want_edges != have_edges:
        diff = sorted(set(want_edges) ^ set(have_edges)) or want_edges
        raise _Fail(f"edge {diff[0][0]} -> {diff[0][1]}: the graph's edges disagree with the slt metadata")


def _io_types() -> tuple[type, ...]:
    import nir

    return (nir.Input, nir.Output, nir.Flatten)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or set(a) != set(b):
            return False
        return all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    if a is None or b is None:
        return a is None and b is None
    x, y = as_array(a), as_array(b)
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        return False
    if x.dtype.kind == "f" or y.dtype.kind == "f":  # float fields: same float32 bits
        return x.shape == y.shape and x.astype(np.float32).tobytes() == y.astype(np.float32).tobytes() \
            and np.array_equal(x.astype(np.float64), y.astype(np.float64))
    return x.shape == y.shape and np.array_equal(x, y)


# ====================================================================== foreign graphs
class _Foreign:
    """Any NIR graph, read with the snnTorch discretisation (see docs/targets-nir.md)."""

    def __init__(self, graph: Any, dt: float, timesteps: int | None) -> None:
        self.dt = dt
        self.timesteps = DEFAULT_TIMESTEPS if timesteps is None else timesteps
        self.nodes, self.edges = self.flatten(graph, "", 0)
        self.rename = self._names()

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
        used = set(self.rename.values()) | set(self.extra)
        cand, i = base[:120], 2
        while cand in used:
            cand, i = f"{base[:116]}_{i}", i + 1
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
        self._orig = {v: k for k, v in self.rename.items()}
        is_neuron = {k: _type(v) in NEURON_TYPES for k, v in self.nodes.items()}
        succ: dict[str, list[str]] = {k: [] for k in self.nodes}

        def reaches(a: str, b: str) -> bool:
            seen, todo = {a}, [a]
            while todo:
                for c in succ[todo.pop()]:
                    if c == b:
                        return True
                    if c not in seen:
                        seen.add(c)
                        todo.append(c)
            return a == b

        marked: list[tuple[str, str, bool]] = []
        for s, d in self.edges:
            if not is_neuron[s]:
                succ[s].append(d)
        for s, d in self.edges:  # a cycle of non-neuron nodes has no state to break it
            if not is_neuron[s] and reaches(d, s):
                raise _Fail(f"edge {s} -> {d} closes a cycle without a neuron layer; slt needs state in every cycle")
        for s, d in self.edges:
            rec = False
            if is_neuron[s]:
                rec = reaches(d, s)
                if not rec:
                    succ[s].append(d)
            marked.append((s, d, rec))
        if len(set((s, d) for s, d, _ in marked)) != len(marked):
            dup = next((s, d) for i, (s, d, _) in enumerate(marked) if (s, d) in {(a, b) for a, b, _ in marked[:i]})
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
