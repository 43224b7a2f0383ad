"""The networks an energy report compares, reduced to per-inference workloads.

=============  ===================================  ==========================================  ======
variant        weights (bytes read per pass)        activity (inputs and spikes)                passes
=============  ===================================  ==========================================  ======
ann            every weight, float32 (4·|W|)        every input used: MAC = dense MACs, ReLU    1
dense-snn      every weight, float32 (4·|W|)        a given dense model's run (measured), else  T
                                                    this ticket's (assumed)
sparse-fp32    the ticket's mask, float32 values    this ticket's (assumed unless it is fp32)   T
sparse-binary  the ticket's mask, sign bits + α     this ticket's (assumed unless it is binary) T
ticket         as stored (only when int8 or mixed)  measured                                    T
=============  ===================================  ==========================================  ======

Weight bytes of the sparse variants are those of the packed .slt encoding the writer picks
(:func:`slt_deploy.format.layer_report`: mask or index code, values or signs, and scales).
Per-inference values are run totals divided by the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.graph import Ticket
from ..ir.nodes import Conv2d, Linear
from ..ir.weights import FloatWeights, Weights, binarize, dense_weights
from .counting import RunCounts, SynapseCounts


@dataclass(frozen=True)
class LayerWork:
    """One synapse layer of one variant, per inference."""

    name: str
    ac: float
    mac: float
    flops: int
    input_rate: float
    first: bool
    weight_bytes: int


@dataclass(frozen=True)
class NeuronWork:
    """One neuron layer of one variant, per inference (all passes)."""

    name: str
    neurons: int
    active: float
    inactive: float
    spikes: float


@dataclass(frozen=True)
class Variant:
    """A compared network: its workload, how its activity was obtained, and whether it is the ticket."""

    key: str
    label: str
    activity: str
    passes: int
    ann: bool
    is_ticket: bool
    layers: tuple[LayerWork, ...]
    neurons: tuple[NeuronWork, ...]

    @property
    def ac(self) -> float:
        return sum(w.ac for w in self.layers)

    @property
    def mac(self) -> float:
        return sum(w.mac for w in self.layers)

    @property
    def weight_bytes(self) -> int:
        return sum(w.weight_bytes for w in self.layers)


def convert_weights(w: Weights, kind: str) -> Weights:
    """The same mask with float32 values (``"float32"``) or sign · α (``"binary"``)."""
    if w.kind == kind:
        return w
    dense = dense_weights(w)
    return FloatWeights(w.mask, dense) if kind == "float32" else binarize(dense, w.mask)


def with_weights(ticket: Ticket, kind: str) -> Ticket:
    """``ticket`` with every synapse layer's weights converted by :func:`convert_weights`."""
    nodes = [replace(n, weights=convert_weights(n.weights, kind)) if isinstance(n, (Linear, Conv2d)) else n
             for n in ticket.nodes]
    return Ticket(nodes, ticket.edges, ticket.timesteps, ticket.encoding, ticket.metadata)


def packed_bytes(ticket: Ticket) -> dict[str, tuple[int, str]]:
    """Per synapse layer: (bytes, encoding) of the packed .slt weights."""
    from ..format import layer_report

    return {r["name"]: (int(r["bytes"]), str(r["encoding"])) for r in layer_report(ticket)}


def _rate(s: SynapseCounts) -> float:
    return float(s.input_nonzero.sum()) / (s.input_nonzero.size * s.input_size)


def _sparse_layers(counts: RunCounts, nbytes: dict[str, tuple[int, str]]) -> tuple[LayerWork, ...]:
    b = counts.batch
    return tuple(LayerWork(s.name, s.ac / b, s.mac / b, s.kept_macs, _rate(s), s.first, nbytes[s.name][0])
                 for s in counts.synapses)


def _snn_neurons(counts: RunCounts) -> tuple[NeuronWork, ...]:
    b, T = counts.batch, counts.timesteps
    out = []
    for n in counts.neurons:
        active = float(n.active.sum()) / b
        out.append(NeuronWork(n.name, n.neurons, active, n.neurons * T - active, float(n.spikes.sum()) / b))
    return tuple(out)


