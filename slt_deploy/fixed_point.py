"""Loihi fixed point: the conversion of a ticket to Loihi's integers, and a reference for it.

numpy only. Used by the Lava target (``slt_deploy.targets.lava``, ``fixed_pt``), the lava-dl
netx exporter, and (later) the fixed mode of the C exporter: all of them run the integers
this module chooses, and :meth:`FixedNetwork.simulate` predicts their spikes exactly.

Loihi's integer neuron (lava-nc 0.10.0, ``lava/proc/lif/models.py``,
``AbstractPyLifModelFixed.subthr_dynamics`` and ``PyLifModelBitAcc``), per neuron and step::

    a      = Σ_i w[i] · x[i]                       synaptic input (Dense: shifted by weight_exp)
    u      = wrap24(u·(4096 − (du + 1)) ⊘ 4096 + (a << 6))    current; du = 4095 here, so u = wrap24(a << 6)
    v      = clip24(v·(4096 − dv) ⊘ 4096 + u + (bias_mant << bias_exp))
    s      = v > (vth << 6)
    v      = 0 where s                               (zero reset; other resets: slt's own model)

where ``y ⊘ 4096 = sign(y)·(|y| >> 12)`` (truncation toward zero), ``wrap24`` is Lava's
single-step wrap of values beyond ±2^23 and ``clip24`` clips to ±(2^23 − 1).

The conversion
--------------
The ticket's real-valued dynamics per neuron ``o`` are ``v = β·v + Σ_S M_S·x_S + b``, fire
``v > θ``. With one positive scale per neuron, ``λ[o] = 64·vth / θ[o]``, the integer
membrane ``V = λ·v`` fires exactly when ``V > 64·vth`` -- so per-neuron thresholds fold
into per-row integer weights while Loihi's ``vth`` stays one number per layer:

    w_int[o, i] = round(M[o, i] · vth / θ[o])      (|w_int| ≤ 127, or even and ≤ 254)
    bias_mant[o] = round(b[o] · vth / θ[o])         (|bias_mant| ≤ 4095, bias_exp = 6)
    dv = round(4096 · (1 − β))                      (du = 4095: the current does not persist)

``vth`` (≤ 2^17 − 1) is the smallest value that makes every ratio an integer when one
exists (times a power of two where decays need low zero bits), else the value that uses
the 8-bit weight range. Every layer's report says which parts are exact and why not.

When spikes are provably equal
------------------------------
A layer's Loihi spikes equal the float32 reference's when (a) the conversion is exact --
integer weights, bias and reset hit the grid, β = c/4096 and the decays never truncate
(``6 + v2(gcd of increments) ≥ z·(T − 1)`` with ``4096/c``'s power of two ``2^z``) and no
state can wrap or clip within T steps -- and (b) the float32 reference itself computes
exactly: all increments are multiples of one power of two ``P`` and every membrane value
stays below ``2^24·P`` (scaled by the decays' ``2^(z·(T−1))``). Binary IF tickets with
zero reset whose ``α / θ`` is a small ratio (for example ``α = θ`` or powers of two) meet
both. Others run and are reported with their measured agreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import SltInputError, SltUnsupportedError
from .ir.graph import Ticket
from .ir.neurons import LI, LIF
from .ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, SumPool2d
from .ir.weights import FloatWeights
from .registry import FIXED_REFERENCE
from .result import Diagnostics, Result, build_result, check_input, encode_step, rate_rng

# --------------------------------------------------------------------- Loihi constants
DECAY_SHIFT = 12            # decays are 12-bit: factor (4096 - d) / 4096
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6               # synaptic input is MSB-aligned: a << 6
VTH_SHIFT = 6               # threshold is MSB-aligned: vth << 6
MAX_UV = 1 << 23            # u, v are 24-bit signed
VTH_MAX = (1 << 17) - 1     # vth: unsigned 17-bit
BIAS_MANT_MAX = 4095        # bias_mant: signed 13-bit
BIAS_EXP = 6                # bias = bias_mant << 6 (what lava-dl's netx uses)
WEIGHT_MANT_MAX = 127       # 8-bit signed mantissa (mixed sign mode); effective weight k · 2^E
WEIGHT_MAX = 254            # E <= 1: the largest weight netx's HDF5 'weight' field carries exactly
DU_FULL = 4095              # du + 1 = 4096: the current decays fully every step
DV_MAX = 4096               # dv = 4096 is β = 0 (accepted by Lava's simulator and by netx)
INPUT_FRAC_BITS_MAX = 12    # graded input x_int = round(x · 2^s), s <= 12
INPUT_MAX = (1 << 15) - 1   # |x_int| bound for graded input messages
EXACT_SEARCH_CAP = 50_000   # distinct weight ratios beyond which no exact vth is searched


# ================================================================ sparse linear maps
@dataclass(frozen=True)
class SparseMap:
    """A sparse matrix ``(rows, cols)`` in coordinate form with unique (row, col) entries."""

    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray

    @classmethod
    def build(cls, shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> SparseMap:
        """Sum duplicate entries and drop zeros."""
        rows = np.asarray(rows, np.int64)
        cols = np.asarray(cols, np.int64)
        vals = np.asarray(vals)
        if rows.size:
            key = rows * shape[1] + cols
            uniq, inv = np.unique(key, return_inverse=True)
            if uniq.size != key.size:
                if np.issubdtype(vals.dtype, np.integer):
                    summed = np.zeros(uniq.size, np.int64)
                    np.add.at(summed, inv, vals.astype(np.int64))
                else:
                    summed = np.bincount(inv, weights=vals.astype(np.float64), minlength=uniq.size)
                vals = summed
                rows, cols = uniq // shape[1], uniq % shape[1]
            else:
                order = np.argsort(key, kind="stable")
                rows, cols, vals = rows[order], cols[order], vals[order]
            keep = vals != 0
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        return cls((int(shape[0]), int(shape[1])), rows, cols, vals)

    @classmethod
    def identity(cls, n: int) -> SparseMap:
        i = np.arange(n, dtype=np.int64)
        return cls((n, n), i, i.copy(), np.ones(n))

    @classmethod
    def from_dense(cls, w: np.ndarray) -> SparseMap:
        r, c = np.nonzero(w)
        return cls((w.shape[0], w.shape[1]), r.astype(np.int64), c.astype(np.int64), w[r, c])

    @property
    def nnz(self) -> int:
        return int(self.vals.size)

    def todense(self, dtype: Any = None) -> np.ndarray:
        out = np.zeros(self.shape, dtype or self.vals.dtype)
        out[self.rows, self.cols] = self.vals
        return out

    def compose(self, inner: SparseMap) -> SparseMap:
        """``self ∘ inner`` (the matrix product ``self @ inner``)."""
        if self.shape[1] != inner.shape[0]:
            raise ValueError(f"cannot compose maps {self.shape} and {inner.shape}")
        order = np.argsort(inner.rows, kind="stable")
        counts = np.bincount(inner.rows, minlength=inner.shape[0])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_e = counts[self.cols]
        total = int(n_e.sum())
        rep = np.repeat(np.arange(self.nnz), n_e)
        offset = np.arange(total) - np.repeat(np.cumsum(n_e) - n_e, n_e)
        partner = order[starts[self.cols[rep]] + offset]
        vals = self.vals[rep].astype(np.float64) * inner.vals[partner].astype(np.float64)
        return SparseMap.build((self.shape[0], inner.shape[1]), self.rows[rep], inner.cols[partner], vals)

    def plus(self, other: SparseMap) -> SparseMap:
        return SparseMap.build(self.shape, np.concatenate([self.rows, other.rows]),
                               np.concatenate([self.cols, other.cols]),
                               np.concatenate([self.vals.astype(np.float64), other.vals.astype(np.float64)]))

    def map_vals(self, vals: np.ndarray) -> SparseMap:
        """Same pattern, new values (zeros dropped)."""
        keep = vals != 0
        return SparseMap(self.shape, self.rows[keep], self.cols[keep], vals[keep])

    def row_abs_sum(self) -> np.ndarray:
        return np.bincount(self.rows, weights=np.abs(self.vals.astype(np.float64)), minlength=self.shape[0])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x @ self.T`` for a batch ``x`` of shape ``(batch, cols)``; exact for int64 values."""
        integer = np.issubdtype(self.vals.dtype, np.integer) and np.issubdtype(x.dtype, np.integer)
        dtype = np.int64 if integer else np.float64
        if self.shape[0] * self.shape[1] <= 4_000_000:
            return x.astype(dtype) @ self.todense(dtype).T
        out = np.zeros((x.shape[0], self.shape[0]), dtype)
        np.add.at(out.T, self.rows, (x[:, self.cols].astype(dtype) * self.vals.astype(dtype)).T)
        return out


