"""The networks an energy report compares, reduced to per-inference workloads.

=============  ===================================  ==========================================  ======
variant        weights (bytes read per pass)        activity (inputs and spikes)                passes
=============  ===================================  ==========================================  ======
ann-dense      every weight (|W| · b / 8)             none: every weight and input value used     1
                                                    (NeuroBench "Dense"): an upper bound
ann            every weight (|W| · b / 8)             effective MACs of a trained ReLU ANN run on 1
                                                    the same inputs (measured), else first
                                                    layer measured + hidden sparsity assumed
dense-snn      every weight (|W| · b / 8)             a given dense model's run (measured), else  T
                                                    this ticket's (assumed)
sparse-fp32    the ticket's mask, float32 values    this ticket's (assumed unless it is fp32)   T
sparse-binary  the ticket's mask, sign bits + α     this ticket's (assumed unless it is binary) T
ticket         as stored (only when int8 or mixed)  measured                                    T
=============  ===================================  ==========================================  ======

The dense networks store their weights at the profile's arithmetic width ``b`` =
``state_bits`` (32 for fp32/int32, 16 for fp16, 8 for int8: an int8 profile compares with an
int8-quantized ANN). Weight bytes of the sparse variants are those of the packed .slt encoding the writer picks
(:func:`slt_deploy.format.layer_report`: mask or index code, values or signs, and scales).
Per-inference values are run totals divided by the number of samples.

``spike_scaled`` marks the variants whose activity *is* this ticket's spikes (the ticket and
every variant assumed to share its activity); :func:`scale_spikes` multiplies their
spike-driven counts by ``s``, which is how the break-even spike rate is found
(:mod:`.breakeven`).

Spiking transformers (:mod:`.tokenops`): an operation layer (MatMul, Mul, Reduce) has no
weights; a MatMul buffers its second operand (``Kᵀ`` or ``V``) instead, written once and read
once per pass (``accesses = 2``): 1 bit per value when it holds spikes, else ``b`` bits (the
ANNs: always ``b`` bits, real-valued attention). The baselines keep **every token**: the dense
SNN and both ANN rows scale each layer by its token factor (all-tokens / kept-tokens work),
and a ticket with a token mask gets one more row, ``all-tokens``: its own weights with every
token kept (assumed: its per-token activity), which isolates what token pruning saves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.graph import Ticket
from ..ir.nodes import Conv2d, Linear
from ..ir.weights import FloatWeights, Weights, binarize, dense_weights
from .ann import AnnCounts
from .stats import RunStats, SynapseStats


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
    spike_fed: bool = False
    dense_values: int = 0
    accesses: int = 1  # memory accesses of those bytes per pass: weights 1 (read), a MatMul buffer 2 (write + read)

    def bytes_at(self, bits: int) -> int:
        """Weight bytes read per pass: packed bytes, or ``dense_values`` weights at ``bits`` each."""
        return self.weight_bytes if self.dense_values == 0 else -(-self.dense_values * bits // 8)


@dataclass(frozen=True)
class NeuronWork:
    """One neuron layer of one variant, per inference (all passes)."""

    name: str
    neurons: int
    active: float
    inactive: float
    spikes: float
    spiking: bool = True


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
    spike_scaled: bool = False
    dense_flops: bool = False
    short: str = ""
    totals: tuple[float, float] | None = None  # (ACs, MACs) per inference from integer run totals, when measured

    @property
    def name(self) -> str:
        """A short name for figure axes (the label when no short one is set)."""
        return self.short or self.label

    @property
    def ac(self) -> float:
        """ACs per inference: the run's integer total / samples where measured (as NeuroBench divides)."""
        return self.totals[0] if self.totals is not None else sum(w.ac for w in self.layers)

    @property
    def mac(self) -> float:
        return self.totals[1] if self.totals is not None else sum(w.mac for w in self.layers)

    @property
    def weight_bytes(self) -> int:
        """Weight bytes per pass with dense weights at 32 bits (see :meth:`weight_bytes_at`)."""
        return self.weight_bytes_at(32)

    def weight_bytes_at(self, bits: int) -> int:
        """Weight bytes per pass, dense weights stored at ``bits`` (the profile's ``state_bits``)."""
        return sum(w.bytes_at(bits) for w in self.layers)


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


