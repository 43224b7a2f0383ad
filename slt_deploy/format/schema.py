"""The graph metadata of a .slt file: Ticket <-> canonical JSON, tensors referenced by key.

The JSON (stored as the ``graph`` metadata string) is::

    {"nodes": [node, ...], "edges": [{"src", "dst", "recurrent"}, ...],
     "timesteps": T, "encoding": {"kind", "seed"[, "code"]}, "metadata": {str: str}}

A rate encoding stores its ``code`` (the rate code's name, :mod:`slt_deploy.ratecode`); other
encodings have no ``code`` key. A rate encoding without one was written before codes were
named and reads as the retired ``pcg64-batch/0`` (refused when run; re-pack it).

Nodes keep the ticket's declaration order, edges their order (Add sums in edge order).
Every node has ``name`` and ``kind`` plus the keys of :data:`NODE_KEYS` (always all of
them, ``null`` for an absent optional array). Integer attributes are JSON integers; every
array is a tensor: a float32 parameter is ``{"tensor": key, "broadcast": bool}``
(see :func:`encodings.encode_param`), weights are described in :mod:`.encodings`.
Tensor keys are ``<node name>.<role>`` (roles contain no dot, so keys never collide).

Format versions: version 1 has the kinds of :mod:`slt_deploy.ir.nodes` and the neuron layers;
version 2 adds the token and attention kinds of :mod:`slt_deploy.ir.tokens` (``reshape``
``{"shape"}``, ``transpose`` ``{"perm"}``, ``select`` ``{"axis", "indices"}``, ``matmul``
``{"scale"}`` a JSON number 2^e, ``mul`` ``{}``, ``reduce`` ``{"axis", "op", "keepdims"}``).
A file is written with the lowest version that holds its kinds (:func:`graph_version`), so
tickets without attention stay readable by version-1 readers, which refuse version-2 files
by their version number; a version-1 file naming a version-2 kind is refused here.

Reading is split in two so that nothing is allocated before the file is known to be
consistent: :func:`check_graph` validates the JSON structure and returns how many array
elements decoding would allocate; :func:`graph_to_ticket` then builds the IR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from .. import bits
from ..dispatch import HandlerTable
from ..errors import SltFormatError, SltUnsupportedError
from ..ir.graph import Edge, Encoding, Ticket
from ..ir.neurons import LI, LIF, RLIF
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from ..ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from ..ratecode import LEGACY_RATE_CODE, SEED_LIMIT
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
_LIF_PARAMS = ("beta", "threshold", "bias", "reset_amount", "tau")
_LI_PARAMS = ("beta", "bias")
_REQUIRED_PARAMS = ("beta", "threshold")


# ===================================================================== writing
def ticket_to_graph(ticket: Ticket) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The graph JSON object of ``ticket`` and the tensors it references."""
    tensors: dict[str, np.ndarray] = {}
    nodes = [_node_to_json(node, tensors) for node in ticket.nodes]
    enc = ticket.encoding
    encoding: dict[str, Any] = {"kind": enc.kind, "seed": None if enc.seed is None else int(enc.seed)}
    if enc.kind == "rate":
        encoding["code"] = enc.code
    graph = {
        "nodes": nodes,
        "edges": [{"src": e.src, "dst": e.dst, "recurrent": bool(e.recurrent)} for e in ticket.edges],
        "timesteps": int(ticket.timesteps),
        "encoding": encoding,
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
    codec = HANDLERS.handler(node)
    if codec.cls is not type(node):
        raise SltUnsupportedError(
            f"node '{node.name}': {type(node).__name__} cannot be written to the .slt format"
        )
    d: dict[str, Any] = {"name": node.name, "kind": node.kind}
    codec.write(node, d, tensors)
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


def graph_version(graph: dict[str, Any]) -> int:
    """The lowest .slt format version that holds every node kind of ``graph`` (a written graph)."""
    codecs = (_CODECS.get(d.get("kind")) if isinstance(d, dict) else None for d in graph.get("nodes", ()))
    return max((c.version for c in codecs if c is not None), default=1)


def _check_node(d: Any, index: int, version: int) -> int:
    """Check one node object; returns the array elements decoding it allocates."""
    if not isinstance(d, dict):
        _fail(f"node #{index}", "expected a JSON object")
    name, kind = d.get("name"), d.get("kind")
    where = f"node '{name}'" if isinstance(name, str) else f"node #{index}"
    _str(name, where + ".name")
    codec = _CODECS.get(kind) if isinstance(kind, str) else None
    if codec is None:
        _fail(where, f"unknown node kind {_short(kind)}")
    if codec.version > version:
        _fail(where, f"node kind {kind!r} needs .slt format version {codec.version}, the file says version {version}")
    d = _dict(d, where, ("name", "kind", *codec.keys))
    return codec.check(d, where)


def check_graph(graph: Any, version: int = 2) -> int:
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
    elements = sum(_check_node(d, i, version) for i, d in enumerate(g["nodes"]))
    for i, e in enumerate(g["edges"]):
        e = _dict(e, f"edge #{i}", ("src", "dst", "recurrent"))
        _str(e["src"], f"edge #{i}.src")
        _str(e["dst"], f"edge #{i}.dst")
        if not isinstance(e["recurrent"], bool):
            _fail(f"edge #{i}.recurrent", "expected true or false")
    _int(g["timesteps"], "graph.timesteps", 1)
    enc = g["encoding"]
    enc = _dict(enc, "graph.encoding", ("kind", "seed", "code") if isinstance(enc, dict) and "code" in enc
                else ("kind", "seed"))
    _str(enc["kind"], "graph.encoding.kind")
    if enc["seed"] is not None:
        _int(enc["seed"], "graph.encoding.seed", 0, SEED_LIMIT - 1)
    if "code" in enc:
        _str(enc["code"], "graph.encoding.code")
    meta = g["metadata"]
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        _fail("graph.metadata", "expected a JSON object of strings")
    return elements


# ===================================================================== reading
def _param(d: dict[str, Any], key: str, name: str, shape: tuple[int, ...], take: TakeTensor) -> np.ndarray | None:
    return None if d[key] is None else decode_param(name, d[key], shape, take, key)


def _build_node(d: dict[str, Any], take: TakeTensor) -> Node:
    return _CODECS[d["kind"]].build(d, take)


def graph_to_ticket(graph: dict[str, Any], take: TakeTensor) -> Ticket:
    """Build the Ticket of a graph that passed :func:`check_graph` (IR validation may still raise)."""
    nodes = tuple(_build_node(d, take) for d in graph["nodes"])
    edges = tuple(Edge(e["src"], e["dst"], e["recurrent"]) for e in graph["edges"])
    enc = graph["encoding"]
    code = enc.get("code", LEGACY_RATE_CODE if enc["kind"] == "rate" else None)
    return Ticket(nodes, edges, graph["timesteps"], Encoding(enc["kind"], enc["seed"], code), graph["metadata"])


# ===================================================================== one codec per node kind
@dataclass(frozen=True)
class NodeCodec:
    """How one node kind is stored: its JSON keys (besides name and kind), writer, checker, builder.

    ``check(d, where)`` validates an untrusted node object (keys already exact) and returns the
    array elements decoding it would allocate; ``build(d, take)`` makes the IR node of a checked one.
    """

    cls: type[Node]
    keys: tuple[str, ...]
    write: Callable[[Any, dict[str, Any], dict[str, np.ndarray]], None]
    check: Callable[[dict[str, Any], str], int]
    build: Callable[[dict[str, Any], TakeTensor], Node]
    version: int = 1


def _write_nothing(node: Node, d: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    return None


def _check_nothing(d: dict[str, Any], where: str) -> int:
    return 0


def _plain(cls: type[Node]) -> NodeCodec:
    """A node with a name only (Output, Flatten, Add)."""
    return NodeCodec(cls, (), _write_nothing, _check_nothing, lambda d, take: cls(d["name"]))


def _write_shape(node: Any, d: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    d["shape"] = [int(v) for v in node.shape]


def _check_shape(d: dict[str, Any], where: str) -> int:
    return math.prod(_ints(d["shape"], where + ".shape", 1))


def _write_synapses(node: Linear | Conv2d, d: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    enc = encode_weights(node.name, node.weights)
    _add_tensors(tensors, enc.tensors)
    d["weights"] = enc.meta
    d["bias"] = _param_json(node.name, "bias", node.bias, tensors)
    if isinstance(node, Conv2d):
        d.update(stride=list(node.stride), padding=list(node.padding), dilation=list(node.dilation),
                 groups=int(node.groups))


def _synapse_checker(rank: int) -> Callable[[dict[str, Any], str], int]:
    def check(d: dict[str, Any], where: str) -> int:
        elements = _check_weights(d["weights"], where + ".weights", rank)
        elements += d["weights"]["shape"][0] * _param_ref(d["bias"], where + ".bias")
        for key in ("stride", "padding", "dilation"):
            if key in d:
                _ints(d[key], f"{where}.{key}", 0, 2, MAX_ATTRIBUTE)
        if "groups" in d:
            _int(d["groups"], where + ".groups", 1, MAX_ATTRIBUTE)
        return elements

    return check


def _build_synapses(d: dict[str, Any], take: TakeTensor) -> Node:
    name = d["name"]
    weights = decode_weights(name, d["weights"], take)
    bias = _param(d, "bias", name, (weights.mask.shape[0],), take)
    if d["kind"] == Linear.kind:
        return Linear(name, weights, bias)
    return Conv2d(name, weights, bias, stride=tuple(d["stride"]), padding=tuple(d["padding"]),
                  dilation=tuple(d["dilation"]), groups=d["groups"])


def _pool(cls: type[Node]) -> NodeCodec:
    def write(node: Any, d: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        d.update(kernel_size=list(node.kernel_size), stride=list(node.stride), padding=list(node.padding))

    def check(d: dict[str, Any], where: str) -> int:
        for key in _POOL:
            _ints(d[key], f"{where}.{key}", 0, 2, MAX_ATTRIBUTE)
        return 0

    def build(d: dict[str, Any], take: TakeTensor) -> Node:
        return cls(d["name"], kernel_size=tuple(d["kernel_size"]), stride=tuple(d["stride"]),  # type: ignore[call-arg]
                   padding=tuple(d["padding"]))

    return NodeCodec(cls, _POOL, write, check, build)


def _neuron(cls: type[LIF] | type[RLIF] | type[LI], params: tuple[str, ...], extra: tuple[str, ...]) -> NodeCodec:
    """LIF (params plus its reset and charge strings) and LI: per-neuron float32 parameters."""

    def write(node: Any, d: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        _write_shape(node, d, tensors)
        d.update({k: getattr(node, k) for k in extra})
        for p in params:
            d[p] = _param_json(node.name, p, getattr(node, p), tensors)

    def check(d: dict[str, Any], where: str) -> int:
        elements = _check_shape(d, where)
        for p in params:
            present = _param_ref(d[p], f"{where}.{p}", optional=p not in _REQUIRED_PARAMS)
            elements += math.prod(d["shape"]) * present
        for k in extra:
            _str(d[k], f"{where}.{k}")
        return elements

    def build(d: dict[str, Any], take: TakeTensor) -> Node:
        shape = tuple(d["shape"])
        values = {p: _param(d, p, d["name"], shape, take) for p in params}
        return cls(d["name"], shape=shape, **values, **{k: d[k] for k in extra})

    return NodeCodec(cls, ("shape", *params, *extra), write, check, build)


# ------------------------------------------------------------------ version 2: token and attention kinds
def _token_codec(cls: type[Node], keys: tuple[str, ...], check: Callable[[dict[str, Any], str], None]) -> NodeCodec:
    """A version-2 node whose attributes are plain JSON values (ints, lists of ints, strings, numbers)."""

    def write(node: Any, d: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        for key in keys:
            v = getattr(node, key)
            d[key] = [int(a) for a in v] if isinstance(v, tuple) else v

    def checked(d: dict[str, Any], where: str) -> int:
        check(d, where)
        return 0

    def build(d: dict[str, Any], take: TakeTensor) -> Node:
        return cls(d["name"], **{k: tuple(d[k]) if isinstance(d[k], list) else d[k] for k in keys})  # type: ignore[call-arg]

    return NodeCodec(cls, keys, write, checked, build, version=2)


def _check_select(d: dict[str, Any], where: str) -> None:
    _int(d["axis"], where + ".axis", 0, MAX_RANK - 1)
    v = d["indices"]
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_ATTRIBUTE:
        _fail(where + ".indices", "expected a non-empty list of integers")
    for x in v:
        _int(x, where + ".indices", 0, MAX_ATTRIBUTE)


def _check_scale(d: dict[str, Any], where: str) -> None:
    s = d["scale"]
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s) or s <= 0:
        _fail(where + ".scale", f"expected a positive number, got {_short(s)}")


def _check_reduce(d: dict[str, Any], where: str) -> None:
    _int(d["axis"], where + ".axis", 0, MAX_RANK - 1)
    _str(d["op"], where + ".op")
    if not isinstance(d["keepdims"], bool):
        _fail(where + ".keepdims", "expected true or false")


HANDLERS: HandlerTable[NodeCodec] = HandlerTable("the .slt format", {
    Input: NodeCodec(Input, ("shape",), _write_shape, _check_shape,
                     lambda d, take: Input(d["name"], shape=tuple(d["shape"]))),
    Output: _plain(Output), Flatten: _plain(Flatten), Add: _plain(Add),
    Linear: NodeCodec(Linear, ("weights", "bias"), _write_synapses, _synapse_checker(2), _build_synapses),
    Conv2d: NodeCodec(Conv2d, ("weights", "bias", "stride", "padding", "dilation", "groups"), _write_synapses,
                      _synapse_checker(4), _build_synapses),
    SumPool2d: _pool(SumPool2d), AvgPool2d: _pool(AvgPool2d), MaxPool2d: _pool(MaxPool2d),
    LIF: _neuron(LIF, _LIF_PARAMS, ("reset", "charge")),
    RLIF: _neuron(RLIF, _LIF_PARAMS, ("reset", "charge")),
    LI: _neuron(LI, _LI_PARAMS, ()),
    Reshape: _token_codec(Reshape, ("shape",), lambda d, w: _ints(d["shape"], w + ".shape", 1, None, MAX_ATTRIBUTE)),
    Transpose: _token_codec(Transpose, ("perm",), lambda d, w: _ints(d["perm"], w + ".perm", 0, None, MAX_RANK)),
    Select: _token_codec(Select, ("axis", "indices"), _check_select),
    MatMul: _token_codec(MatMul, ("scale",), _check_scale),
    Mul: _token_codec(Mul, (), lambda d, w: None),
    Reduce: _token_codec(Reduce, ("axis", "op", "keepdims"), _check_reduce),
})
_CODECS: dict[str, NodeCodec] = {kind: codec for kind, codec in HANDLERS.items()}  # type: ignore[misc]