def _dense_layers(counts: RunCounts) -> tuple[LayerWork, ...]:
    b = counts.batch
    return tuple(
        LayerWork(s.name, float(s.dense_effective[s.binary].sum()) / b, float(s.dense_effective[~s.binary].sum()) / b,
                  s.dense_macs, _rate(s), s.first, 4 * s.synapses)
        for s in counts.synapses
    )


def _ann(counts: RunCounts) -> Variant:
    layers = tuple(LayerWork(s.name, 0.0, float(s.dense_macs), s.dense_macs, 1.0, True, 4 * s.synapses)
                   for s in counts.synapses)
    neurons = tuple(NeuronWork(n.name, n.neurons, float(n.neurons), 0.0, 0.0) for n in counts.neurons)
    return Variant("ann", "ANN: dense fp32 weights, ReLU, one pass", "none: every input used (dense MACs)", 1,
                   True, False, layers, neurons)


def _kinds(counts: RunCounts) -> set[str]:
    return {s.weight_kind for s in counts.synapses}


def build_variants(ticket: Ticket, counts: RunCounts, dense: RunCounts | None = None,
                   packed: dict[str, tuple[int, str]] | None = None) -> list[Variant]:
    """ANN, dense SNN, sparse fp32 and sparse binary variants, plus the ticket if it is neither.

    ``packed`` is :func:`packed_bytes` of the ticket when the caller has it already.
    """
    packed = packed_bytes(ticket) if packed is None else packed
    T = counts.timesteps
    kinds = _kinds(counts)
    measured = "measured (this ticket's run)"
    assumed = "assumed: this ticket's activity"
    if dense is None:
        dense_snn = Variant("dense-snn", f"dense SNN: all weights, fp32, T={T}", "assumed: this ticket's spike rates",
                            T, False, False, _dense_layers(counts), _snn_neurons(counts))
    else:
        dense_snn = Variant("dense-snn", f"dense SNN: all weights, fp32, T={T}", "measured (dense model's run)",
                            T, False, False, _dense_layers(dense), _snn_neurons(dense))
    out = [_ann(counts), dense_snn]
    for kind, key, label in (("float32", "sparse-fp32", "sparse ticket, fp32 weights"),
                             ("binary", "sparse-binary", "sparse ticket, binary weights")):
        mine = kinds == {kind}
        nbytes = packed if mine else packed_bytes(with_weights(ticket, kind))
        out.append(Variant(key, label + (" (this ticket)" if mine else ""), measured if mine else assumed, T,
                           False, mine, _sparse_layers(counts, nbytes), _snn_neurons(counts)))
    if not any(v.is_ticket for v in out):
        what = "/".join(sorted(kinds))
        out.append(Variant("ticket", f"this ticket ({what} weights)", measured, T, False, True,
                           _sparse_layers(counts, packed), _snn_neurons(counts)))
    return out


def check_same_architecture(ticket: Ticket, dense: Ticket) -> str | None:
    """None when ``dense`` has the ticket's layers (names, kinds, shapes) and T; else the first difference."""
    if dense.timesteps != ticket.timesteps:
        return f"dense model runs T={dense.timesteps}, the ticket T={ticket.timesteps}"
    if dense.input_shape != ticket.input_shape or dense.encoding.kind != ticket.encoding.kind:
        return "dense model's input shape or encoding differs from the ticket's"
    for a in ticket.synapse_layers() + ticket.neuron_layers():  # type: ignore[operator]
        try:
            b = dense.node(a.name)
        except KeyError:
            return f"dense model has no layer '{a.name}'"
        if b.kind != a.kind or dense.shapes[a.name] != ticket.shapes[a.name]:
            return f"layer '{a.name}' differs in kind or shape"
        if isinstance(a, (Linear, Conv2d)) and np.shape(b.weights.mask) != a.weights.mask.shape:  # type: ignore[union-attr]
            return f"layer '{a.name}' has weight shape {np.shape(b.weights.mask)}, the ticket {a.weights.mask.shape}"  # type: ignore[union-attr]
    return None

