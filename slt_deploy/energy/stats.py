"""Counts of a whole run, streamed: the ticket runs on ``x`` in batches and each batch's exact
counts (:func:`.counting.count_run`) are reduced at once, so memory is bounded by one batch
of recorded activity plus a few integers per sample.

What is kept, per synapse layer ``l`` (sums over samples, per step ``t``; and totals over
steps, per sample ``b``)::

    ac_t[t]  = Σ_b eff[t,b]·bin[t,b]        mac_t[t]  = Σ_b eff[t,b]·(1 − bin[t,b])
    dense_ac_t, dense_mac_t                  the same with a mask of ones (the dense SNN)
    nonzero_t[t] = Σ_b #(x ≠ 0)              binary_t[t] = Σ_b bin[t,b]
    ac_b[b] = Σ_t eff·bin    mac_b[b] = Σ_t eff·(1 − bin)    nonzero_b[b] = Σ_t #(x ≠ 0)

and per neuron layer ``spikes_t[t]`` and ``spikes_b[b]``. Every per-inference figure of the
report is one of these divided by the number of samples ``N``; the spread (median,
percentiles, histograms) comes from the per-sample totals.

Batches: samples ``[a, b)`` of ``x`` (axis 1 of a spike train). A rate-coded sample's input
spikes depend only on the sample, the seed and the step (:mod:`slt_deploy.ratecode`), so the
streamed counts equal those of one unbatched run exactly, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import SltInputError
from ..ir.graph import Ticket
from ..ir.nodes import Conv2d, Linear
from ..reference import simulate
from ..result import check_input
from .counting import RunCounts, count_run, dense_ops, first_layers, output_positions
from .tokenops import OP_KINDS, buffer_values, full_buffer_values, op_flops, op_tokens, token_factors

Progress = Callable[[int, int], None]
BATCH_BYTES = 64 << 20  # recorded activity per batch (float32 values of every node, all steps)


@dataclass(frozen=True)
class SynapseStats:
    """One synapse layer of a streamed run (see module docstring); ``*_t`` are ``(T,)``, ``*_b`` ``(N,)``."""

    name: str
    kind: str
    source: str
    weight_kind: str
    weight_shape: tuple[int, ...]
    synapses: int
    kept: int
    dense_macs: int
    kept_macs: int
    dense_ops: int
    input_size: int
    first: bool
    spike_fed: bool
    ac_t: np.ndarray
    mac_t: np.ndarray
    dense_ac_t: np.ndarray
    dense_mac_t: np.ndarray
    nonzero_t: np.ndarray
    binary_t: np.ndarray
    ac_b: np.ndarray
    mac_b: np.ndarray
    nonzero_b: np.ndarray
    heads: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # MatMul: ops per head, whole run
    tokens: int = 1  # tokens the layer works on (conv: output positions; MatMul: query tokens)
    buffer_values: int = 0  # MatMul: values of the buffered (second) operand per pass
    buffer_values_all: int = 0  # the same with every token kept
    buffer_binary: bool = True  # the buffered operand held spikes only (1 bit per value)
    token_factor: float = 1.0  # FLOPs with every token kept / FLOPs with the kept tokens

    @property
    def is_op(self) -> bool:
        """An operation layer (MatMul, Mul, Reduce): activations as operands, no weights."""
        return self.weight_kind == "activations"

    @property
    def samples(self) -> int:
        return len(self.ac_b)

    @property
    def ac(self) -> int:
        """Effective accumulates over all steps and samples."""
        return int(self.ac_t.sum())

    @property
    def mac(self) -> int:
        """Effective multiply-accumulates over all steps and samples."""
        return int(self.mac_t.sum())

    @property
    def dense_ac(self) -> int:
        return int(self.dense_ac_t.sum())

    @property
    def dense_mac(self) -> int:
        return int(self.dense_mac_t.sum())

    def input_rate(self) -> np.ndarray:
        """Per step: fraction of nonzero input values over the samples, ``(T,)``."""
        return self.nonzero_t / (self.samples * self.input_size)

    @property
    def rate(self) -> float:
        """Fraction of nonzero input values over all steps and samples."""
        return float(self.nonzero_t.sum()) / (self.samples * len(self.nonzero_t) * self.input_size)


@dataclass(frozen=True)
class NeuronStats:
    """One neuron layer of a streamed run; ``spikes_t`` ``(T,)``, ``spikes_b`` ``(N,)`` (zeros for LI)."""

    name: str
    kind: str
    neurons: int
    spiking: bool
    spikes_t: np.ndarray
    spikes_b: np.ndarray
    token_factor: float = 1.0  # neurons with every token kept / neurons with the kept tokens

    @property
    def spikes(self) -> int:
        return int(self.spikes_t.sum())

    @property
    def active(self) -> int:
        """Active updates over the run: spikes (LIF), every update (LI)."""
        if self.spiking:
            return self.spikes
        return self.neurons * len(self.spikes_t) * len(self.spikes_b)

    def active_b(self) -> np.ndarray:
        """Active updates per sample."""
        return self.spikes_b if self.spiking else np.full(len(self.spikes_b), self.neurons * len(self.spikes_t))

    def spike_rate(self) -> np.ndarray:
        """Per step: spikes / (neurons · samples), ``(T,)``."""
        return self.spikes_t / (len(self.spikes_b) * self.neurons)


@dataclass(frozen=True)
class RunStats:
    """Every count of a streamed run: ``timesteps`` passes over ``samples`` inputs."""

    timesteps: int
    samples: int
    synapses: tuple[SynapseStats, ...]
    neurons: tuple[NeuronStats, ...]
    token_mask: bool = False  # the ticket drops tokens (a Select node)
    tokens_followed: bool = True  # the all-tokens counts could follow the token axis (:mod:`.tokenops`)

    @property
    def batch(self) -> int:
        """The number of samples (the name the unstreamed counts use)."""
        return self.samples

    def synapse(self, name: str) -> SynapseStats:
        return next(s for s in self.synapses if s.name == name)

    def neuron(self, name: str) -> NeuronStats:
        return next(n for n in self.neurons if n.name == name)

    def spike_rate(self) -> float:
        """Mean spike rate of the spiking layers: spikes / (spiking neurons · T · samples); 0 without any."""
        neurons = sum(n.neurons for n in self.neurons if n.spiking)
        if neurons == 0:
            return 0.0
        return sum(n.spikes for n in self.neurons if n.spiking) / (neurons * self.timesteps * self.samples)


class StatsBuilder:
    """Accumulates :class:`RunCounts` of batches into a :class:`RunStats` (see module docstring)."""

    def __init__(self, ticket: Ticket, samples: int, timesteps: int | None = None,
                 masks: dict[str, np.ndarray] | None = None) -> None:
        self.T = ticket.timesteps if timesteps is None else timesteps
        self.N = samples
        self.masks = masks or {}
        self.ticket = ticket
        T, N = self.T, samples
        z = lambda n: np.zeros(n, np.int64)  # noqa: E731
        self.syn = {n: {k: z(T) for k in ("ac_t", "mac_t", "dense_ac_t", "dense_mac_t", "nonzero_t", "binary_t")}
                    | {k: z(N) for k in ("ac_b", "mac_b", "nonzero_b")} for n in counted_layers(ticket)}
        self.neu = {n.name: {"spikes_t": z(T), "spikes_b": z(N)} for n in ticket.neuron_layers()}
        self.kinds: dict[str, tuple[str, bool]] = {}
        self.heads: dict[str, np.ndarray] = {}
        self.buffer_binary: dict[str, bool] = {}

    def add_synapse(self, name: str, offset: int, eff: np.ndarray, dense: np.ndarray, binary: np.ndarray,
                    nonzero: np.ndarray) -> None:
        """Counts of one layer for samples ``offset …``: arrays ``(T, b)``."""
        a = self.syn[name]
        b = eff.shape[1]
        ac, mac = np.where(binary, eff, 0), np.where(binary, 0, eff)
        a["ac_t"] += ac.sum(axis=1)
        a["mac_t"] += mac.sum(axis=1)
        a["dense_ac_t"] += np.where(binary, dense, 0).sum(axis=1)
        a["dense_mac_t"] += np.where(binary, 0, dense).sum(axis=1)
        a["nonzero_t"] += nonzero.sum(axis=1)
        a["binary_t"] += binary.sum(axis=1)
        a["ac_b"][offset:offset + b] = ac.sum(axis=0)
        a["mac_b"][offset:offset + b] = mac.sum(axis=0)
        a["nonzero_b"][offset:offset + b] = nonzero.sum(axis=0)

    def add(self, counts: RunCounts, offset: int) -> None:
        """One batch of the ticket's run, its first sample being sample ``offset`` of the whole input."""
        for s in counts.synapses:
            self.add_synapse(s.name, offset, s.effective, s.dense_effective, s.binary, s.input_nonzero)
            if s.heads is not None:
                self.heads[s.name] = self.heads.get(s.name, 0) + s.heads.sum(axis=(0, 1))
            self.buffer_binary[s.name] = self.buffer_binary.get(s.name, True) and s.buffer_binary
        for n in counts.neurons:
            a = self.neu[n.name]
            a["spikes_t"] += n.spikes.sum(axis=1)
            a["spikes_b"][offset:offset + n.spikes.shape[1]] = n.spikes.sum(axis=0)
            self.kinds[n.name] = (n.kind, n.spiking)

    def build(self) -> RunStats:
        t = self.ticket
        first_direct = first_layers(t) if t.encoding.kind == "direct" else set()
        analog = first_layers(t)
        ops = dense_ops(t)
        factors, followed = token_factors(t)
        synapses = []
        for name in counted_layers(t):
            node = t.node(name)
            if isinstance(node, OP_KINDS):
                synapses.append(self._op_stats(node, factors[name]))
                continue
            mask = self.masks.get(node.name, node.weights.mask)
            positions = output_positions(t, node.name)
            (edge,) = t.inputs_of(node.name)
            synapses.append(SynapseStats(
                name=node.name, kind=node.kind, source=edge.src, weight_kind=node.weights.kind,
                weight_shape=tuple(int(v) for v in mask.shape), synapses=int(mask.size),
                kept=int(np.count_nonzero(mask)), dense_macs=int(mask.size) * positions,
                kept_macs=int(np.count_nonzero(mask)) * positions, dense_ops=ops[node.name],
                input_size=int(np.prod(t.shapes[edge.src])), first=node.name in first_direct,
                spike_fed=node.name not in analog, **self.syn[node.name],
                tokens=positions if isinstance(node, Conv2d) else 1, token_factor=factors.get(node.name, 1.0)))
        neurons = []
        for node in t.neuron_layers():
            kind, spiking = self.kinds.get(node.name, (node.kind, node.spiking))
            neurons.append(NeuronStats(node.name, kind, int(np.prod(node.shape)), spiking, **self.neu[node.name],
                                       token_factor=factors.get(node.name, 1.0)))
        has_mask = any(n.kind == "select" for n in t.nodes)
        return RunStats(self.T, self.N, tuple(synapses), tuple(neurons), has_mask, followed)

    def _op_stats(self, node: object, factor: float) -> SynapseStats:
        """Static and streamed counts of one operation layer (MatMul, Mul, Reduce; :mod:`.tokenops`)."""
        t, name = self.ticket, node.name  # type: ignore[attr-defined]
        ins = [t.shapes[e.src] for e in t.inputs_of(name)]
        flops = op_flops(node, ins, t.shapes[name])
        return SynapseStats(
            name=name, kind=node.kind, source=t.inputs_of(name)[0].src, weight_kind="activations",  # type: ignore[attr-defined]
            weight_shape=(), synapses=0, kept=0, dense_macs=flops, kept_macs=flops, dense_ops=flops,
            input_size=int(np.prod(ins[0])), first=False, spike_fed=True, **self.syn[name],
            heads=np.asarray(self.heads.get(name, np.zeros(0, np.int64)), np.int64),
            tokens=op_tokens(node, ins, t.shapes[name]), buffer_values=buffer_values(node, ins),
            buffer_values_all=full_buffer_values(t, name), buffer_binary=self.buffer_binary.get(name, True),
            token_factor=factor)