def conv_map(in_shape: tuple[int, int, int], kernel: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], groups: int) -> SparseMap:
    """The cross-correlation of ``kernel`` ``(C_out, C_in/g, kH, kW)`` as a map on C-order flat vectors."""
    c_in, h, w = in_shape
    c_out, c_in_g, kh, kw = kernel.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    o, c, ki, kj = np.nonzero(kernel)
    vals = kernel[o, c, ki, kj]
    ci = (o // (c_out // groups)) * c_in_g + c
    oi, oj = np.meshgrid(np.arange(h_out), np.arange(w_out), indexing="ij")
    oi, oj = oi.reshape(-1, 1), oj.reshape(-1, 1)
    ii = oi * sh + ki[None, :] * dh - ph
    jj = oj * sw + kj[None, :] * dw - pw
    valid = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
    rows = (o[None, :] * h_out + oi) * w_out + oj
    cols = (ci[None, :] * h + ii) * w + jj
    v = np.broadcast_to(vals[None, :], rows.shape)
    return SparseMap.build((c_out * h_out * w_out, c_in * h * w), rows[valid], cols[valid], v[valid])


def pool_map(in_shape: tuple[int, int, int], kernel_size: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int], value: float = 1.0) -> SparseMap:
    """Sum pooling (each window entry weighted by ``value``) as a map; zero padding."""
    c = in_shape[0]
    kh, kw = kernel_size
    eye = np.zeros((c, 1, kh, kw))
    eye[:, 0] = value
    return conv_map(in_shape, eye, stride, padding, (1, 1), c)


