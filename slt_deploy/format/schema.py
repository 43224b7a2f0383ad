"""The graph metadata of a .slt file: Ticket <-> canonical JSON, tensors referenced by key.

The JSON (stored as the ``graph`` metadata string) is::

    {"nodes": [node, ...], "edges": [{"src", "dst", "recurrent"}, ...],
     "timesteps": T, "encoding": {"kind", "seed"}, "metadata": {str: str}}

Nodes keep the ticket's declaration order, edges their order (Add sums in edge order).
Every node has ``name`` and ``kind`` plus the keys of :data:`NODE_KEYS` (always all of
them, ``null`` for an absent optional array). Integer attributes are JSON integers; every
array is a tensor: a float32 parameter is ``{"tensor": key, "broadcast": bool}``
(see :func:`encodings.encode_param`), weights are described in :mod:`.encodings`.
Tensor keys are ``<node name>.<role>`` (roles contain no dot, so keys never collide).

Reading is split in two so that nothing is allocated before the file is known to be
consistent: :func:`check_graph` validates the JSON structure and returns how many array
elements decoding would allocate; :func:`graph_to_ticket` then builds the IR.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import numpy as np

from .. import bits
from ..errors import SltFormatError, SltUnsupportedError
from ..ir.graph import Edge, Encoding, Ticket
from ..ir.neurons import LI, LIF
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from .encodings import (
    SCALE_FIELD,
    WEIGHT_KINDS,
    TakeTensor,
    decode_param,
    decode_weights,
    encode_param,
    encode_weights,
    encoding_allowed,
    matrix_shape,
    tensor_roles,
)

MAX_ATTRIBUTE = (1 << 31) - 1  # strides, paddings, kernel sizes, groups
MAX_RANK = 8
MAX_NODES = 1 << 14  # far above real networks; keeps graph validation fast on hostile files
MAX_EDGES = 1 << 16
_POOL = ("kernel_size", "stride", "padding")
NODE_KEYS: dict[str, tuple[str, ...]] = {
    "input": ("shape",),
    "output": (),
    "flatten": (),
    "add": (),
    "linear": ("weights", "bias"),
    "conv2d": ("weights", "bias", "stride", "padding", "dilation", "groups"),
    "sumpool2d": _POOL,
    "avgpool2d": _POOL,
    "maxpool2d": _POOL,
    "lif": ("shape", "beta", "threshold", "bias", "reset", "reset_amount", "charge", "tau"),
    "li": ("shape", "beta", "bias"),
}
NODE_TYPES: dict[str, type[Node]] = {
    "input": Input, "output": Output, "flatten": Flatten, "add": Add, "linear": Linear, "conv2d": Conv2d,
    "sumpool2d": SumPool2d, "avgpool2d": AvgPool2d, "maxpool2d": MaxPool2d, "lif": LIF, "li": LI,
}
_LIF_PARAMS = ("beta", "threshold", "bias", "reset_amount", "tau")
_LI_PARAMS = ("beta", "bias")
_REQUIRED_PARAMS = ("beta", "threshold")


# ===================================================================== writing
def ticket_to_graph(ticket: Ticket) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The graph JSON object of ``ticket`` and the tensors it references."""
    tensors: dict[str, np.ndarray] = {}
    nodes = [_node_to_json(node, tensors) for node in ticket.nodes]
    seed = ticket.encoding.seed
    graph = {
        "nodes": nodes,
        "edges": [{"src": e.src, "dst": e.dst, "recurrent": bool(e.recurrent)} for e in ticket.edges],
        "timesteps": int(ticket.timesteps),
        "encoding": {"kind": ticket.encoding.kind, "seed": None if seed is None else int(seed)},
        "metadata": dict(ticket.metadata),
    }
    return graph, tensors