def _exact(stats: RunStats, dense: bool = False, all_tokens: bool = False) -> tuple[float, float]:
    """(ACs, MACs) per inference: summed integer counts of the run divided once by the samples
    (times each layer's token factor when every token is kept)."""
    f = (lambda s: s.token_factor) if all_tokens else (lambda s: 1)  # noqa: E731
    if dense:
        return (sum(s.dense_ac * f(s) for s in stats.synapses) / stats.samples,
                sum(s.dense_mac * f(s) for s in stats.synapses) / stats.samples)
    return (sum(s.ac * f(s) for s in stats.synapses) / stats.samples,
            sum(s.mac * f(s) for s in stats.synapses) / stats.samples)


def _buffer(s: SynapseStats, all_tokens: bool, analog: bool = False) -> dict[str, int]:
    """LayerWork memory fields of an operation layer: the MatMul's buffered operand (module docstring)."""
    values = s.buffer_values_all if all_tokens else s.buffer_values
    if values == 0:
        return {"weight_bytes": 0}
    if s.buffer_binary and not analog:
        return {"weight_bytes": -(-values // 8), "accesses": 2}
    return {"weight_bytes": 4 * values, "dense_values": values, "accesses": 2}


def _sparse_layers(stats: RunStats, nbytes: dict[str, tuple[int, str]], all_tokens: bool = False
                   ) -> tuple[LayerWork, ...]:
    n = stats.samples
    out = []
    for s in stats.synapses:
        f = s.token_factor if all_tokens else 1.0
        mem = _buffer(s, all_tokens) if s.is_op else {"weight_bytes": nbytes[s.name][0]}
        out.append(LayerWork(s.name, s.ac / n * f, s.mac / n * f, round(s.kept_macs * f), s.rate, s.first,
                             spike_fed=s.spike_fed, **mem))
    return tuple(out)


def _snn_neurons(stats: RunStats, all_tokens: bool = False) -> tuple[NeuronWork, ...]:
    n, T = stats.samples, stats.timesteps
    out = []
    for nl in stats.neurons:
        f = nl.token_factor if all_tokens else 1.0
        active = nl.active / n * f
        neurons = round(nl.neurons * f)
        out.append(NeuronWork(nl.name, neurons, active, neurons * T - active, nl.spikes / n * f, nl.spiking))
    return tuple(out)


def _dense_layers(stats: RunStats) -> tuple[LayerWork, ...]:
    """The dense SNN: every weight kept, every token kept (this ticket's per-position activity)."""
    n = stats.samples
    out = []
    for s in stats.synapses:
        f = s.token_factor
        mem = _buffer(s, True) if s.is_op else {"weight_bytes": 4 * s.synapses, "dense_values": s.synapses}
        out.append(LayerWork(s.name, s.dense_ac / n * f, s.dense_mac / n * f, round(s.dense_macs * f), s.rate,
                             s.first, spike_fed=s.spike_fed, **mem))
    return tuple(out)


def _ann_neurons(stats: RunStats) -> tuple[NeuronWork, ...]:
    out = []
    for n in stats.neurons:
        neurons = round(n.neurons * n.token_factor)
        out.append(NeuronWork(n.name, neurons, float(neurons), 0.0, 0.0, False))
    return tuple(out)


def _ann_memory(s: SynapseStats) -> dict[str, int]:
    """An ANN layer's weights (``|W|`` values at ``b`` bits), or a MatMul's real-valued buffer."""
    return _buffer(s, True, analog=True) if s.is_op else {"weight_bytes": 4 * s.synapses, "dense_values": s.synapses}


def ann_dense(stats: RunStats) -> Variant:
    """The ANN with every weight and input value used: NeuroBench's ``Dense`` count, an upper bound
    (every token kept; a Reduce adds, so its operations are ACs)."""
    layers = []
    for s in stats.synapses:
        ops = float(s.dense_ops) * s.token_factor
        adds = s.kind == "reduce"
        layers.append(LayerWork(s.name, ops if adds else 0.0, 0.0 if adds else ops,
                                round(s.dense_macs * s.token_factor), 1.0, True, **_ann_memory(s)))
    return Variant("ann-dense", "ANN, dense upper bound", "none: every weight and input value used (NeuroBench "
                   "'Dense'; an upper bound, not a measurement)", 1, True, False, tuple(layers), _ann_neurons(stats),
                   dense_flops=True, short="ANN, dense upper bound")


def ann_effective(stats: RunStats, ann: AnnCounts) -> Variant:
    """The ANN's effective operations (NeuroBench ``Eff_MACs``/``Eff_ACs``): measured, or estimated."""
    by_name = {s.name: s for s in ann.stats.synapses}
    layers = []
    for s in stats.synapses:
        ac, mac = ann.layer_ops(s.name)
        a: SynapseStats = by_name[s.name]
        rate = (1.0 - ann.sparsity) if s.name in ann.assumed or s.name in ann.assumed_ac else a.rate
        layers.append(LayerWork(s.name, ac, mac, round(s.dense_macs * s.token_factor), rate, True, **_ann_memory(s)))
    if ann.measured:
        label = f"ANN, effective (measured: {ann.source}; hidden ReLU sparsity {ann.sparsity:.3f})"
        activity = "measured (the trained ANN's run on the same inputs; NeuroBench effective MACs)"
    else:
        label = (f"ANN, effective (first-layer input sparsity measured; hidden ReLU sparsity assumed = "
                 f"{ann.sparsity:.2f}, from {ann.sparsity_source.split(':')[0]})")
        activity = (f"assumed: first layer's inputs measured, hidden inputs nonzero with probability "
                    f"{1 - ann.sparsity:.2f}")
    short = "ANN, effective (measured)" if ann.measured else f"ANN, effective (est., s={ann.sparsity:.2f})"
    return Variant("ann", label, activity, 1, True, False, tuple(layers), _ann_neurons(stats), short=short,
                   totals=(ann.effective_ac, ann.effective_mac))


def _kinds(stats: RunStats) -> set[str]:
    return {s.weight_kind for s in stats.synapses if not s.is_op}


def build_variants(ticket: Ticket, stats: RunStats, ann: AnnCounts, dense: RunStats | None = None,
                   packed: dict[str, tuple[int, str]] | None = None) -> list[Variant]:
    """ANN (dense bound, effective), dense SNN, sparse fp32 and sparse binary variants, plus the
    ticket if it is neither. ``packed`` is :func:`packed_bytes` of the ticket when the caller has it."""
    packed = packed_bytes(ticket) if packed is None else packed
    T = stats.timesteps
    kinds = _kinds(stats)
    measured = "measured (this ticket's run)"
    assumed = "assumed: this ticket's activity"
    if dense is None:
        tokens = ", all tokens" if stats.token_mask else ""
        dense_snn = Variant("dense-snn", f"dense SNN: all weights{tokens}, T={T}", "assumed: this ticket's spike rates",
                            T, False, False, _dense_layers(stats), _snn_neurons(stats, all_tokens=True),
                            spike_scaled=True, totals=_exact(stats, dense=True, all_tokens=True))
    else:
        dense_snn = Variant("dense-snn", f"dense SNN: all weights, T={T}", "measured (dense model's run)",
                            T, False, False, _dense_layers(dense), _snn_neurons(dense, all_tokens=True),
                            totals=_exact(dense, True, all_tokens=True))
    out = [ann_dense(stats), ann_effective(stats, ann), dense_snn]
    for kind, key, label in (("float32", "sparse-fp32", "sparse ticket, fp32 weights"),
                             ("binary", "sparse-binary", "sparse ticket, binary weights")):
        mine = kinds == {kind}
        nbytes = packed if mine else packed_bytes(with_weights(ticket, kind))
        out.append(Variant(key, label + (" (this ticket)" if mine else ""), measured if mine else assumed, T,
                           False, mine, _sparse_layers(stats, nbytes), _snn_neurons(stats), spike_scaled=True,
                           totals=_exact(stats)))
    if not any(v.is_ticket for v in out):
        what = "/".join(sorted(kinds))
        out.append(Variant("ticket", f"this ticket ({what} weights)", measured, T, False, True,
                           _sparse_layers(stats, packed), _snn_neurons(stats), spike_scaled=True,
                           totals=_exact(stats)))
    if stats.token_mask and stats.tokens_followed:
        out.insert(3, Variant("all-tokens", "this ticket's weights, all tokens (token mask undone)",
                              "assumed: this ticket's per-token activity", T, False, False,
                              _sparse_layers(stats, packed, all_tokens=True), _snn_neurons(stats, all_tokens=True),
                              spike_scaled=True, totals=_exact(stats, all_tokens=True), short="ticket, all tokens"))
    return out


def scale_spikes(v: Variant, s: float) -> Variant:
    """``v`` with its spike-driven counts multiplied by ``s`` (a no-op unless ``v.spike_scaled``):
    the ops of layers fed by spikes, their input rate, and every spike (active updates of
    spiking layers move to inactive)."""
    if not v.spike_scaled:
        return v
    layers = tuple(replace(w, ac=w.ac * s, mac=w.mac * s, input_rate=w.input_rate * s) if w.spike_fed else w
                   for w in v.layers)
    neurons = tuple(replace(n, active=n.active * s, inactive=n.inactive + n.active * (1 - s), spikes=n.spikes * s)
                    if n.spiking else n for n in v.neurons)
    return replace(v, layers=layers, neurons=neurons, totals=None)


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