@dataclass(frozen=True)
class ConvSpec:
    """A synapse that is exactly one Conv2d: kept so targets can build a real convolution."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: np.ndarray          # (C_out, C_in/g, kH, kW), float64 (plan) or int64 (fixed)
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int


# ================================================================ the plan
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


def make_plan(ticket: Ticket) -> Plan:
    """Split ``ticket`` into neuron layers with affine spike inputs; refuse what Loihi cannot run."""
    return _Planner(ticket).run()


class _Planner:
    def __init__(self, ticket: Ticket) -> None:
        self.t = ticket
        self.nodes = {n.name: n for n in ticket.nodes}
        self.layers: dict[str, PlanLayer] = {}
        self.binary_input = ticket.encoding.kind in ("rate", "spikes")  # spike trains: checked per run

    def run(self) -> Plan:
        t = self.t
        order = list(t.order)
        for name in order:
            node = self.nodes[name]
            if isinstance(node, (LIF, LI)):
                (edge,) = t.inputs_of(name)
                terms, bias = self._affine(edge.src, 1 if edge.recurrent else 0)
                bias = bias + (0.0 if node.bias is None else node.bias.astype(np.float64).reshape(-1))
                kind = "li" if isinstance(node, LI) else "lif"
                self.layers[name] = PlanLayer(name, kind, tuple(node.shape), terms, bias, node)
        out_src = t.inputs_of(t.output.name)[0]
        src = out_src.src
        while isinstance(self.nodes[src], Flatten):
            src = t.inputs_of(src)[0].src
        if isinstance(self.nodes[src], LI):
            terms, bias = [PlanSource(src, 0, SparseMap.identity(self.layers[src].size))], np.zeros(1)
        else:
            terms, bias = self._affine(out_src.src, 0)
        if (len(terms) != 1 or terms[0].lag or np.any(bias) or terms[0].src == t.input.name
                or not _is_identity(terms[0].M)):
            raise SltUnsupportedError(
                f"output '{t.output.name}': a Loihi network's output must be a neuron layer's spikes or an LI "
                f"readout (found {self.nodes[out_src.src].kind} '{out_src.src}' computing currents)"
            )
        output = terms[0].src
        for layer in self.layers.values():
            if layer.kind == "li" and any(s.src == layer.name for other in self.layers.values() for s in other.sources):
                raise SltUnsupportedError(
                    f"node '{layer.name}': an LI layer sends its membrane, not spikes; Loihi can use it only as "
                    "the output readout"
                )
        layers = [self.layers[n] for n in self._layer_order()]
        _assign_depths(layers, t.input.name)
        return Plan(t, t.input.name, tuple(t.input_shape), layers, output, tuple(t.output_shape))

    def _layer_order(self) -> list[str]:
        # OR layers were added on the fly before the layer that consumes them; keep ticket order otherwise
        names: list[str] = []
        for name in self.layers:
            if name not in names:
                names.append(name)
        return sorted(names, key=lambda n: self._rank(n))

    def _rank(self, name: str) -> int:
        return list(self.t.order).index(name)

    def _affine(self, name: str, lag: int) -> tuple[list[PlanSource], np.ndarray]:
        """``node name``'s output as Σ terms + bias over spike sources (flat C order)."""
        node = self.nodes[name]
        size = int(np.prod(self.t.shapes[name]))
        if isinstance(node, Input):
            graded = self.t.encoding.kind == "direct"
            return [PlanSource(name, lag, SparseMap.identity(size), graded=graded)], np.zeros(size)
        if isinstance(node, LIF):
            return [PlanSource(name, lag, SparseMap.identity(size))], np.zeros(size)
        if isinstance(node, LI):
            raise SltUnsupportedError(
                f"node '{name}': an LI layer sends its membrane, not spikes; Loihi can use it only as the output "
                "readout"
            )
        if lag and not isinstance(node, (LIF, LI)):
            raise SltUnsupportedError(f"recurrent edge from '{name}' must start at a neuron layer")
        ins = self.t.inputs_of(name)
        if isinstance(node, Add):
            terms: list[PlanSource] = []
            bias = np.zeros(size)
            for e in ins:
                ts, b = self._affine(e.src, 1 if e.recurrent else 0)
                terms.extend(ts)
                bias = bias + b
            return _merge(terms), bias
        (edge,) = ins
        terms, bias = self._affine(edge.src, 1 if edge.recurrent else 0)
        in_shape = self.t.node(edge.src).shape if edge.recurrent else self.t.shapes[edge.src]  # type: ignore[attr-defined]
        if isinstance(node, Flatten):
            return terms, bias
        if isinstance(node, Linear):
            w = _plan_values(node.weights).reshape(node.out_features, node.in_features)
            m = SparseMap.from_dense(w)
            b = node.bias.astype(np.float64) if node.bias is not None else np.zeros(size)
            return [_compose(m, s) for s in terms], m.apply(bias[None, :])[0] + b
        if isinstance(node, Conv2d):
            kernel = _plan_values(node.weights)
            m = conv_map(tuple(in_shape), kernel, node.stride, node.padding, node.dilation, node.groups)
            out_shape = tuple(self.t.shapes[name])
            b = (np.repeat(node.bias.astype(np.float64), out_shape[1] * out_shape[2]) if node.bias is not None
                 else np.zeros(size))
            new = []
            for s in terms:
                c = _compose(m, s)
                if _is_identity(s.M) and s.conv is None:
                    c.conv = ConvSpec(tuple(in_shape), out_shape, kernel, node.stride, node.padding, node.dilation,
                                      node.groups)
                new.append(c)
            return new, m.apply(bias[None, :])[0] + b
        if isinstance(node, (SumPool2d, AvgPool2d)):
            value = 1.0 if isinstance(node, SumPool2d) else 1.0 / (node.kernel_size[0] * node.kernel_size[1])
            m = pool_map(tuple(in_shape), node.kernel_size, node.stride, node.padding, value)
            return [_compose(m, s) for s in terms], m.apply(bias[None, :])[0]
        if isinstance(node, MaxPool2d):
            spikes = (len(terms) == 1 and not np.any(bias) and _is_identity(terms[0].M)
                      and (terms[0].src != self.t.input.name or self.binary_input))
            if not spikes:
                raise SltUnsupportedError(
                    f"node '{name}': MaxPool2d over currents or analog input cannot run on Loihi; only a MaxPool of "
                    "spikes (an OR of each window, run as one extra neuron layer) is supported"
                )
            m = pool_map(tuple(in_shape), node.kernel_size, node.stride, node.padding, 1.0)
            src = terms[0]
            shape = tuple(self.t.shapes[name])
            ones = np.ones((in_shape[0], 1, *node.kernel_size))
            conv = ConvSpec(tuple(in_shape), shape, ones, node.stride, node.padding, (1, 1), int(in_shape[0]))
            self.layers[name] = PlanLayer(name, "or", shape, [PlanSource(src.src, src.lag, m, conv)], np.zeros(size),
                                          node)
            return [PlanSource(name, lag, SparseMap.identity(size))], np.zeros(size)
        raise SltUnsupportedError(f"node '{name}': {node.kind} has no Loihi mapping")


def _plan_values(w: Any) -> np.ndarray:
    """Weight values as float64 (α·sign, scale·q or the floats): exact products of float32 numbers."""
    if isinstance(w, FloatWeights):
        return w.values.astype(np.float64)
    scale = w.channel_scale().astype(np.float64).reshape((-1,) + (1,) * (w.mask.ndim - 1))
    return w.integer_values().astype(np.float64) * scale


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


# ================================================================ conversion
@dataclass
class FixedSynapse:
    """Integer synapse: ``a = W · x`` (W = k · 2^E, |k| ≤ 127) from ``src`` at step t − lag."""

    src: str
    lag: int
    W: SparseMap                # int64 effective weights
    weight_exp: int             # E: every weight is a multiple of 2^E
    conv: ConvSpec | None       # int64 kernel when the synapse is one convolution
    graded: bool
    delay: int


@dataclass
class FixedLayer:
    """One Loihi neuron population with its integer parameters."""

    name: str
    kind: str                   # lif | li | or
    shape: tuple[int, ...]
    synapses: list[FixedSynapse]
    vth: int                    # fire v > vth << 6
    dv: np.ndarray              # per neuron, int64 in [0, 4096]
    bias_mant: np.ndarray       # per neuron, int64, bias = bias_mant << 6
    reset: str                  # zero | subtract | subtract_delayed | none
    reset_amount: np.ndarray    # per neuron, V units (subtract resets)
    depth: int
    readout_scale: np.ndarray   # per neuron θ', LI output = V · θ' / readout_den (exact division)
    readout_den: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def readout(self, v: np.ndarray) -> np.ndarray:
        """LI output values from membranes ``V`` (``(..., n)``): ``V · θ' / (64 · scale)``."""
        return v.astype(np.float64) * self.readout_scale / self.readout_den

    @property
    def uniform_dv(self) -> bool:
        return bool(np.all(self.dv == self.dv.flat[0]))


@dataclass
class FixedNetwork:
    """A ticket in Loihi's integers; :meth:`simulate` is the fixed-point reference."""

    plan: Plan
    layers: list[FixedLayer]
    input_frac_bits: int        # graded input x_int = round(x · 2^s)
    report: dict[str, Any]

    @property
    def ticket(self) -> Ticket:
        return self.plan.ticket

    @property
    def depth(self) -> int:
        return self.plan.depth

    def layer(self, name: str) -> FixedLayer:
        return next(layer for layer in self.layers if layer.name == name)

    def input_values(self, x: np.ndarray) -> np.ndarray:
        """Integer input ``(T, batch, n_in)`` exactly as Loihi receives it (spikes, or graded x·2^s)."""
        return integer_inputs(self.ticket, x, self.input_frac_bits)

    def simulate(self, x: np.ndarray, clamp_conv: bool | None = None, record: bool = True) -> Result:
        """The fixed-point reference: Lava's fixed_pt arithmetic in ticket time (no connection delays).

        ``clamp_conv``: synapses that are one convolution wrap their sums to 24 bits, as
        Lava's ``Conv`` process does. ``None`` follows the Lava target's own choice (it uses
        ``Conv`` when the batch is 1). The result carries ``saturation``: layer -> number of
        wrapped or clipped values (0 everywhere means no state ever left its bit width).
        """
        xi = self.input_values(x)
        if clamp_conv is None:
            clamp_conv = xi.shape[1] == 1
        return _simulate(self, xi, clamp_conv, record)


