"""The plan: a ticket split into the neuron layers an integer chip runs, fed by affine maps of spike sources.

Loihi runs populations of neurons connected by synapses; everything between two neuron
layers (Linear, Conv2d, sum/average pools, Flatten, Add) folds into one sparse matrix per
spike source::

    input of layer L  =  Σ_S  M_S · x_S[t − lag_S]  +  b          (x_S: spikes, or graded direct input)

A MaxPool over spikes is an OR of each window: one extra neuron layer (kind ``"or"``). Each
node kind is handled by one entry of :data:`HANDLERS` (a :class:`~slt_deploy.dispatch.HandlerTable`
shared by the Lava targets and the fixed-point reference), run once per node in topological
order; what Loihi cannot run is refused there, naming the node: a MaxPool over currents or
analog input, an LI layer read by anything but the output, an output that is not a neuron
layer's spikes or an LI readout, and recurrence into a shallower layer (:func:`_assign_depths`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..dispatch import HandlerTable, refuse
from ..errors import SltUnsupportedError
from ..ir.graph import Edge, Ticket
from ..ir.neurons import LI, LIF, RLIF
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from ..ir.tokens import TOKEN_KINDS
from ..numerics import channel_scale, summed_codes
from .sparse import ConvSpec, SparseMap, conv_map, pool_map


@dataclass
class PlanSource:
    """One input of a neuron layer: ``M · x_src`` with ``x_src`` of step t − lag."""

    src: str
    lag: int
    M: SparseMap
    conv: ConvSpec | None = None
    graded: bool = False        # the source sends graded values (direct-encoded input)
    delay: int = 0              # extra Lava delay steps (beyond the one every connection has)


@dataclass
class PlanLayer:
    """A neuron layer as Loihi sees it: affine inputs from spike sources, then neurons."""

    name: str
    kind: str                   # "lif", "li" or "or" (a MaxPool over spikes)
    shape: tuple[int, ...]
    sources: list[PlanSource]
    bias: np.ndarray            # float64 per neuron: synapse biases + neuron bias
    node: LIF | LI | MaxPool2d
    depth: int = 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Plan:
    """A ticket split into neuron layers (the unit Loihi runs) in a valid update order."""

    ticket: Ticket
    input_name: str
    input_shape: tuple[int, ...]
    layers: list[PlanLayer]
    output: str                 # the plan layer whose output is the network output
    output_shape: tuple[int, ...]

    def layer(self, name: str) -> PlanLayer:
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def depth(self) -> int:
        """Lava steps between an input step and the output of that step (one per connection)."""
        return self.layer(self.output).depth


@dataclass
class _Value:
    """A node's output as ``Σ terms + bias`` over spike sources (flat C order)."""

    terms: list[PlanSource]
    bias: np.ndarray
    membrane_of: str | None = None      # the membrane of this LI layer: only the output may read it


def make_plan(ticket: Ticket) -> Plan:
    """Split ``ticket`` into neuron layers with affine spike inputs; refuse what Loihi cannot run."""
    HANDLERS.check(ticket.nodes)
    return _Planner(ticket).run()


def mark_graded_input(plan: Plan, graded: bool) -> None:
    """Mark the synapses reading the network input as graded (multi-bit messages) or not."""
    for layer in plan.layers:
        for s in layer.sources:
            if s.src == plan.input_name:
                if graded and layer.kind == "or":
                    raise SltUnsupportedError(f"node '{layer.name}': MaxPool2d over graded input values cannot run "
                                              "on Loihi; only a MaxPool of 0/1 spikes maps")
                s.graded = graded


