"""Energy of spiking-transformer tickets: attention counted as what it is, per layer, head and token.

Counts come from a recorded reference run (exact integers, per inference = summed over the
T steps of one sample, averaged over samples). For layer ``l`` at step ``t`` of sample ``b``:

    synapse layer (Linear / Conv2d, e.g. the token projections as 1×1 convs):
        eff = #(kept weight ∧ nonzero input)          pruned weights never count
    MatMul  a (.., m, k) · b (.., k, n):
        eff = Σ_(.., i, j) Σ_k [a_ik ≠ 0] · [b_kj ≠ 0] = Σ_.. Σ_k nnz(a[.., :, k]) · nnz(b[.., k, :])
              (spike × spike: the coincidences, each one accumulate; per head = per leading index)
    Mul     eff = #(a ≠ 0 ∧ b ≠ 0)                    (spike ⊙ spike is an AND; counted as one op each)
    Reduce  eff = #(x ≠ 0)                            (one accumulate per nonzero term: always ACs)

A layer call is an AC when every operand value is in {−1, 0, 1} (NeuroBench's rule), else a
MAC; so the first ConvPEP / embedding layer on analog (direct) input is MACs, everything fed
by spikes is ACs. Conventions (``E_AC``, ``E_MAC`` from the profile, e.g. 45 nm fp32: 0.9 pJ,
4.6 pJ)::

    effective (neurobench):  E = E_AC · N_AC + E_MAC · N_MAC
    spikformer:              E = E_MAC · FLOPs(first layer, once: direct input) + E_AC · Σ_l SOP_l,
                             SOP_l = fr_l · T · FLOPs_l
        FLOPs_l = dense operations of one pass (kept weights × output positions; MatMul m·k·n per
        head, Mul and Reduce one per element), fr_l = fraction of nonzero inputs (MatMul: of the
        first operand) over steps and samples.

Per token: a layer's counts divided by its number of tokens (the token axis of its input; a
token mask shrinks both the counts and the token count).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.graph import Ticket
from ..ir.nodes import Conv2d, Linear
from ..ir.tokens import MatMul, Mul, Reduce
from ..reference import simulate
from .counting import count_inputs, first_layers, layer_input
from .profiles import Profile, load_profile


@dataclass(frozen=True)
class LayerEnergy:
    """One counted layer, per inference: effective ACs / MACs, dense FLOPs, input rate, energies (pJ)."""

    name: str
    kind: str
    ac: float
    mac: float
    flops: int
    input_rate: float
    first: bool
    tokens: int
    per_head: tuple[float, ...] = ()
    energy_pj: dict[str, float] = field(default_factory=dict)

    @property
    def ops_per_token(self) -> float:
        return (self.ac + self.mac) / max(self.tokens, 1)


@dataclass(frozen=True)
class AttentionEnergy:
    """Every counted layer of a ticket and the totals per convention (pJ per inference)."""

    layers: tuple[LayerEnergy, ...]
    timesteps: int
    samples: int

    def total(self, convention: str) -> float:
        return float(sum(layer.energy_pj[convention] for layer in self.layers))

    @property
    def ac(self) -> float:
        return float(sum(layer.ac for layer in self.layers))

    @property
    def mac(self) -> float:
        return float(sum(layer.mac for layer in self.layers))


def _binary(*xs: np.ndarray) -> np.ndarray:
    """``(T, B)``: every value of every operand of the call in {−1, 0, 1}."""
    out = None
    for x in xs:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        ok = np.all((flat == 0) | (flat == 1) | (flat == -1), axis=2)
        out = ok if out is None else out & ok
    assert out is not None
    return out


def _operands(ticket: Ticket, result: object, name: str) -> list[np.ndarray]:
    return [result.layers[e.src] for e in ticket.inputs_of(name)]  # type: ignore[attr-defined]


def _matmul(node: MatMul, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Coincidences ``(T, B)``, per leading index (head) ``(T, B, H)``, dense FLOPs per pass."""
    za = (a != 0).sum(axis=-2, dtype=np.int64)  # (T, B, .., k): nonzero a per column
    zb = (b != 0).sum(axis=-1, dtype=np.int64)  # (T, B, .., k): nonzero b per row
    per = (za * zb).sum(axis=-1)
    per = per.reshape(per.shape[0], per.shape[1], -1)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    return per.sum(axis=2), per, int(np.prod(a.shape[2:-2], dtype=np.int64)) * m * k * n


