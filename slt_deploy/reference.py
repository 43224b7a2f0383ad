"""The reference simulator: the executable specification of a ticket's semantics.

Dense, plain numpy, written to be obviously correct rather than fast. Every target and
importer is tested against it spike for spike. Working precision ``dtype`` is float32
(the exact-comparison mode) or float64.

Rounding rules (docs/semantics.md):

- Synaptic sums are exact and rounded once to ``dtype`` (float64 accumulation where a
  cheap certificate proves it exact, an exact fallback elsewhere: :mod:`slt_deploy.exact`). For binary and
  int8 weights the sum runs over the integer codes, ``n = Σ q·x``, then
  ``I = dtype(n) · scale`` (one rounding) and ``+ bias`` (another). With spike inputs ``n``
  is an integer, so every target can reproduce it exactly.
- Sum/Avg pools likewise: exact window sum, rounded once, then ``/ (kH·kW)`` for Avg.
- Add sums in edge order in ``dtype``; neuron updates follow :mod:`slt_deploy.ir.neurons`
  operation by operation.
"""

from __future__ import annotations

import numpy as np

from . import exact
from .errors import SltInputError
from .ir.graph import Ticket
from .ir.neurons import LI, LIF
from .ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from .ir.weights import FloatWeights, Weights
from .result import Result, check_input, encode_step, rate_rng


def simulate(ticket: Ticket, x: np.ndarray, dtype: type = np.float32, record: bool = True) -> Result:
    """Run ``ticket`` on ``x`` for T steps; see :func:`slt_deploy.result.check_input` for shapes."""
    dtype = _working_dtype(dtype)
    x = check_input(ticket, x)
    batch = x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0]
    T = ticket.timesteps
    rng = rate_rng(ticket)
    nodes = {n.name: n for n in ticket.nodes}
    state = {n.name: _NeuronState(n, batch, dtype) for n in ticket.nodes if isinstance(n, (LIF, LI))}
    previous: dict[str, np.ndarray] = {name: st.output_zero() for name, st in state.items()}
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in ticket.order}

    for t in range(T):
        values: dict[str, np.ndarray] = {}
        for name in ticket.order:
            node = nodes[name]
            if isinstance(node, Input):
                out = encode_step(ticket, x, t, rng, dtype)
            else:
                ins = [previous[e.src] if e.recurrent else values[e.src] for e in ticket.inputs_of(name)]
                out = state[name].step(ins[0]) if name in state else _apply(node, ins, dtype)
            values[name] = out
            if record or isinstance(node, Output):
                recorded[name].append(out)
        for name in state:
            previous[name] = values[name]

    layers = {name: np.stack(v) for name, v in recorded.items() if v}
    output = layers[ticket.output.name]
    spike_counts = {
        n.name: layers[n.name].reshape(T, -1).sum(axis=1, dtype=np.int64)  # exact past 2^24
        for n in ticket.nodes if isinstance(n, LIF) and n.name in layers
    }
    if not record:
        layers = {ticket.output.name: output}
    return Result(output=output, spiking=ticket.output_is_spiking, layers=layers,
                  spike_counts=spike_counts, target="reference")


def _working_dtype(dtype: object) -> type:
    """``np.float32`` / ``np.float64`` from a numpy type, ``np.dtype`` or name; else SltInputError."""
    try:
        scalar = None if dtype is None else np.dtype(dtype).type  # np.dtype(None) would mean float64
    except TypeError:
        scalar = None
    if scalar not in (np.float32, np.float64):
        raise SltInputError(f"dtype must be float32 or float64 (np.float32, np.dtype or name), got {dtype!r}")
    return scalar


class _NeuronState:
    """Membrane state of one neuron layer; ``step`` applies the equations of ir.neurons."""

    def __init__(self, node: LIF | LI, batch: int, dtype: type) -> None:
        self.node = node
        self.dtype = dtype
        shape = (batch, *node.shape)
        self.v = np.zeros(shape, dtype)
        self.s = np.zeros(shape, dtype)  # previous step's spikes (subtract_delayed)
        self.beta = node.beta.astype(dtype)
        self.bias = None if node.bias is None else node.bias.astype(dtype)
        if isinstance(node, LIF):
            self.threshold = node.threshold.astype(dtype)
            self.reset_amount = node.reset_amount.astype(dtype)
            self.tau = None if node.tau is None else node.tau.astype(dtype)

    def output_zero(self) -> np.ndarray:
        return np.zeros_like(self.v)

    def step(self, u: np.ndarray) -> np.ndarray:
        node = self.node
        current = u.astype(self.dtype) if self.bias is None else u.astype(self.dtype) + self.bias
        if isinstance(node, LI) or node.charge == "leaky":
            v = self.beta * self.v + current
        elif node.charge == "decay_input":
            v = self.v + (current - self.v) / self.tau
        else:  # leaky_tau
            v = (self.v - self.v / self.tau) + current
        if isinstance(node, LI):
            self.v = v
            return v.copy()
        if node.reset == "subtract_delayed":
            v = v - self.reset_amount * self.s
        s = (v > self.threshold).astype(self.dtype)
        if node.reset == "zero":
            v = np.where(s > 0, self.dtype(0), v)
        elif node.reset == "subtract":
            v = v - self.reset_amount * s
        self.v, self.s = v, s
        return s


