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
from typing import Any

import numpy as np

from ...errors import SltError, SltImportError, SltValidationError
from ...ir.graph import Edge, Encoding, Ticket
from ...ir.neurons import LI, LIF, RLIF
from ...ir.nodes import Add, Conv2d, Flatten, Input, Linear, Node, Output
from ...ratecode import LEGACY_RATE_CODE
from ._common import (
    FORMAT,
    TICKET_KEY,
    VERSION,
    as_array,
    decode_weights,
)
from ._fields import (
    _dt,
    _Fail,
    _ints,
    _pool,
    _port,
    _shape,
    _timesteps,
    _type,
)
from ._foreign import _Foreign

_NIR_FOR_KIND = {
    "input": ("Input",), "output": ("Output",), "linear": ("Linear", "Affine"), "conv2d": ("Conv2d",),
    "sumpool2d": ("SumPool2d",), "avgpool2d": ("AvgPool2d",), "flatten": ("Flatten",), "lif": ("LIF", "IF"),
    "rlif": ("LIF", "IF"),
    "li": ("LI", "I"),
}


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
