"""Exact operation counts of a ticket: from a recorded run, or from shapes alone.

Synapse layer ``l`` (Linear or Conv2d) sees at step ``t``, for sample ``b``, the input
``x = x_l[t, b]``: the recorded output of its source node at step ``t`` (for a recurrent
edge the source's output at ``t − 1``, zeros at ``t = 0``). Counts are integers, computed
in int64 from the nonzero indicator ``z = [x ≠ 0]`` (no floating point involved)::

    Linear:  eff[t, b] = Σ_o Σ_i mask[o, i] · z[i]  =  Σ_i z[i] · (Σ_o mask[o, i])
    Conv2d:  eff[t, b] = Σ_o Σ_(p,q) Σ_(c,ki,kj) mask[o, c, ki, kj] · z[g(o)·C_g + c, p·s_h + ki·d_h − pad_h,
                                                                          q·s_w + kj·d_w − pad_w]
             where positions outside the image (padding) have z = 0, so they are never counted.

    bin[t, b] = every value of x in {−1, 0, 1}            (NeuroBench: an AC layer call)
    AC  = Σ_(t,b) eff[t, b] · bin[t, b]        MAC = Σ_(t,b) eff[t, b] · (1 − bin[t, b])

Operation layers (MatMul, Mul, Reduce of a spiking transformer) are counted the same way
from their recorded operands (:mod:`.tokenops`): the pairs of nonzero operand values (spike ×
spike: coincidences), per head for a MatMul; the views Reshape, Transpose, Select move data only.

A *layer call* is one sample at one step, so per-inference counts do not depend on how
samples are batched (NeuroBench classifies a whole batched call; at batch 1 they agree).
``dense_eff`` is ``eff`` with every weight kept (mask of ones): the operations a dense
network would do on the same input activity.

Static counts, per sample and pass, need no run (published MAC figures count padding)::

    dense_macs = |W|       · H_out · W_out      (Linear: H_out = W_out = 1)
    kept_macs  = nnz(mask) · H_out · W_out

Neuron layers: per step and sample every neuron is updated once; a LIF neuron is *active*
when it spikes at that step (an LI readout neuron is always active).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dispatch import HandlerTable
from ..ir.graph import Ticket
from ..ir.neurons import LI, LIF, RLIF, NeuronLayer
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, SumPool2d
from ..ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from ..result import Result
from .tokenops import binary_calls, op_effective, operands


@dataclass(frozen=True)
class SynapseCounts:
    """Counts of one synapse layer; arrays are ``(T, batch)``."""

    name: str
    kind: str
    source: str
    weight_kind: str
    synapses: int
    kept: int
    dense_macs: int
    kept_macs: int
    input_size: int
    first: bool
    effective: np.ndarray
    dense_effective: np.ndarray
    binary: np.ndarray
    input_nonzero: np.ndarray
    heads: np.ndarray | None = None  # (T, batch, H): a MatMul's ops per leading index (head)
    buffer_binary: bool = True  # a MatMul's buffered (second) operand held only values in {-1, 0, 1}

    @property
    def ac(self) -> int:
        """Effective accumulates over all steps and samples."""
        return int(self.effective[self.binary].sum())

    @property
    def mac(self) -> int:
        """Effective multiply-accumulates over all steps and samples."""
        return int(self.effective[~self.binary].sum())

    def input_rate(self) -> np.ndarray:
        """Per step: fraction of nonzero input values over the batch, ``(T,)``."""
        return self.input_nonzero.sum(axis=1) / (self.input_nonzero.shape[1] * self.input_size)


@dataclass(frozen=True)
class NeuronCounts:
    """Counts of one neuron layer; ``spikes`` is ``(T, batch)`` (zeros for an LI readout)."""

    name: str
    kind: str
    neurons: int
    spiking: bool
    spikes: np.ndarray

    @property
    def active(self) -> np.ndarray:
        """Active updates per step and sample: spikes (LIF) or every neuron (LI)."""
        return self.spikes if self.spiking else np.full_like(self.spikes, self.neurons)

    def spike_rate(self) -> np.ndarray:
        """Per step: spikes / (neurons · batch), ``(T,)``."""
        return self.spikes.sum(axis=1) / (self.spikes.shape[1] * self.neurons)


@dataclass(frozen=True)
class RunCounts:
    """Every count of one run: ``T`` steps on ``batch`` samples."""

    timesteps: int
    batch: int
    synapses: tuple[SynapseCounts, ...]
    neurons: tuple[NeuronCounts, ...]

    def synapse(self, name: str) -> SynapseCounts:
        return next(s for s in self.synapses if s.name == name)


# ------------------------------------------------------------------------ static
def output_positions(ticket: Ticket, name: str) -> int:
    """``H_out · W_out`` of a Conv2d, 1 for a Linear."""
    node = ticket.node(name)
    if isinstance(node, Conv2d):
        shape = ticket.shapes[name]
        return int(shape[1]) * int(shape[2])
    return 1


def dense_macs(ticket: Ticket) -> dict[str, int]:
    """Per synapse layer, MACs of one dense pass on one sample: ``|W| · H_out · W_out``."""
    return {n.name: int(n.weights.mask.size) * output_positions(ticket, n.name) for n in ticket.synapse_layers()}


def kept_macs(ticket: Ticket) -> dict[str, int]:
    """Per synapse layer, MACs of one pass over the kept weights: ``nnz(mask) · H_out · W_out``."""
    return {
        n.name: int(np.count_nonzero(n.weights.mask)) * output_positions(ticket, n.name)
        for n in ticket.synapse_layers()
    }


def dense_ops(ticket: Ticket) -> dict[str, int]:
    """Per synapse layer, NeuroBench's ``Dense`` count of one pass on one sample: every weight
    and every input value taken as nonzero, padding positions still not counted
    (``eff`` with a mask of ones and ``z = 1`` inside the image). Equals :func:`dense_macs`
    for a Linear and for a Conv2d without padding."""
    out: dict[str, int] = {}
    for node in ticket.synapse_layers():
        mask = np.ones(node.weights.mask.shape, bool)
        (edge,) = ticket.inputs_of(node.name)
        ones = np.ones((1, *ticket.shapes[edge.src]), bool)
        if isinstance(node, Conv2d):
            out[node.name] = int(conv_effective(node, mask, ones)[0])
        else:
            out[node.name] = int(linear_effective(mask, ones)[0])
    return out


def first_layers(ticket: Ticket) -> set[str]:
    """Synapse layers reached from the Input node without crossing a neuron layer.

    With direct encoding these are the layers that turn analog input into currents (the
    "first layer" of the spikformer convention); :func:`count_run` marks them only then.
    """
    pre: set[str] = set()
    first: set[str] = set()
    for name in ticket.order:
        node = ticket.node(name)
        ins = ticket.inputs_of(name)
        fed = bool(ins) and all(not e.recurrent and e.src in pre for e in ins)
        if isinstance(node, Input):
            pre.add(name)
        elif fed and isinstance(node, (Linear, Conv2d)):
            first.add(name)
        elif fed and not isinstance(node, NeuronLayer):
            pre.add(name)
    return first


# --------------------------------------------------------------------- from runs
def layer_input(ticket: Ticket, result: Result, name: str) -> np.ndarray:
    """The ``(T, batch, *in)`` input a node saw at each step, read from a recorded run."""
    (edge,) = ticket.inputs_of(name)
    src = result.layers[edge.src]
    if not edge.recurrent:
        return src
    shifted = np.zeros_like(src)
    shifted[1:] = src[:-1]
    return shifted


def linear_effective(mask: np.ndarray, nonzero: np.ndarray) -> np.ndarray:
    """``(N, in)`` indicator -> ``(N,)`` #(kept weight ∧ nonzero input)."""
    fan_out = mask.sum(axis=0, dtype=np.int64)
    return nonzero.astype(np.int64) @ fan_out