# ------------------------------------------------------------------ stateless ops
def _apply(node: Node, ins: list[np.ndarray], dtype: type) -> np.ndarray:
    if isinstance(node, Linear):
        flat = ins[0].astype(np.float64)
        return _finish_synapses(node.weights, node.bias, _linear_sum(node.weights, flat, dtype), dtype,
                                channel_axis=1)
    if isinstance(node, Conv2d):
        acc = _conv_sum(node, ins[0].astype(np.float64), dtype)
        return _finish_synapses(node.weights, node.bias, acc, dtype, channel_axis=1)
    if isinstance(node, (SumPool2d, AvgPool2d)):
        total = exact.exact_sum(_pool_windows(ins[0].astype(np.float64), node, 0.0), (-2, -1), dtype)
        if isinstance(node, AvgPool2d):
            return total / dtype(node.kernel_size[0] * node.kernel_size[1])
        return total
    if isinstance(node, MaxPool2d):
        return _pool_windows(ins[0].astype(dtype), node, -np.inf).max(axis=(-2, -1)).astype(dtype)
    if isinstance(node, Flatten):
        return ins[0].reshape(ins[0].shape[0], -1)
    if isinstance(node, Add):
        total = ins[0].astype(dtype)
        for other in ins[1:]:
            total = total + other.astype(dtype)
        return total
    if isinstance(node, Output):
        return ins[0]
    raise TypeError(f"reference simulator has no rule for node kind {node.kind!r}")


def _integer_or_float(w: Weights) -> np.ndarray:
    """float64 matrix of the summed codes: signs/int8 codes, or the float weights themselves."""
    if isinstance(w, FloatWeights):
        return w.values.astype(np.float64)
    return w.integer_values().astype(np.float64)


def _linear_sum(w: Weights, x: np.ndarray, dtype: type) -> np.ndarray:
    """``x @ W.T`` (codes or float weights), each entry the exact sum rounded once to ``dtype``."""
    return exact.exact_matmul(x, _integer_or_float(w), dtype)


def _finish_synapses(w: Weights, bias: np.ndarray | None, acc: np.ndarray, dtype: type,
                     channel_axis: int) -> np.ndarray:
    """Round the float64 sum once, scale per output channel (binary/int8), add the bias."""
    out = acc.astype(dtype)
    shape = [1] * out.ndim
    shape[channel_axis] = -1
    if not isinstance(w, FloatWeights):
        out = out * w.channel_scale().astype(dtype).reshape(shape)
    if bias is not None:
        out = out + bias.astype(dtype).reshape(shape)
    return out


def _conv_sum(node: Conv2d, x: np.ndarray, dtype: type) -> np.ndarray:
    """Cross-correlation ``(batch, C_in, H, W) -> (batch, C_out, H_out, W_out)``, exact sums rounded once."""
    (ph, pw), (sh, sw), (dh, dw), g = node.padding, node.stride, node.dilation, node.groups
    kh, kw = node.kernel_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    h_out = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    # patches[b, c, i, j, ki, kj] = xp[b, c, i*sh + ki*dh, j*sw + kj*dw]
    rows = (np.arange(h_out) * sh)[:, None] + (np.arange(kh) * dh)[None, :]
    cols = (np.arange(w_out) * sw)[:, None] + (np.arange(kw) * dw)[None, :]
    patches = xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (b, c, h_out, w_out, kh, kw)
    weights = _integer_or_float(node.weights)  # (C_out, C_in/g, kh, kw)
    c_out, c_in_g = weights.shape[:2]
    outs = []
    og, batch = c_out // g, x.shape[0]
    for gi in range(g):
        # rows: (b, i, j); columns: (c, ki, kj) of this group's patch
        p = patches[:, gi * c_in_g:(gi + 1) * c_in_g].transpose(0, 2, 3, 1, 4, 5).reshape(batch * h_out * w_out, -1)
        wg = weights[gi * og:(gi + 1) * og].reshape(og, -1)
        outs.append(exact.exact_matmul(p, wg, dtype).reshape(batch, h_out, w_out, og).transpose(0, 3, 1, 2))
    return np.concatenate(outs, axis=1)


def _pool_windows(x: np.ndarray, node: SumPool2d | AvgPool2d | MaxPool2d, pad_value: float) -> np.ndarray:
    """Window view ``(batch, C, H_out, W_out, kH, kW)`` of the padded input."""
    (ph, pw), (sh, sw), (kh, kw) = node.padding, node.stride, node.kernel_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    h_out = (xp.shape[2] - kh) // sh + 1
    w_out = (xp.shape[3] - kw) // sw + 1
    rows = (np.arange(h_out) * sh)[:, None] + np.arange(kh)[None, :]
    cols = (np.arange(w_out) * sw)[:, None] + np.arange(kw)[None, :]
    return xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]