def _tokens(ticket: Ticket, name: str, node: object) -> int:
    """The token count a layer works on: the token axis of its (first) input."""
    shape = ticket.shapes[ticket.inputs_of(name)[0].src]
    if isinstance(node, Conv2d):
        return int(shape[1] * shape[2])  # token projections: (D, N, 1)
    if isinstance(node, MatMul):
        return int(shape[-2])
    return int(shape[0]) if len(shape) >= 2 else 1


def _layer(ticket: Ticket, result: object, node: object, name: str) -> tuple[np.ndarray, np.ndarray, int, float,
                                                                              np.ndarray | None]:
    """``(eff (T,B), binary (T,B), flops, input rate, per head (T,B,H) or None)`` of one counted layer."""
    if isinstance(node, (Linear, Conv2d)):
        x = layer_input(ticket, result, name)  # type: ignore[arg-type]
        T, B = x.shape[:2]
        eff, _, binary, nonzero = count_inputs(node, node.weights.mask, x.reshape(T * B, *x.shape[2:]))
        positions = int(np.prod(ticket.shapes[name][1:])) if isinstance(node, Conv2d) else 1
        flops = int(np.count_nonzero(node.weights.mask)) * positions
        return eff.reshape(T, B), binary.reshape(T, B), flops, float(nonzero.sum() / x.size), None
    ops = _operands(ticket, result, name)
    rate = float(np.count_nonzero(ops[0]) / ops[0].size)
    binary = _binary(*ops)
    if isinstance(node, MatMul):
        eff, per, flops = _matmul(node, ops[0], ops[1])
        return eff, binary, flops, rate, per
    if isinstance(node, Mul):
        both = (ops[0] != 0) & (ops[1] != 0)
        eff = both.reshape(both.shape[0], both.shape[1], -1).sum(axis=2)
        return eff, binary, int(np.prod(ticket.shapes[name])), rate, None
    x = ops[0]  # Reduce: additions only, so ACs whatever the values (the mean's one division is not counted)
    eff = (x != 0).reshape(x.shape[0], x.shape[1], -1).sum(axis=2)
    return eff, np.ones_like(binary), int(np.prod(ticket.shapes[ticket.inputs_of(name)[0].src])), rate, None


def attention_energy(ticket: Ticket, x: np.ndarray, profile: str | Profile = "cmos45-fp32") -> AttentionEnergy:
    """Count and price every synapse layer and attention operation of ``ticket`` on ``x`` (module docstring)."""
    prof = load_profile(profile)
    e_ac, e_mac = prof.pj("ac"), prof.pj("mac")
    result = simulate(ticket, x, record=True)
    T, samples = result.output.shape[:2]
    first = first_layers(ticket) if ticket.encoding.kind == "direct" else set()
    layers = []
    for name in ticket.order:
        node = ticket.node(name)
        if not isinstance(node, (Linear, Conv2d, MatMul, Mul, Reduce)):
            continue
        eff, binary, flops, rate, per = _layer(ticket, result, node, name)
        ac, mac = eff[binary].sum() / samples, eff[~binary].sum() / samples
        is_first = name in first
        spikformer = e_mac * flops if is_first else e_ac * rate * T * flops  # first layer: once per inference
        heads = () if per is None or per.shape[2] < 2 else tuple(float(v) for v in per.sum(axis=(0, 1)) / samples)
        layers.append(LayerEnergy(name, node.kind, float(ac), float(mac), flops, rate, is_first,
                                  _tokens(ticket, name, node), heads,
                                  {"neurobench": float(e_ac * ac + e_mac * mac), "spikformer": float(spikformer)}))
    return AttentionEnergy(tuple(layers), int(T), int(samples))


__all__ = ["AttentionEnergy", "LayerEnergy", "attention_energy"]