def simulate_fixed(ticket: Ticket, x: np.ndarray, clamp_conv: bool | None = None, record: bool = True,
                   input_frac_bits: int | None = None) -> Result:
    """Run ``ticket`` in Loihi's integers (the conversion the Lava target makes for this input)."""
    return to_fixed(ticket, x, input_frac_bits=input_frac_bits).simulate(x, clamp_conv=clamp_conv, record=record)


def conversion_report(ticket: Ticket) -> dict[str, Any]:
    """The per-layer fixed-point report of ``ticket`` (no input needed; direct input is per run)."""
    return to_fixed(ticket).report


def to_fixed(ticket: Ticket, x: np.ndarray | None = None, *, input_frac_bits: int | None = None) -> FixedNetwork:
    """Convert ``ticket`` to Loihi's integers.

    ``x`` (optional) is the run's input: for direct (analog) encoding it fixes the input
    scale ``2^s`` (the smallest s <= 12 that makes x·2^s integers, else the largest that
    fits 15 bits) and the first layer's bounds. ``input_frac_bits`` forces s (default 0
    without ``x``: the input is fed as given, rounded to integers).
    """
    plan = make_plan(ticket)
    s_bits, x_info = _input_scale(ticket, x, input_frac_bits)
    mark_graded_input(plan, not x_info["binary"])
    T = ticket.timesteps
    layers = []
    for pl in plan.layers:
        layers.append(_convert_layer(pl, T, s_bits, x_info, ticket.encoding.kind))
    fixed = FixedNetwork(plan, layers, s_bits, {})
    fixed.report = _network_report(fixed, x_info)
    return fixed


def mark_graded_input(plan: Plan, graded: bool) -> None:
    """Mark the synapses reading the network input as graded (multi-bit messages) or not."""
    for layer in plan.layers:
        for s in layer.sources:
            if s.src == plan.input_name:
                if graded and layer.kind == "or":
                    raise SltUnsupportedError(f"node '{layer.name}': MaxPool2d over graded input values cannot run "
                                              "on Loihi; only a MaxPool of 0/1 spikes maps")
                s.graded = graded


def _input_scale(ticket: Ticket, x: np.ndarray | None, forced: int | None) -> tuple[int, dict[str, Any]]:
    """The graded-input scale s (x_int = round(x·2^s)) and what is known about the input."""
    kind = ticket.encoding.kind
    if forced is not None and (not isinstance(forced, (int, np.integer)) or isinstance(forced, bool)
                               or not 0 <= forced <= INPUT_FRAC_BITS_MAX):
        raise SltInputError(f"input_frac_bits must be an integer in [0, {INPUT_FRAC_BITS_MAX}], got {forced!r}")
    if kind == "rate":
        return 0, {"kind": "rate", "binary": True, "exact": True, "max": 1}
    if x is None:
        if kind == "spikes":
            return 0, {"kind": "spikes", "binary": True, "exact": True, "max": 1}
        s = int(forced or 0)
        return s, {"kind": "direct", "binary": False, "exact": None, "max": None, "frac_bits": s,
                   "note": "direct (analog) input is sent as graded spikes round(x·2^s)"
                           + ("" if forced is not None else "; s is chosen per run")}
    x = check_input(ticket, x)
    if kind == "spikes" and np.all((x == 0) | (x == 1)):
        return 0, {"kind": "spikes", "binary": True, "exact": True, "max": 1}
    top = float(np.abs(x).max(initial=0.0))
    if forced is not None:
        s = int(forced)
    else:
        s_fit = INPUT_FRAC_BITS_MAX if top == 0 else max(0, min(INPUT_FRAC_BITS_MAX,
                                                                 int(math.floor(math.log2(INPUT_MAX / top)))))
        s_exact = next((b for b in range(INPUT_FRAC_BITS_MAX + 1)
                        if np.all(x * (1 << b) == np.round(x * (1 << b)))), None)
        s = s_exact if s_exact is not None and s_exact <= s_fit else s_fit
    xi = np.round(x * (1 << s))
    exact = bool(np.all(xi == x * (1 << s))) and float(np.abs(xi).max(initial=0)) <= INPUT_MAX
    info = {"kind": kind, "binary": False, "exact": exact, "frac_bits": s, "max": float(np.abs(xi).max(initial=0)),
            "max_error": float(np.abs(xi / (1 << s) - x).max(initial=0)), "values": xi}
    if not exact:
        info["note"] = f"graded input round(x·2^{s}) differs from x by up to {info['max_error']:.3g}"
    return s, info


def integer_inputs(ticket: Ticket, x: np.ndarray, s_bits: int) -> np.ndarray:
    """Per-step integer input ``(T, batch, n_in)``: the spikes (rate/spike trains) or round(x·2^s)."""
    x = check_input(ticket, x)
    T = ticket.timesteps
    rng = rate_rng(ticket)
    kind = ticket.encoding.kind
    batch = x.shape[1] if kind == "spikes" else x.shape[0]
    steps = []
    for t in range(T):
        step = encode_step(ticket, x, t, rng, np.float64).reshape(batch, -1)
        steps.append(step)
    out = np.stack(steps)
    if kind == "rate" or (kind == "spikes" and np.all((out == 0) | (out == 1))):
        return out.astype(np.int64)
    xi = np.round(out * (1 << s_bits))
    if np.abs(xi).max(initial=0) > INPUT_MAX:
        raise SltInputError(f"graded input exceeds ±{INPUT_MAX} after scaling by 2^{s_bits}; rescale the input")
    return xi.astype(np.int64)


def _v2(n: int) -> int:
    """2-adic valuation of a nonzero integer."""
    n = abs(int(n))
    return (n & -n).bit_length() - 1


def _low_bit_exponent(vals: np.ndarray) -> np.ndarray:
    """Exponent of the lowest set bit of each float64 (``v = odd · 2^e``); +inf for zeros."""
    vals = np.asarray(vals, np.float64)
    out = np.full(vals.shape, np.inf)
    nz = vals != 0
    mant, exp = np.frexp(vals[nz])
    m = np.abs(mant * 2.0**53).astype(np.int64)
    low = m & -m
    out[nz] = exp - 53 + np.log2(low.astype(np.float64))
    return out