class _Planner:
    """Runs the handler of every node in topological order, collecting neuron layers."""

    def __init__(self, ticket: Ticket) -> None:
        self.t = ticket
        self.values: dict[str, _Value] = {}
        self.layers: dict[str, PlanLayer] = {}      # filled in ticket order: a valid update order
        self.output: str | None = None
        self.binary_input = ticket.encoding.kind in ("rate", "spikes")  # spike trains: checked per run

    def run(self) -> Plan:
        t = self.t
        for name in t.order:
            node = t.node(name)
            value = HANDLERS.call(node, self)
            if value is not None:
                self.values[name] = value
        layers = list(self.layers.values())
        _assign_depths(layers, t.input.name)
        output = str(self.output)  # set by the Output's handler (a valid ticket has exactly one Output)
        return Plan(t, t.input.name, tuple(t.input_shape), layers, output, tuple(t.output_shape))

    def size(self, name: str) -> int:
        return int(np.prod(self.t.shapes[name]))

    def only_input(self, node: Node) -> Edge:
        (edge,) = self.t.inputs_of(node.name)
        return edge

    def in_shape(self, edge: Edge) -> tuple[int, ...]:
        src = self.t.node(edge.src)
        return tuple(src.shape if edge.recurrent else self.t.shapes[edge.src])  # type: ignore[attr-defined]

    def read(self, edge: Edge, membrane_ok: bool = False) -> _Value:
        """What ``edge`` delivers, with terms the caller owns; an LI membrane only where ``membrane_ok``."""
        if edge.recurrent:  # the ticket IR starts recurrent edges at neuron layers only
            if not self.t.node(edge.src).spiking:  # type: ignore[attr-defined]
                raise SltUnsupportedError(_li_message(edge.src))
            size = self.size(edge.src)
            return _Value([PlanSource(edge.src, 1, SparseMap.identity(size))], np.zeros(size))
        value = self.values[edge.src]
        if value.membrane_of is not None and not membrane_ok:
            raise SltUnsupportedError(_li_message(value.membrane_of))
        return _Value([replace(s) for s in value.terms], value.bias, value.membrane_of)


def _li_message(name: str) -> str:
    return (f"node '{name}': an LI layer sends its membrane, not spikes; Loihi can use it only as the output "
            "readout")


# ------------------------------------------------------------------ one handler per node kind
def _input(node: Input, p: _Planner) -> _Value:
    size = p.size(node.name)
    graded = p.t.encoding.kind == "direct"
    return _Value([PlanSource(node.name, 0, SparseMap.identity(size), graded=graded)], np.zeros(size))


def _neuron_layer(node: LIF | LI, p: _Planner, kind: str, value: _Value | None = None) -> _Value:
    """A plan layer of ``kind`` (lif | li); its output is its spikes, or an LI layer's membrane."""
    value = p.read(p.only_input(node)) if value is None else value
    bias = value.bias + (0.0 if node.bias is None else node.bias.astype(np.float64).reshape(-1))
    p.layers[node.name] = PlanLayer(node.name, kind, tuple(node.shape), value.terms, bias, node)
    size = p.size(node.name)
    return _Value([PlanSource(node.name, 0, SparseMap.identity(size))], np.zeros(size),
                  membrane_of=node.name if kind == "li" else None)


def _lif(node: LIF, p: _Planner) -> _Value:
    return _neuron_layer(node, p, "lif")


def _rlif(node: RLIF, p: _Planner) -> _Value:
    """A recurrent LIF: Loihi sums both currents in integers (order-free), so it is a LIF fed by both inputs.

    Its ``zero_delayed`` reset (drop the charge of the step after a spike) has no Loihi form and is refused."""
    if node.reset == "zero_delayed":
        raise SltUnsupportedError(
            f"node '{node.name}': reset 'zero_delayed' (snnTorch RLeaky's zero reset: the charge of the step after "
            "a spike is dropped) has no Loihi neuron; use the subtract reset, or run it on a float32 target"
        )
    return _neuron_layer(node, p, "lif", _add(node, p))


def _li(node: LI, p: _Planner) -> _Value:
    return _neuron_layer(node, p, "li")