def counted_layers(ticket: Ticket) -> list[str]:
    """Synapse layers (Linear, Conv2d) and operation layers (MatMul, Mul, Reduce), in graph order."""
    return [n for n in ticket.order if isinstance(ticket.node(n), (Linear, Conv2d, *OP_KINDS))]


def samples_of(ticket: Ticket, x: np.ndarray) -> int:
    """Number of samples in ``x`` (after the shape check of :func:`check_input`, done on one sample)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    axis = 1 if ticket.encoding.kind == "spikes" else 0
    if x.ndim <= axis:
        check_input(ticket, x)  # raises the one-line shape error
    check_input(ticket, np.take(x, [0], axis=axis) if x.shape[axis] > 0 else x)
    return int(x.shape[axis])


def batch_size_for(ticket: Ticket, budget: int = BATCH_BYTES) -> int:
    """Samples per batch so that one batch's recorded activity (float32, every node, T steps) fits ``budget``."""
    per_sample = 4 * ticket.timesteps * sum(int(np.prod(ticket.shapes[n])) for n in ticket.order) * 2
    return max(1, budget // max(per_sample, 1))


def batches(ticket: Ticket, x: np.ndarray, batch_size: int | None = None) -> tuple[int, list[tuple[int, int]]]:
    """``(N, [(start, stop), …])``: the batches :func:`collect` runs."""
    N = samples_of(ticket, x)
    size = batch_size if batch_size is not None else batch_size_for(ticket)
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise SltInputError(f"batch size must be a positive integer, got {batch_size!r}")
    return N, [(a, min(a + int(size), N)) for a in range(0, N, int(size))]


def collect(ticket: Ticket, x: np.ndarray, batch_size: int | None = None, progress: Progress | None = None) -> RunStats:
    """Run ``ticket`` on ``x`` batch by batch and reduce every batch's exact counts."""
    N, spans = batches(ticket, x, batch_size)
    builder = StatsBuilder(ticket, N)
    done = 0
    for a, b in spans:
        part = x[:, a:b] if ticket.encoding.kind == "spikes" else x[a:b]
        counts = count_run(ticket, simulate(ticket, np.asarray(part), record=True))
        builder.add(counts, a)
        done += b - a
        if progress is not None:
            progress(done, N)
    return builder.build()