def _per_row_min(rows: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    if rows.size:
        np.minimum.at(out, rows, vals)
    return out


def _z(dv: np.ndarray) -> np.ndarray:
    """Bits each decay consumes: (4096 − dv)/4096 = odd / 2^z (0 for β = 1 and β = 0)."""
    return np.array([DECAY_SHIFT - _v2(DECAY_UNITY - d) if 0 < d < DECAY_UNITY else 0 for d in dv.tolist()], np.int64)


def _source_bounds(pl: PlanLayer, ratios: list[np.ndarray], x_info: dict[str, Any], enc: str) -> np.ndarray:
    """Per neuron, a bound on |Σ ratio · x| per step (worst case for spikes, actual for direct input)."""
    n = pl.size
    cur = np.zeros(n)
    for s, r in zip(pl.sources, ratios, strict=True):
        if s.graded and "values" in x_info:
            vals = x_info["values"]
            if enc == "direct":
                xv = vals.reshape(vals.shape[0], -1)
                cur += np.abs(SparseMap(s.M.shape, s.M.rows, s.M.cols, r).apply(xv)).max(axis=0)
            else:
                xv = np.abs(vals).reshape(-1, s.M.shape[1]).max(axis=0)
                cur += np.bincount(s.M.rows, weights=np.abs(r) * xv[s.M.cols], minlength=n)
        else:
            cur += np.bincount(s.M.rows, weights=np.abs(r), minlength=n)
    return cur


def _int_bounds(synapses: list[FixedSynapse], n: int, x_info: dict[str, Any], enc: str) -> np.ndarray:
    """Per neuron, a bound on |a| = |Σ W · x_int| per step, in integers."""
    a = np.zeros(n)
    for syn in synapses:
        if syn.graded and "values" in x_info:
            vals = x_info["values"]
            if enc == "direct":
                xv = vals.reshape(vals.shape[0], -1).astype(np.int64)
                a += np.abs(syn.W.apply(xv)).max(axis=0)
            else:
                xv = np.abs(vals).reshape(-1, syn.W.shape[1]).max(axis=0)
                a += np.bincount(syn.W.rows, weights=np.abs(syn.W.vals) * xv[syn.W.cols], minlength=n)
        else:
            a += np.bincount(syn.W.rows, weights=np.abs(syn.W.vals.astype(np.float64)), minlength=n)
    return a


class _Ratio:
    """Exact rationals ``num / den`` (float64 inputs), with their values at a scale as integers."""

    def __init__(self, num: np.ndarray, den: np.ndarray) -> None:
        num = np.asarray(num, np.float64)
        den = np.broadcast_to(np.asarray(den, np.float64), num.shape)
        self.approx = num / den
        self.fracs: list[Fraction] | None = None
        if num.size == 0:
            self.fracs, self.inv = [], np.zeros(0, np.int64)
            return
        pairs = np.stack([num, den], axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        if len(uniq) <= EXACT_SEARCH_CAP:
            self.fracs = [Fraction(float(a)) / Fraction(float(b)) for a, b in uniq]
            self.inv = inv.reshape(-1)

    @property
    def size(self) -> int:
        return int(self.approx.size)

    def lcm(self) -> int | None:
        if self.fracs is None:
            return None
        L = 1
        for f in self.fracs:
            L = L * f.denominator // math.gcd(L, f.denominator)
            if L > VTH_MAX:
                return None
        return L

    def at(self, scale: int) -> tuple[np.ndarray, bool]:
        """``round(ratio · scale)`` as float64 integers, and whether every product was an integer."""
        if self.fracs is None:
            k = np.round(self.approx * scale)
            return k, False
        vals = [f * scale for f in self.fracs]
        k = np.array([float(round(v)) for v in vals], np.float64)[self.inv] if vals else np.zeros(0)
        return k, all(v.denominator == 1 for v in vals)


def _convert_layer(pl: PlanLayer, T: int, s_bits: int, x_info: dict[str, Any], enc: str) -> FixedLayer:
    node = pl.node
    n = pl.size
    notes: list[str] = []
    report: dict[str, Any] = {"layer": pl.name, "kind": pl.kind, "depth": pl.depth}

    # ---- per-neuron real parameters: decay β, input gain g, threshold θ, reset
    gain = np.ones(n)
    charge_exact = True
    r_amt = np.zeros(n)
    if pl.kind == "or":           # MaxPool of spikes: fires when any input spiked
        beta, theta, reset = np.zeros(n), np.full(n, 0.5), "zero"
    elif pl.kind == "li":         # no threshold: scale freely, read V back
        beta, theta, reset = node.beta.astype(np.float64).reshape(-1), np.ones(n), "none"
    else:
        lif: LIF = node  # type: ignore[assignment]
        theta = lif.threshold.astype(np.float64).reshape(-1)
        reset = lif.reset
        if reset in ("subtract", "subtract_delayed"):
            r_amt = lif.reset_amount.astype(np.float64).reshape(-1)
        if lif.charge == "leaky":
            beta = lif.beta.astype(np.float64).reshape(-1)
        else:
            tau = lif.tau.astype(np.float64).reshape(-1)
            beta = 1.0 - 1.0 / tau
            if lif.charge == "decay_input":
                gain = 1.0 / tau
            charge_exact = False
            notes.append(f"charge '{lif.charge}': Loihi runs the equivalent leaky form (β = 1 − 1/τ"
                         + (", input scaled by 1/τ" if lif.charge == "decay_input" else "")
                         + "); the float reference rounds in its own operation order")
        if np.any(theta < 0):
            raise SltUnsupportedError(f"node '{pl.name}': negative thresholds cannot run on Loihi (vth is unsigned)")
        if np.any(theta == 0) and not np.all(theta == 0):
            raise SltUnsupportedError(
                f"node '{pl.name}': thresholds mix zero and positive values; Loihi's threshold is one unsigned "
                "value per layer and a zero threshold cannot be rescaled per neuron"
            )
    zero_theta = pl.kind == "lif" and bool(np.all(theta == 0))
    theta_eff = np.ones(n) if zero_theta else theta

    # ---- decays: (4096 − dv) / 4096
    dv_real = DECAY_UNITY * (1.0 - beta)
    dv = np.clip(np.round(dv_real), 0, DV_MAX).astype(np.int64)
    decay_on_grid = bool(np.all(dv == dv_real))
    if not decay_on_grid:
        err = float(np.max(np.abs((DECAY_UNITY - dv) / DECAY_UNITY - beta)))
        notes.append(f"decay β is not a multiple of 1/4096: dv = round(4096·(1−β)), |Δβ| ≤ {err:.2e}")
    if pl.kind != "or" and np.any(dv == DECAY_UNITY):
        notes.append("β = 0 uses dv = 4096 (as lava-dl's netx does); Loihi 2's 12-bit decay field holds 0..4095")

    # ---- ratios that the layer scale multiplies: weights/θ, bias/θ, reset/θ
    ratios: list[_Ratio] = []
    for s in pl.sources:
        den = theta_eff[s.M.rows] / gain[s.M.rows] * ((1 << s_bits) if s.graded else 1)
        ratios.append(_Ratio(s.M.vals, den))
    b_ratio = _Ratio(pl.bias, theta_eff / gain)
    reset_ratio = _Ratio(r_amt * (1 << VTH_SHIFT), theta_eff)
    cur = _source_bounds(pl, [r.approx for r in ratios], x_info, enc)
    scale, scale_note = _choose_scale(ratios, b_ratio, reset_ratio, float(cur.max(initial=0.0)), dv, T)
    if scale_note:
        notes.append(scale_note)

    # ---- integers
    k_all, k_exact = zip(*[r.at(scale) for r in ratios], strict=True) if ratios else ((), ())
    w_abs_max = max((float(np.abs(k).max(initial=0)) for k in k_all), default=0.0)
    E = 0 if w_abs_max <= WEIGHT_MANT_MAX else 1
    limit = WEIGHT_MAX if E else WEIGHT_MANT_MAX
    clipped_w = w_abs_max > WEIGHT_MAX
    ints = [np.clip(np.round(k / 2) * 2 if E else k, -limit, limit).astype(np.int64) for k in k_all]
    pairs = list(zip(ints, k_all, ratios, strict=True))
    weights_exact = (not clipped_w) and all(k_exact) and all(bool(np.all(i == k)) for i, k, _ in pairs)
    if not weights_exact:
        err = max((float(np.abs(i - r.approx * scale).max(initial=0)) for i, _, r in pairs), default=0.0)
        notes.append(f"weights are not on the grid θ/{scale}: rounded by up to {err:.3g} (threshold = {scale})"
                     + ("; some clipped to ±254" if clipped_w else ""))
    b_k, b_exact = b_ratio.at(scale)
    bias_mant = np.clip(b_k, -BIAS_MANT_MAX, BIAS_MANT_MAX).astype(np.int64)
    bias_exact = b_exact and bool(np.all(bias_mant == b_k))
    if not bias_exact:
        err = float(np.abs(bias_mant - b_ratio.approx * scale).max(initial=0))
        notes.append(f"bias is not on the grid θ/{scale}: rounded by up to {err:.3g}"
                     + ("; clipped to ±4095" if np.any(np.abs(b_k) > BIAS_MANT_MAX) else ""))
    r_k, reset_exact = reset_ratio.at(scale)
    reset_amount = r_k.astype(np.int64)
    if not reset_exact:
        notes.append("the reset amount r·64·vth/θ is not an integer: rounded")
    vth = 0 if zero_theta else int(scale)

    synapses = []
    for s, W in zip(pl.sources, ints, strict=True):
        wmap = SparseMap(s.M.shape, s.M.rows, s.M.cols, W).map_vals(W)
        synapses.append(FixedSynapse(s.src, s.lag, wmap, E, _int_conv(s, wmap, theta_eff, gain, scale, s_bits, E),
                                     s.graded, s.delay))

    # ---- exactness of the integer dynamics against the real-valued ticket
    z = _z(dv)
    g_u = _row_gcd(synapses, bias_mant, n)
    val = np.array([VTH_SHIFT + _v2(g) if g else 99 for g in g_u.tolist()])
    if reset in ("subtract", "subtract_delayed"):
        val = np.minimum(val, np.array([_v2(r) if r else 99 for r in reset_amount.tolist()]))
    decay_exact = pl.kind == "or" or (decay_on_grid and bool(np.all(val >= z * max(T - 1, 0))))
    if decay_on_grid and not decay_exact:
        notes.append("decays truncate toward zero (v·(4096−dv) >> 12) where the float reference multiplies: the "
                     "membrane lacks the low zero bits for exact decays over T steps")
    a_bound = _int_bounds(synapses, n, x_info, enc)
    u_safe = bool(np.all(a_bound * (1 << ACT_SHIFT) < MAX_UV))
    v_bound = T * ((a_bound + np.abs(bias_mant)) * (1 << VTH_SHIFT) + np.abs(reset_amount))
    v_safe = pl.kind == "or" or bool(np.all(v_bound <= MAX_UV - 1))
    if not u_safe:
        notes.append(f"the synaptic input can exceed 2^17 (worst case {int(a_bound.max())}) and wrap the 24-bit "
                     "current; the fixed-point reference counts wraps")
    elif not v_safe:
        notes.append("in the worst case the membrane reaches ±2^23 within T steps and clips; the fixed-point "
                     "reference counts clips")
    fixed_exact = weights_exact and bias_exact and reset_exact and decay_exact

    # ---- exactness of the float32 reference itself
    float_exact = _float_exact(pl, T, x_info, r_amt if reset != "zero" else None, dv, decay_on_grid) \
        if charge_exact else False
    if fixed_exact and float_exact is False and pl.kind != "or" and charge_exact:
        notes.append("the float32 reference rounds here (its values are not all on one power-of-two grid below "
                     "2^24), so Loihi's exact integers can differ from it")
    graded = any(s.graded for s in pl.sources)
    input_exact = x_info.get("exact") if graded else True
    ok = fixed_exact and u_safe and v_safe and float_exact is not False and input_exact is not False
    pending = input_exact is None or float_exact is None
    readout = theta_eff.copy() if pl.kind == "li" else np.zeros(n)
    report.update({
        "vth": vth, "scale": int(scale), "weight_exp": E, "weight_bits": 8,
        "max_abs_weight": int(max((int(np.abs(s.W.vals).max(initial=0)) for s in synapses), default=0)),
        "dv": int(dv[0]) if bool(np.all(dv == dv[0])) else sorted({int(d) for d in dv.tolist()}),
        "du": DU_FULL, "bias_exp": BIAS_EXP, "reset": reset,
        "exact": {"weights": weights_exact, "bias": bias_exact, "threshold": True, "decay": decay_exact,
                  "reset": reset_exact, "input": input_exact, "no_overflow": bool(u_safe and v_safe),
                  "float_reference": float_exact},
        "spikes_equal_reference": None if (ok and pending) else bool(ok),
        "notes": notes,
    })
    if pl.kind == "li":
        report["note_readout"] = "LI readout: the output is V·θ/(64·scale), compared as values, not spikes"
    return FixedLayer(pl.name, pl.kind, pl.shape, synapses, vth, dv, bias_mant, reset, reset_amount, pl.depth,
                      readout, int(scale) << VTH_SHIFT, report)


def _int_conv(s: PlanSource, wmap: SparseMap, theta: np.ndarray, gain: np.ndarray, scale: int, s_bits: int,
              E: int) -> ConvSpec | None:
    """The integer kernel when the synapse is one Conv2d and the per-neuron scale is per channel."""
    if s.conv is None:
        return None
    c_out = s.conv.out_shape[0]
    th = theta.reshape(c_out, -1)
    g = gain.reshape(c_out, -1)
    if not (np.all(th == th[:, :1]) and np.all(g == g[:, :1])):
        return None
    ratio = s.conv.kernel * (g[:, 0] / th[:, 0]).reshape(-1, 1, 1, 1)
    if s.graded:
        ratio = ratio / (1 << s_bits)
    k = np.round(ratio * scale)
    limit = WEIGHT_MAX if E else WEIGHT_MANT_MAX
    kk = np.clip(np.round(k / 2) * 2 if E else k, -limit, limit).astype(np.int64)
    cm = conv_map(s.conv.in_shape, kk, s.conv.stride, s.conv.padding, s.conv.dilation, s.conv.groups)
    same = (cm.shape == wmap.shape and cm.nnz == wmap.nnz and np.array_equal(cm.rows, wmap.rows)
            and np.array_equal(cm.cols, wmap.cols) and np.array_equal(cm.vals, wmap.vals))
    if not same:
        return None
    return ConvSpec(s.conv.in_shape, s.conv.out_shape, kk, s.conv.stride, s.conv.padding, s.conv.dilation,
                    s.conv.groups)


def _row_gcd(synapses: list[FixedSynapse], bias: np.ndarray, n: int) -> np.ndarray:
    """Per neuron, gcd of all integer increments (weights and bias) in U units."""
    g = np.zeros(n, np.int64)
    for syn in synapses:
        order = np.argsort(syn.W.rows, kind="stable")
        rows, vals = syn.W.rows[order], np.abs(syn.W.vals[order].astype(np.int64))
        if rows.size:
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            g[rows[starts]] = np.gcd(g[rows[starts]], np.gcd.reduceat(vals, starts))
    return np.gcd(g, np.abs(bias))


def _choose_scale(ratios: list[_Ratio], b_ratio: _Ratio, reset_ratio: _Ratio, cur_max: float, dv: np.ndarray,
                  T: int) -> tuple[int, str]:
    """The layer scale (= vth): exact -- every ratio·vth an integer on the grid -- if possible, else precise.

    Exact candidates are ``L·2^j`` (L: the lcm of all denominators); the first whose integers
    fit is taken, or a later one when decays need more low zero bits and no overflow bound
    is crossed. Otherwise the scale fills the 8-bit weight range (bias range and, where
    that keeps >= 16 weight levels, the 2^17 input bound permitting).
    """
    w_max = max((float(np.abs(r.approx).max(initial=0.0)) for r in ratios), default=0.0)
    b_max = float(np.abs(b_ratio.approx).max(initial=0.0))
    v_over = int((1 << 17) / cur_max) if cur_max > 0 else VTH_MAX    # |a| = vth · cur < 2^17
    Ls = [r.lcm() for r in [*ratios, b_ratio, reset_ratio]]
    if all(L is not None for L in Ls):
        L = 1
        for x in Ls:
            L = L * x // math.gcd(L, x)  # type: ignore[operator]
        need = int(_z(np.unique(dv)).max(initial=0)) * max(T - 1, 0)
        first = None
        vth = L
        while vth <= VTH_MAX and w_max * vth <= WEIGHT_MAX and b_max * vth <= BIAS_MANT_MAX:
            ks = [r.at(vth)[0] for r in ratios]
            even = all(bool(np.all(np.mod(k, 2) == 0)) for k in ks)
            if w_max * vth <= WEIGHT_MANT_MAX or even:
                first = first or vth
                if _valuation([*ks, b_ratio.at(vth)[0]]) + VTH_SHIFT >= need or 2 * vth > v_over:
                    return vth, ""
            vth *= 2
        if first is not None:
            return first, ""
    cands = [VTH_MAX]
    if w_max > 0:
        cands.append(int(WEIGHT_MANT_MAX / w_max))
    if b_max > 0:
        cands.append(int(BIAS_MANT_MAX / b_max))
    vth = max(1, min(cands))
    if w_max > 0 and v_over < vth and v_over * w_max >= 16:
        vth = max(1, v_over)
    return vth, "no vth ≤ 2^17−1 puts every weight/θ and bias/θ ratio on the 8-bit integer grid"


def _valuation(arrays: list[np.ndarray]) -> int:
    vals = np.concatenate([np.abs(a).astype(np.int64) for a in arrays]) if arrays else np.zeros(0, np.int64)
    vals = vals[vals != 0]
    return _v2(int(np.gcd.reduce(vals))) if vals.size else 99


def _float_exact(pl: PlanLayer, T: int, x_info: dict[str, Any], r_amt: np.ndarray | None, dv: np.ndarray,
                 decay_on_grid: bool) -> bool | None:
    """Whether the float32 reference computes this layer exactly (see the module docstring).

    None: it depends on graded input values that are not known yet.
    """
    if not decay_on_grid:
        return False
    n = pl.size
    low = np.full(n, np.inf)
    vmax = np.zeros(n)
    unknown = False
    for s in pl.sources:
        e = _low_bit_exponent(s.M.vals)
        xm = 1.0
        if s.graded:
            if "values" not in x_info:
                unknown = True
                continue
            if not x_info.get("exact"):
                return False
            xv = x_info["values"] / (1 << x_info["frac_bits"])
            e = e + (float(_low_bit_exponent(xv[xv != 0]).min()) if np.any(xv != 0) else 0.0)
            xm = float(np.abs(xv).max(initial=0.0))
        low = np.minimum(low, _per_row_min(s.M.rows, e, n))
        vmax += s.M.row_abs_sum() * xm
    low = np.minimum(low, _low_bit_exponent(pl.bias))
    vmax += np.abs(pl.bias)
    if r_amt is not None:
        low = np.minimum(low, _low_bit_exponent(r_amt))
        vmax += np.abs(r_amt)
    vmax *= T
    low_eff = low - _z(dv) * max(T - 1, 0)
    finite = np.isfinite(low_eff)
    if not np.all(low_eff[finite] >= -126):
        return False
    with np.errstate(over="ignore"):
        ok = np.where(finite, vmax < np.exp2(np.where(finite, low_eff, 0) + 24), True)
    if not np.all(ok):
        return False
    return None if unknown else True


def _network_report(fixed: FixedNetwork, x_info: dict[str, Any]) -> dict[str, Any]:
    layers = [layer.report for layer in fixed.layers]
    eq = [r["spikes_equal_reference"] for r in layers]
    spikes_equal = None if any(e is None for e in eq) and all(e is not False for e in eq) else all(bool(e) for e in eq)
    info = {k: v for k, v in x_info.items() if k != "values"}
    return {
        "mode": "fixed_pt",
        "delay_steps": fixed.depth,
        "delay_note": (f"every Lava connection delays by one step: the output of ticket step t comes {fixed.depth} "
                       f"Lava steps after its input; the target runs T + {fixed.depth} steps and aligns"),
        "input": info,
        "spikes_equal_reference": spikes_equal,
        "layers": layers,
    }


# ================================================================ the fixed-point reference
def _wrap32(a: np.ndarray) -> np.ndarray:
    return ((a + (1 << 31)) % (1 << 32)) - (1 << 31)


def _decay(v: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``sign(v·(4096−d)) · (|v·(4096−d)| >> 12)`` in int64 (Lava's truncating decay)."""
    p = v.astype(np.int64) * (DECAY_UNITY - d)
    return np.sign(p) * (np.abs(p) >> DECAY_SHIFT)


def lif_step(u: np.ndarray, v: np.ndarray, a: np.ndarray, dv: np.ndarray, bias_mant: np.ndarray,
             du: int = DU_FULL) -> tuple[np.ndarray, np.ndarray, int]:
    """One step of Lava's ``AbstractPyLifModelFixed.subthr_dynamics``; returns (u, v, #wrapped or clipped)."""
    decayed_curr = _decay(u, du + 1)
    decayed_curr = _wrap32(decayed_curr + _wrap32(a.astype(np.int64) << ACT_SHIFT))
    wrapped = np.where(decayed_curr > MAX_UV, decayed_curr - 2 * MAX_UV, decayed_curr)
    wrapped = np.where(wrapped <= -MAX_UV, decayed_curr + 2 * MAX_UV, wrapped)
    events = int(np.count_nonzero(wrapped != decayed_curr))
    updated = _decay(v, dv) + wrapped + (bias_mant.astype(np.int64) << BIAS_EXP)
    clipped = np.clip(updated, -MAX_UV + 1, MAX_UV - 1)
    events += int(np.count_nonzero(clipped != updated))
    return wrapped, clipped, events


def conv_wrap24(a: np.ndarray) -> np.ndarray:
    """Lava's Conv fixed model: ``signed_clamp(x, 24) = (x + 2^23) mod 2^24 − 2^23``."""
    return ((a + MAX_UV) % (2 * MAX_UV)) - MAX_UV


def _simulate(fixed: FixedNetwork, xi: np.ndarray, clamp_conv: bool, record: bool) -> Result:
    T, batch = xi.shape[0], xi.shape[1]
    state = {}
    outs: dict[str, list[np.ndarray]] = {}
    prev: dict[str, np.ndarray] = {}
    sat: dict[str, int] = {}
    for layer in fixed.layers:
        n = layer.size
        state[layer.name] = dict(u=np.zeros((batch, n), np.int64), v=np.zeros((batch, n), np.int64),
                                 s=np.zeros((batch, n), np.int64))
        prev[layer.name] = np.zeros((batch, n), np.int64)
        outs[layer.name] = []
        sat[layer.name] = 0
    inp = fixed.plan.input_name
    for t in range(T):
        cur = {inp: xi[t]}
        prev[inp] = xi[t - 1] if t > 0 else np.zeros_like(xi[0])
        for layer in fixed.layers:
            st = state[layer.name]
            a = np.zeros((batch, layer.size), np.int64)
            for syn in layer.synapses:
                x = cur[syn.src] if syn.lag == 0 else prev[syn.src]
                part = syn.W.apply(x.astype(np.int64))
                if clamp_conv and syn.conv is not None and syn.delay == 0:
                    wrapped = conv_wrap24(part)
                    if np.any(np.abs(part) >= (1 << 24)):
                        sat[layer.name] += int(np.count_nonzero(np.abs(part) >= (1 << 24)))
                    sat[layer.name] += int(np.count_nonzero(wrapped != part))
                    part = wrapped
                a += part
            if layer.reset == "subtract_delayed":
                u, v, ev = lif_step(st["u"], st["v"], a, layer.dv, layer.bias_mant)
                v = v - layer.reset_amount * st["s"]
            else:
                u, v, ev = lif_step(st["u"], st["v"], a, layer.dv, layer.bias_mant)
            sat[layer.name] += ev
            if layer.kind == "li":
                out = v.copy()
                s = np.zeros_like(v)
            else:
                s = (v > (layer.vth << VTH_SHIFT)).astype(np.int64)
                if layer.reset == "zero":
                    v = np.where(s > 0, 0, v)
                elif layer.reset == "subtract":
                    v = v - layer.reset_amount * s
                out = s
            st["u"], st["v"], st["s"] = u, v, s
            cur[layer.name] = out
            outs[layer.name].append(out)
        for layer in fixed.layers:
            prev[layer.name] = cur[layer.name]
    return _to_result(fixed, outs, sat, record, FIXED_REFERENCE.name)


def _to_result(fixed: FixedNetwork, outs: dict[str, list[np.ndarray]], sat: dict[str, int], record: bool,
               target: str) -> Result:
    values = {}
    for layer in fixed.layers:
        arr = np.stack(outs[layer.name]).astype(np.float64)
        values[layer.name] = layer.readout(arr) if layer.kind == "li" else arr
    return package_result(fixed.ticket, values, fixed.plan.output, record, target,
                          Diagnostics(conversion=fixed.report, saturation=sat))


def package_result(ticket: Ticket, values: dict[str, np.ndarray], output_layer: str, record: bool,
                   target: str, diagnostics: Diagnostics | None = None) -> Result:
    """A :class:`Result` from per-layer outputs ``(T, batch, n)`` (spikes 0/1, or LI values) keyed by node name."""
    layers: dict[str, np.ndarray] = {}
    for name, arr in values.items():
        layers[name] = np.asarray(arr).astype(np.float32).reshape(arr.shape[0], arr.shape[1], *ticket.shapes[name])
    out = layers[output_layer]
    layers[ticket.output.name] = out.reshape(out.shape[:2] + tuple(ticket.output_shape))
    return build_result(ticket, target, layers, record=record, diagnostics=diagnostics)


def fixed_semantics(ticket: Ticket, x: np.ndarray | None = None) -> tuple[set[str], list[str]]:
    """Loihi's integer semantics, and float32 too where the conversion proves the spikes equal."""
    from .registry import FIXED, FLOAT32

    report = to_fixed(ticket, x).report
    return {FIXED} | ({FLOAT32} if report.get("spikes_equal_reference") is True else set()), []


__all__ = [
    "ConvSpec", "FixedLayer", "FixedNetwork", "FixedSynapse", "Plan", "PlanLayer", "PlanSource", "SparseMap",
    "conv_map", "conversion_report", "integer_inputs", "lif_step", "make_plan", "mark_graded_input", "package_result",
    "pool_map",
    "simulate_fixed", "to_fixed",
]
