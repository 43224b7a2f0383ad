"""The Ticket: an immutable, validated graph of nodes plus time steps and input encoding.

Edges are feed-forward (the destination sees the source's output of the same step) or
recurrent (the destination sees the source's output of the previous step, zeros at
t = 0). A recurrent edge must start at a neuron layer, so every cycle goes through one.

Input encodings (``Encoding.kind``):

- ``direct``: analog ``x`` of shape ``(batch, *input)`` fed unchanged at every step.
- ``rate``:   ``x`` in [0, 1] (firing probabilities); at step t feature i of a sample fires
  (1.0, else 0.0) when ``u(t, i) · 2^-24 < float32(x_i)``, with ``u`` the 24-bit counter-based
  draw of the rate code named by ``Encoding.code`` (:mod:`slt_deploy.ratecode`), keyed by the
  seed and the sample's own values: a sample's spikes never depend on its batch.
- ``spikes``: ``x`` of shape ``(T, batch, *input)`` given as is (values 0/1 or graded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import SltValidationError
from ..ratecode import RATE_CODE, RATE_CODES, SEED_LIMIT
from .neurons import LI, LIF, NeuronLayer
from .nodes import Add, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, Shape
from .tokens import Reshape, Select, Transpose
from .weights import Weights, weights_equal

ENCODINGS = ("direct", "rate", "spikes")
MAX_TIMESTEPS = 1_000_000


@dataclass(frozen=True)
class Edge:
    """A connection ``src -> dst``; ``recurrent`` edges carry the previous step's output."""

    src: str
    dst: str
    recurrent: bool = False


@dataclass(frozen=True)
class Encoding:
    """How a batch of inputs becomes per-step input values (see module docstring).

    ``rate`` takes a ``seed`` in [0, 2^64) and names its ``code`` (default: the current one,
    :data:`slt_deploy.ratecode.RATE_CODE`, ``splitmix64-keyed/1``). With ``S = mix(seed +
    0x9E3779B97F4A7C15)``, ``b_i`` the float32 bit pattern of feature i (−0 read as +0) and
    ``mix`` splitmix64's finaliser on 64-bit words (mod 2^64)::

        K       = mix(Σ_i mix(S ^ (i·2^32 + b_i)))          one key per sample
        u(t, i) = mix(K ^ mix(t·2^32 + i)) >> 40            spike(t, i) = u(t, i)·2^-24 < float32(x_i)

    The code's name is stored with the ticket so that a stored ticket never silently changes
    what it computes; ``pcg64-batch/0`` (files written before codes were named, batch-dependent)
    is read but refused when run or exported, with a message saying how to re-pack.
    """

    kind: str = "direct"
    seed: int | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENCODINGS:
            raise SltValidationError(f"input encoding must be one of {ENCODINGS}, got {self.kind!r}")
        if self.kind != "rate":
            if self.seed is not None:
                raise SltValidationError(f"encoding {self.kind!r} takes no seed (--seed applies to rate encoding)")
            if self.code is not None:
                raise SltValidationError(f"encoding {self.kind!r} takes no rate code")
            return
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < SEED_LIMIT:
            raise SltValidationError(f"rate encoding needs an integer seed in [0, 2^64) (--seed), got {seed!r}")
        object.__setattr__(self, "seed", int(seed))
        if self.code is None:
            object.__setattr__(self, "code", RATE_CODE)
        elif self.code not in RATE_CODES:
            raise SltValidationError(f"unknown rate code {self.code!r}; this version knows {', '.join(RATE_CODES)}")


def encoding_of(kind: str | Encoding, seed: int | None = None, keep: Encoding | None = None) -> Encoding:
    """The Encoding a user asked for by name (``"direct"``, ``"rate"``, ``"spikes"``) or as an Encoding.

    A rate encoding's seed is ``seed``, else the seed of ``keep`` when that is a rate encoding too
    (re-keying a stored ticket), else 0; the code is always the current one. A seed with any other
    encoding is refused (the message names the CLI flags; the API keywords are ``encoding``/``seed``).
    """
    if isinstance(kind, Encoding):
        if seed is not None and seed != kind.seed:
            raise SltValidationError("give the rate seed either in the Encoding or as --seed, not both")
        return kind
    if kind != "rate":
        if seed is not None:
            raise SltValidationError(f"--seed applies to --encoding rate, not to {kind!r}")
        return Encoding(kind)
    if seed is None:
        seed = keep.seed if keep is not None and keep.kind == "rate" else 0
    return Encoding("rate", seed)