def _add_tensors(tensors: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> None:
    clash = tensors.keys() & new.keys()
    if clash:  # impossible with valid node names; guards against future roles with dots
        raise SltUnsupportedError(f"tensor name {sorted(clash)[0]!r} would be used twice")
    tensors.update(new)


def _param_json(node: str, role: str, value: np.ndarray | None, tensors: dict[str, np.ndarray]) -> Any:
    if value is None:
        return None
    ref, new = encode_param(f"{node}.{role}", value)
    _add_tensors(tensors, new)
    return ref


def _node_to_json(node: Node, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    kind = node.kind
    if NODE_TYPES.get(kind) is not type(node):
        raise SltUnsupportedError(
            f"node '{node.name}': {type(node).__name__} cannot be written to .slt format version 1"
        )
    d: dict[str, Any] = {"name": node.name, "kind": kind}
    if isinstance(node, (Input, LIF, LI)):
        d["shape"] = [int(s) for s in node.shape]
    if isinstance(node, (Linear, Conv2d)):
        enc = encode_weights(node.name, node.weights)
        _add_tensors(tensors, enc.tensors)
        d["weights"] = enc.meta
        d["bias"] = _param_json(node.name, "bias", node.bias, tensors)
    if isinstance(node, Conv2d):
        d.update(stride=list(node.stride), padding=list(node.padding), dilation=list(node.dilation),
                 groups=int(node.groups))
    if isinstance(node, (SumPool2d, AvgPool2d, MaxPool2d)):
        d.update(kernel_size=list(node.kernel_size), stride=list(node.stride), padding=list(node.padding))
    if isinstance(node, LIF):
        d.update(reset=node.reset, charge=node.charge)
    if isinstance(node, (LIF, LI)):
        for p in _LIF_PARAMS if isinstance(node, LIF) else _LI_PARAMS:
            d[p] = _param_json(node.name, p, getattr(node, p), tensors)
    return d


# ===================================================================== checking
def _fail(where: str, msg: str) -> NoReturn:
    raise SltFormatError(f"{where}: {msg}")


def _short(v: Any) -> str:
    """A short repr of an untrusted JSON value for a message."""
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _dict(v: Any, where: str, keys: tuple[str, ...] | set[str]) -> dict[str, Any]:
    """A JSON object with exactly the given keys."""
    if not isinstance(v, dict):
        _fail(where, f"expected a JSON object, got {type(v).__name__}")
    missing, extra = set(keys) - v.keys(), v.keys() - set(keys)
    if missing:
        _fail(where, f"missing key '{sorted(missing)[0]}'")
    if extra:
        _fail(where, f"unknown key '{sorted(extra)[0]}'")
    return v


def _int(v: Any, where: str, lo: int = 0, hi: int | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(where, f"expected an integer, got {type(v).__name__}")
    if v < lo or (hi is not None and v > hi):
        _fail(where, f"value {v} outside [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        _fail(where, f"expected a string, got {type(v).__name__}")
    return v


def _ints(v: Any, where: str, lo: int, length: int | None = None, hi: int | None = None) -> list[int]:
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_RANK or (length is not None and len(v) != length):
        want = f"{length}" if length is not None else f"1 to {MAX_RANK}"
        _fail(where, f"expected a list of {want} integers")
    return [_int(x, where, lo, hi) for x in v]


def _param_ref(v: Any, where: str, optional: bool = True) -> int:
    """Check a parameter reference (or null); returns 1 if present, 0 if null."""
    if v is None:
        if not optional:
            _fail(where, "is required")
        return 0
    d = _dict(v, where, ("tensor", "broadcast"))
    _str(d["tensor"], where + ".tensor")
    if not isinstance(d["broadcast"], bool):
        _fail(where + ".broadcast", "expected true or false")
    return 1


def _check_weights(v: Any, where: str, rank: int) -> int:
    """Check a weights description; returns the number of synapses it decodes to."""
    if not isinstance(v, dict):
        _fail(where, "expected a JSON object")
    kind, encoding = v.get("kind"), v.get("encoding")
    if kind not in WEIGHT_KINDS:
        _fail(where, f"unknown weight kind {_short(kind)}")
    if not isinstance(encoding, str) or not encoding_allowed(kind, encoding):
        _fail(where, f"unknown or inapplicable encoding {_short(encoding)} for {kind} weights")
    keys = {"kind", "shape", "nnz", "encoding", "tensors", "scale"} | (
        {"rice_k", "rice_bits"} if encoding == "rice" else set())
    w = _dict(v, where, keys)
    shape = _ints(w["shape"], where + ".shape", 0, rank)
    rows, cols = matrix_shape(tuple(shape))
    n = rows * cols
    _int(w["nnz"], where + ".nnz", 0, n)
    roles = _dict(w["tensors"], where + ".tensors", tensor_roles(kind, encoding))
    for role, key in roles.items():
        _str(key, f"{where}.tensors.{role}")
    if kind in SCALE_FIELD:
        _param_ref(w["scale"], where + ".scale", optional=False)
    elif w["scale"] is not None:
        _fail(where + ".scale", f"{kind} weights have no scale")
    if encoding == "rice":
        _int(w["rice_k"], where + ".rice_k", 0, bits.MAX_RICE_K)
        _int(w["rice_bits"], where + ".rice_bits", 0)
    return n + (rows if kind in SCALE_FIELD else 0)


def _check_node(d: Any, index: int) -> int:
    """Check one node object; returns the array elements decoding it allocates."""
    if not isinstance(d, dict):
        _fail(f"node #{index}", "expected a JSON object")
    name, kind = d.get("name"), d.get("kind")
    where = f"node '{name}'" if isinstance(name, str) else f"node #{index}"
    _str(name, where + ".name")
    if kind not in NODE_KEYS:
        _fail(where, f"unknown node kind {_short(kind)}")
    d = _dict(d, where, ("name", "kind", *NODE_KEYS[kind]))
    elements = 0
    if "shape" in d:
        shape = _ints(d["shape"], where + ".shape", 1)
        elements += math.prod(shape)
    if kind in ("linear", "conv2d"):
        elements += _check_weights(d["weights"], where + ".weights", 2 if kind == "linear" else 4)
        rows = d["weights"]["shape"][0]
        elements += rows * _param_ref(d["bias"], where + ".bias")
    for key in ("stride", "padding", "dilation", "kernel_size"):
        if key in d:
            _ints(d[key], f"{where}.{key}", 0, 2, MAX_ATTRIBUTE)
    if "groups" in d:
        _int(d["groups"], where + ".groups", 1, MAX_ATTRIBUTE)
    if kind in ("lif", "li"):
        for p in _LIF_PARAMS if kind == "lif" else _LI_PARAMS:
            present = _param_ref(d[p], f"{where}.{p}", optional=p not in _REQUIRED_PARAMS)
            elements += math.prod(d["shape"]) * present
    if kind == "lif":
        _str(d["reset"], where + ".reset")
        _str(d["charge"], where + ".charge")
    return elements


def check_graph(graph: Any) -> int:
    """Validate the JSON structure of a graph; returns the array elements decoding allocates.

    Raises :class:`SltFormatError` naming the node or field. Nothing is allocated here
    beyond the JSON itself, so the caller can compare the count against the file size.
    """
    g = _dict(graph, "graph", ("nodes", "edges", "timesteps", "encoding", "metadata"))
    if not isinstance(g["nodes"], list) or not isinstance(g["edges"], list):
        _fail("graph", "nodes and edges must be lists")
    if len(g["nodes"]) > MAX_NODES or len(g["edges"]) > MAX_EDGES:
        _fail("graph", f"{len(g['nodes'])} nodes / {len(g['edges'])} edges exceed the limits "
                       f"({MAX_NODES} / {MAX_EDGES})")
    elements = sum(_check_node(d, i) for i, d in enumerate(g["nodes"]))
    for i, e in enumerate(g["edges"]):
        e = _dict(e, f"edge #{i}", ("src", "dst", "recurrent"))
        _str(e["src"], f"edge #{i}.src")
        _str(e["dst"], f"edge #{i}.dst")
        if not isinstance(e["recurrent"], bool):
            _fail(f"edge #{i}.recurrent", "expected true or false")
    _int(g["timesteps"], "graph.timesteps", 1)
    enc = _dict(g["encoding"], "graph.encoding", ("kind", "seed"))
    _str(enc["kind"], "graph.encoding.kind")
    if enc["seed"] is not None:
        _int(enc["seed"], "graph.encoding.seed", 0)
    meta = g["metadata"]
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        _fail("graph.metadata", "expected a JSON object of strings")
    return elements


# ===================================================================== reading
def _param(d: dict[str, Any], key: str, name: str, shape: tuple[int, ...], take: TakeTensor) -> np.ndarray | None:
    return None if d[key] is None else decode_param(name, d[key], shape, take, key)


def _build_node(d: dict[str, Any], take: TakeTensor) -> Node:
    kind, name = d["kind"], d["name"]
    cls = NODE_TYPES[kind]
    if kind == "input":
        return Input(name, shape=tuple(d["shape"]))
    if kind in ("output", "flatten", "add"):
        return cls(name)
    if kind in ("linear", "conv2d"):
        weights = decode_weights(name, d["weights"], take)
        bias = _param(d, "bias", name, (weights.mask.shape[0],), take)
        if kind == "linear":
            return Linear(name, weights, bias)
        return Conv2d(name, weights, bias, stride=tuple(d["stride"]), padding=tuple(d["padding"]),
                      dilation=tuple(d["dilation"]), groups=d["groups"])
    if kind in ("sumpool2d", "avgpool2d", "maxpool2d"):
        return cls(name, kernel_size=tuple(d["kernel_size"]), stride=tuple(d["stride"]),  # type: ignore[call-arg]
                   padding=tuple(d["padding"]))
    shape = tuple(d["shape"])
    params = {p: _param(d, p, name, shape, take) for p in (_LIF_PARAMS if kind == "lif" else _LI_PARAMS)}
    if kind == "li":
        return LI(name, shape=shape, **params)
    return LIF(name, shape=shape, reset=d["reset"], charge=d["charge"], **params)


def graph_to_ticket(graph: dict[str, Any], take: TakeTensor) -> Ticket:
    """Build the Ticket of a graph that passed :func:`check_graph` (IR validation may still raise)."""
    nodes = tuple(_build_node(d, take) for d in graph["nodes"])
    edges = tuple(Edge(e["src"], e["dst"], e["recurrent"]) for e in graph["edges"])
    enc = graph["encoding"]
    return Ticket(nodes, edges, graph["timesteps"], Encoding(enc["kind"], enc["seed"]), graph["metadata"])