def _linear(node: Linear, p: _Planner) -> _Value:
    value = p.read(p.only_input(node))
    w = _plan_values(node.weights).reshape(node.out_features, node.in_features)
    m = SparseMap.from_dense(w)
    b = node.bias.astype(np.float64) if node.bias is not None else np.zeros(p.size(node.name))
    return _Value([_compose(m, s) for s in value.terms], m.apply(value.bias[None, :])[0] + b)


def _conv(node: Conv2d, p: _Planner) -> _Value:
    edge = p.only_input(node)
    value = p.read(edge)
    in_shape = p.in_shape(edge)
    kernel = _plan_values(node.weights)
    m = conv_map(in_shape, kernel, node.stride, node.padding, node.dilation, node.groups)  # type: ignore[arg-type]
    out_shape = tuple(p.t.shapes[node.name])
    b = (np.repeat(node.bias.astype(np.float64), out_shape[1] * out_shape[2]) if node.bias is not None
         else np.zeros(p.size(node.name)))
    terms = []
    for s in value.terms:
        c = _compose(m, s)
        if _is_identity(s.M) and s.conv is None:
            c.conv = ConvSpec(in_shape, out_shape, kernel, node.stride, node.padding,  # type: ignore[arg-type]
                              node.dilation, node.groups)
        terms.append(c)
    return _Value(terms, m.apply(value.bias[None, :])[0] + b)


def _window_sum(node: SumPool2d | AvgPool2d, p: _Planner, weight: float) -> _Value:
    edge = p.only_input(node)
    value = p.read(edge)
    m = pool_map(p.in_shape(edge), node.kernel_size, node.stride, node.padding, weight)  # type: ignore[arg-type]
    return _Value([_compose(m, s) for s in value.terms], m.apply(value.bias[None, :])[0])


def _sum_pool(node: SumPool2d, p: _Planner) -> _Value:
    return _window_sum(node, p, 1.0)


def _avg_pool(node: AvgPool2d, p: _Planner) -> _Value:
    return _window_sum(node, p, 1.0 / (node.kernel_size[0] * node.kernel_size[1]))


def _max_pool(node: MaxPool2d, p: _Planner) -> _Value:
    """A MaxPool of 0/1 spikes is an OR of each window: one extra neuron layer (weights 1, θ = 1/2)."""
    edge = p.only_input(node)
    value = p.read(edge)
    terms, bias = value.terms, value.bias
    spikes = (len(terms) == 1 and not np.any(bias) and _is_identity(terms[0].M)
              and (terms[0].src != p.t.input.name or p.binary_input))
    if not spikes:
        raise SltUnsupportedError(
            f"node '{node.name}': MaxPool2d over currents or analog input cannot run on Loihi; only a MaxPool of "
            "spikes (an OR of each window, run as one extra neuron layer) is supported"
        )
    in_shape = p.in_shape(edge)
    m = pool_map(in_shape, node.kernel_size, node.stride, node.padding, 1.0)  # type: ignore[arg-type]
    src = terms[0]
    shape = tuple(p.t.shapes[node.name])
    size = p.size(node.name)
    ones = np.ones((in_shape[0], 1, *node.kernel_size))
    conv = ConvSpec(in_shape, shape, ones, node.stride, node.padding, (1, 1), int(in_shape[0]))  # type: ignore[arg-type]
    p.layers[node.name] = PlanLayer(node.name, "or", shape, [PlanSource(src.src, src.lag, m, conv)], np.zeros(size),
                                    node)
    return _Value([PlanSource(node.name, 0, SparseMap.identity(size))], np.zeros(size))


def _flatten(node: Flatten, p: _Planner) -> _Value:
    return p.read(p.only_input(node), membrane_ok=True)  # a relabelling (C order): an LI readout stays one


def _add(node: Add | RLIF, p: _Planner) -> _Value:
    terms: list[PlanSource] = []
    bias = np.zeros(p.size(node.name))
    for edge in p.t.inputs_of(node.name):
        value = p.read(edge)
        terms.extend(value.terms)
        bias = bias + value.bias
    return _Value(_merge(terms), bias)