@dataclass(frozen=True, eq=False)
class Ticket:
    """A validated spiking network: nodes, edges, time steps T and the input encoding.

    Construct it with nodes in any order; validation computes a topological ``order`` and
    per-node output ``shapes``, or raises :class:`SltValidationError` naming the node.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    timesteps: int
    encoding: Encoding = Encoding()
    metadata: Mapping[str, str] = field(default_factory=dict)
    order: tuple[str, ...] = field(init=False)
    shapes: Mapping[str, Shape] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise SltValidationError("ticket metadata must map strings to strings")
        if not isinstance(self.timesteps, (int, np.integer)) or not 1 <= self.timesteps <= MAX_TIMESTEPS:
            raise SltValidationError(f"timesteps must be an integer in [1, {MAX_TIMESTEPS}], got {self.timesteps!r}")
        object.__setattr__(self, "timesteps", int(self.timesteps))
        order, shapes = _validate(self.nodes, self.edges)
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "shapes", shapes)

    def with_encoding(self, encoding: Encoding) -> Ticket:
        """The same network (nodes, edges, T, metadata) fed by another input encoding."""
        return Ticket(self.nodes, self.edges, self.timesteps, encoding, self.metadata)

    def with_timesteps(self, timesteps: int) -> Ticket:
        """The same network run for another number of time steps T."""
        return Ticket(self.nodes, self.edges, timesteps, self.encoding, self.metadata)

    # ----------------------------------------------------------------- lookups
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def inputs_of(self, name: str) -> list[Edge]:
        """Incoming edges of ``name`` in edge order (the order Add sums them)."""
        return [e for e in self.edges if e.dst == name]

    @property
    def input(self) -> Input:
        return next(n for n in self.nodes if isinstance(n, Input))

    @property
    def output(self) -> Output:
        return next(n for n in self.nodes if isinstance(n, Output))

    @property
    def output_source(self) -> Node:
        """The node whose values are the network output."""
        return self.node(self.inputs_of(self.output.name)[0].src)

    @property
    def output_is_spiking(self) -> bool:
        """True when the output values are spikes: a LIF layer reached through Flatten/MaxPool/views only."""
        node = self.output_source
        while isinstance(node, (Flatten, MaxPool2d, Reshape, Transpose, Select)):
            node = self.node(self.inputs_of(node.name)[0].src)
        return isinstance(node, LIF)

    @property
    def input_shape(self) -> Shape:
        return self.input.shape

    @property
    def output_shape(self) -> Shape:
        return self.shapes[self.output.name]

    def synapse_layers(self) -> list[Linear | Conv2d]:
        return [self.node(n) for n in self.order if isinstance(self.node(n), (Linear, Conv2d))]  # type: ignore[misc]

    def neuron_layers(self) -> list[NeuronLayer]:
        return [self.node(n) for n in self.order if isinstance(self.node(n), NeuronLayer)]  # type: ignore[misc]


def _validate(nodes: tuple[Node, ...], edges: tuple[Edge, ...]) -> tuple[tuple[str, ...], dict[str, Shape]]:
    by_name: dict[str, Node] = {}
    for n in nodes:
        if not isinstance(n, Node):
            raise SltValidationError(f"ticket nodes must be IR nodes, got {type(n).__name__}")
        if n.name in by_name:
            raise SltValidationError(f"duplicate node name '{n.name}'")
        by_name[n.name] = n
    for kind in (Input, Output):
        count = sum(isinstance(n, kind) for n in nodes)
        if count != 1:
            raise SltValidationError(f"a ticket needs exactly one {kind.__name__} node, found {count}")

    incoming: dict[str, list[Edge]] = {n: [] for n in by_name}
    for e in edges:
        if not isinstance(e, Edge):
            raise SltValidationError(f"ticket edges must be Edge objects, got {type(e).__name__}")
        for end in (e.src, e.dst):
            if end not in by_name:
                raise SltValidationError(f"edge {e.src} -> {e.dst} names an unknown node '{end}'")
        if isinstance(by_name[e.src], Output):
            raise SltValidationError(f"edge {e.src} -> {e.dst} leaves the Output node")
        if e.recurrent and not isinstance(by_name[e.src], (LIF, LI)):
            raise SltValidationError(
                f"recurrent edge {e.src} -> {e.dst} must start at a neuron layer so the cycle holds state"
            )
        incoming[e.dst].append(e)

    for name, node in by_name.items():
        lo, hi = node.arity
        k = len(incoming[name])
        if k < lo or (hi is not None and k > hi):
            want = f"exactly {lo}" if lo == hi else f"at least {lo}"
            raise SltValidationError(f"node '{name}' ({node.kind}) needs {want} input(s), has {k}")

    order = _topological_order(by_name, incoming)
    shapes: dict[str, Shape] = {}
    for name in order:
        node = by_name[name]
        in_shapes = []
        for e in incoming[name]:
            src = by_name[e.src]
            in_shapes.append(src.shape if e.recurrent else shapes[e.src])  # type: ignore[attr-defined]
        shapes[name] = node.out_shape(in_shapes)
    _check_everything_reaches_output(by_name, edges)
    return tuple(order), shapes


def _topological_order(by_name: dict[str, Node], incoming: dict[str, list[Edge]]) -> list[str]:
    """Kahn's algorithm over feed-forward edges; ties broken by node declaration order."""
    pending = {n: sum(not e.recurrent for e in incoming[n]) for n in by_name}
    consumers: dict[str, list[str]] = {n: [] for n in by_name}
    for n, es in incoming.items():
        for e in es:
            if not e.recurrent:
                consumers[e.src].append(n)
    ready = [n for n in by_name if pending[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for c in consumers[n]:
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    if len(order) != len(by_name):
        stuck = sorted(n for n in by_name if n not in order)
        raise SltValidationError(
            f"cycle without a recurrent edge through nodes {stuck}; "
            "mark the edge leaving a neuron layer as recurrent"
        )
    return order


def _check_everything_reaches_output(by_name: dict[str, Node], edges: Iterable[Edge]) -> None:
    feeds: dict[str, set[str]] = {n: set() for n in by_name}
    for e in edges:
        feeds[e.dst].add(e.src)
    out = next(n for n, node in by_name.items() if isinstance(node, Output))
    seen, stack = {out}, [out]
    while stack:
        for src in feeds[stack.pop()]:
            if src not in seen:
                seen.add(src)
                stack.append(src)
    dead = [n for n in by_name if n not in seen]
    if dead:
        raise SltValidationError(f"node '{dead[0]}' does not contribute to the output; remove it or connect it")


# --------------------------------------------------------------------- equality
def nodes_equal(a: Node, b: Node) -> bool:
    """Bit equality of two nodes: same type and every field equal (arrays by bytes)."""
    if type(a) is not type(b):
        return False
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, (np.ndarray,)) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
                return False
            if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
                return False
        elif hasattr(x, "mask") and hasattr(y, "mask"):
            if not weights_equal(x, y):  # type: ignore[arg-type]
                return False
        elif x != y:
            return False
    return True


def tickets_equal(a: Ticket, b: Ticket) -> bool:
    """Bit equality of two tickets: nodes, edges, T, encoding and metadata."""
    return (
        len(a.nodes) == len(b.nodes)
        and all(nodes_equal(x, y) for x, y in zip(a.nodes, b.nodes, strict=True))
        and a.edges == b.edges
        and a.timesteps == b.timesteps
        and a.encoding == b.encoding
        and dict(a.metadata) == dict(b.metadata)
    )


def sequential(input_shape: Shape, layers: list[Node], timesteps: int, encoding: Encoding = Encoding(),
               metadata: Mapping[str, str] | None = None, input_name: str = "input",
               output_name: str = "output") -> Ticket:
    """Build a feed-forward chain ``input -> layers[0] -> … -> output``."""
    nodes: list[Node] = [Input(input_name, shape=tuple(input_shape)), *layers, Output(output_name)]
    edges = [Edge(a.name, b.name) for a, b in zip(nodes, nodes[1:], strict=False)]
    return Ticket(tuple(nodes), tuple(edges), timesteps, encoding, metadata or {})


__all__ = ["Edge", "Encoding", "Ticket", "nodes_equal", "tickets_equal", "sequential", "Add", "Weights"]