def conv_effective(node: Conv2d, mask: np.ndarray, nonzero: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` indicator -> ``(N,)`` #(kept weight ∧ nonzero, non-padding input)."""
    (ph, pw), (sh, sw), (dh, dw), g = node.padding, node.stride, node.dilation, node.groups
    c_out, c_in_g, kh, kw = mask.shape
    z = np.pad(nonzero.astype(np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    h_out = (z.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (z.shape[3] - dw * (kw - 1) - 1) // sw + 1
    # hits[n, c, ki, kj] = number of output positions whose tap (ki, kj) reads a nonzero input of channel c
    hits = np.empty((z.shape[0], z.shape[1], kh, kw), np.int64)
    for ki in range(kh):
        for kj in range(kw):
            rows = slice(ki * dh, ki * dh + sh * (h_out - 1) + 1, sh)
            cols = slice(kj * dw, kj * dw + sw * (w_out - 1) + 1, sw)
            hits[:, :, ki, kj] = z[:, :, rows, cols].sum(axis=(2, 3))
    # taps[c, ki, kj] = kept weights of the output channels of c's group reading tap (ki, kj) of c
    taps = mask.reshape(g, c_out // g, c_in_g, kh, kw).sum(axis=1, dtype=np.int64).reshape(g * c_in_g, kh, kw)
    return hits.reshape(hits.shape[0], -1) @ taps.reshape(-1)


def _is_binary(x: np.ndarray) -> np.ndarray:
    """``(N, ...)`` -> ``(N,)``: every value in {−1, 0, 1}."""
    flat = x.reshape(x.shape[0], -1)
    return np.all((flat == 0) | (flat == 1) | (flat == -1), axis=1)


def count_inputs(node: Linear | Conv2d, mask: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counts of ``M`` layer calls with inputs ``x`` ``(M, *in)``: ``(eff, dense, binary, nonzero)``,
    each ``(M,)``: effective ops with ``mask``, effective ops with a mask of ones, whether every
    input value is in {−1, 0, 1}, and the number of nonzero input values."""
    nonzero = x != 0
    ones = np.ones_like(mask, dtype=bool)
    if isinstance(node, Conv2d):
        eff, dense = conv_effective(node, mask, nonzero), conv_effective(node, ones, nonzero)
    else:
        flat = nonzero.reshape(len(x), -1)
        eff, dense = linear_effective(mask, flat), linear_effective(ones, flat)
    counts = nonzero.reshape(len(x), -1).sum(axis=1).astype(np.int64)
    return eff, dense, _is_binary(x), counts


def synapse_counts(ticket: Ticket, result: Result, node: Linear | Conv2d, first: bool) -> SynapseCounts:
    """Count one synapse layer from the recorded run (see module docstring)."""
    x = layer_input(ticket, result, node.name)
    T, batch = x.shape[:2]
    mask = node.weights.mask
    eff, dense, binary, nonzero = count_inputs(node, mask, x.reshape(T * batch, *x.shape[2:]))
    positions = output_positions(ticket, node.name)
    return SynapseCounts(
        name=node.name, kind=node.kind, source=ticket.inputs_of(node.name)[0].src, weight_kind=node.weights.kind,
        synapses=int(mask.size), kept=int(np.count_nonzero(mask)), dense_macs=int(mask.size) * positions,
        kept_macs=int(np.count_nonzero(mask)) * positions, input_size=int(np.prod(x.shape[2:])), first=first,
        effective=eff.reshape(T, batch), dense_effective=dense.reshape(T, batch),
        binary=binary.reshape(T, batch), input_nonzero=nonzero.reshape(T, batch),
    )


def neuron_counts(result: Result, node: NeuronLayer) -> NeuronCounts:
    """Spikes per step and sample of one neuron layer."""
    out = result.layers[node.name]
    T, batch = out.shape[:2]
    spiking = isinstance(node, LIF)
    if spiking:
        spikes = (out.reshape(T, batch, -1) != 0).sum(axis=2).astype(np.int64)
    else:
        spikes = np.zeros((T, batch), np.int64)
    kind = "li" if isinstance(node, LI) else node.kind
    return NeuronCounts(name=node.name, kind=kind, neurons=int(np.prod(node.shape)), spiking=spiking, spikes=spikes)


def count_run(ticket: Ticket, result: Result) -> RunCounts:
    """All counts of a run recorded by :func:`slt_deploy.reference.simulate` (``record=True``).

    Every node goes through :data:`HANDLERS`: synapse layers are counted, neuron layers give their
    spikes, and the kinds that do no synaptic operation (pools, Flatten, Add, Input, Output) say so
    explicitly, so a new node kind is never silently left out of the energy.
    """
    HANDLERS.check(ticket.nodes)
    first = first_layers(ticket) if ticket.encoding.kind == "direct" else set()
    out = result.layers[ticket.output.name]
    synapses, neurons = [], []
    for name in ticket.order:
        node = ticket.node(name)
        counted = HANDLERS.handler(node)(ticket, result, node, name in first)
        if isinstance(counted, SynapseCounts):
            synapses.append(counted)
        elif isinstance(counted, NeuronCounts):
            neurons.append(counted)
    return RunCounts(timesteps=int(out.shape[0]), batch=int(out.shape[1]), synapses=tuple(synapses),
                     neurons=tuple(neurons))


def _no_synaptic_ops(ticket: Ticket, result: Result, node: Any, first: bool) -> None:
    """Pools, Flatten, Add, Input, Output, and the views Reshape, Transpose, Select: data movement only."""
    return None


def op_counts(ticket: Ticket, result: Result, node: MatMul | Mul | Reduce, first: bool) -> SynapseCounts:
    """Count one operation layer (MatMul, Mul, Reduce) from the recorded run (:mod:`.tokenops`)."""
    ops = operands(ticket, result, node.name)
    eff, binary, heads = op_effective(node, ops)
    buffered = bool(binary_calls(ops[1]).all()) if isinstance(node, MatMul) else True
    T, batch = eff.shape
    a = ops[0]
    nonzero = (a != 0).reshape(T, batch, -1).sum(axis=2, dtype=np.int64)
    return SynapseCounts(
        name=node.name, kind=node.kind, source=ticket.inputs_of(node.name)[0].src, weight_kind="activations",
        synapses=0, kept=0, dense_macs=0, kept_macs=0, input_size=int(np.prod(a.shape[2:])), first=first,
        effective=eff, dense_effective=eff, binary=binary, input_nonzero=nonzero, heads=heads,
        buffer_binary=buffered,
    )


def _neurons(ticket: Ticket, result: Result, node: NeuronLayer, first: bool) -> NeuronCounts:
    return neuron_counts(result, node)


HANDLERS: HandlerTable[Callable[..., Any]] = HandlerTable("the energy counter", {
    Linear: synapse_counts, Conv2d: synapse_counts, LIF: _neurons, RLIF: _neurons, LI: _neurons,
    Input: _no_synaptic_ops, Output: _no_synaptic_ops, Flatten: _no_synaptic_ops, Add: _no_synaptic_ops,
    SumPool2d: _no_synaptic_ops, AvgPool2d: _no_synaptic_ops, MaxPool2d: _no_synaptic_ops,
    Reshape: _no_synaptic_ops, Transpose: _no_synaptic_ops, Select: _no_synaptic_ops,
    MatMul: op_counts, Mul: op_counts, Reduce: op_counts,
})