def _output(node: Output, p: _Planner) -> None:
    """The output must be one neuron layer's spikes (maybe flattened) or an LI readout's membrane."""
    edge = p.only_input(node)
    if edge.recurrent:
        raise SltUnsupportedError(
            f"output '{node.name}': it reads '{edge.src}' one step late over a recurrent edge; a Loihi network's "
            "output is a neuron layer's spikes (or an LI readout) of the same step: connect it with a plain edge"
        )
    value = p.read(edge, membrane_ok=True)
    terms = value.terms
    if (len(terms) != 1 or terms[0].lag or np.any(value.bias) or terms[0].src == p.t.input.name
            or not _is_identity(terms[0].M)):
        raise SltUnsupportedError(
            f"output '{node.name}': a Loihi network's output must be a neuron layer's spikes or an LI "
            f"readout (found {p.t.node(edge.src).kind} '{edge.src}' computing currents)"
        )
    p.output = terms[0].src


HANDLERS: HandlerTable[Callable[[Any, _Planner], _Value | None]] = HandlerTable("Loihi (fixed-point plan)", {
    Input: _input, Output: _output, Linear: _linear, Conv2d: _conv, SumPool2d: _sum_pool, AvgPool2d: _avg_pool,
    MaxPool2d: _max_pool, Flatten: _flatten, Add: _add, LIF: _lif, LI: _li,
    RLIF: _rlif,
    **dict.fromkeys(TOKEN_KINDS, refuse(
        "Loihi (Lava, netx) has no activation x activation product, reduction or token view, so "
        "spiking attention has no fixed-point form; run it on cpu, torch or onnxruntime")),
})
"""Every IR node kind's plan step. Handlers refuse, naming the node, the configurations Loihi
cannot run (MaxPool over currents, LI read by a non-output, an output computing currents)."""


# ------------------------------------------------------------------ helpers
def _plan_values(w: Any) -> np.ndarray:
    """Weight values as float64 (α·sign, scale·q or the floats): exact products of float32 numbers."""
    codes = summed_codes(w)
    scale = channel_scale(w)
    if scale is None:
        return codes
    return codes * scale.astype(np.float64).reshape((-1,) + (1,) * (codes.ndim - 1))


def _compose(m: SparseMap, s: PlanSource) -> PlanSource:
    return PlanSource(s.src, s.lag, m.compose(s.M), None, s.graded)


def _merge(terms: list[PlanSource]) -> list[PlanSource]:
    out: dict[tuple[str, int], PlanSource] = {}
    for s in terms:
        key = (s.src, s.lag)
        if key in out:
            prev = out[key]
            out[key] = PlanSource(s.src, s.lag, prev.M.plus(s.M), None, s.graded)
        else:
            out[key] = s
    return list(out.values())


def _is_identity(m: SparseMap) -> bool:
    return (m.shape[0] == m.shape[1] and m.nnz == m.shape[0] and bool(np.all(m.rows == m.cols))
            and bool(np.all(m.vals == 1)))


def _assign_depths(layers: list[PlanLayer], input_name: str) -> None:
    """Lava adds one step per connection: depth = longest feed-forward path; extra delays align the rest."""
    depth = {input_name: 0}
    for layer in layers:
        ff = [depth[s.src] + 1 for s in layer.sources if s.lag == 0]
        layer.depth = max(ff) if ff else 1
        depth[layer.name] = layer.depth
    for layer in layers:
        for s in layer.sources:
            d_src = depth[s.src]
            s.delay = layer.depth - d_src - 1 + s.lag
            if s.delay < 0:
                raise SltUnsupportedError(
                    f"node '{layer.name}': the recurrent input from '{s.src}' would need a negative delay on Loihi "
                    f"(it sits {d_src - layer.depth} connection(s) deeper); only recurrence into the same or a "
                    "deeper layer maps"
                )


__all__ = ["HANDLERS", "Plan", "PlanLayer", "PlanSource", "make_plan", "mark_graded_input"]
