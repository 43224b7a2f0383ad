"""The PyTorch target: runs a ticket with torch ops, spike for spike equal to the reference.

It follows :mod:`slt_deploy.reference` operation by operation, with the same rounding
rules (docs/semantics.md):

- Synaptic sums: ``torch.matmul`` / ``F.conv2d`` in float64 on the integer codes (binary
  signs, int8 ``q``) or on the float32 weights, rounded once to the working precision,
  then ``· scale`` (binary/int8) and ``+ bias``. This equals the reference's exactly rounded
  sum whenever the float64 accumulation is exact (always for spike inputs with binary or
  int8 weights; for float weights unless they span ~2^50 in magnitude, which
  :func:`slt_deploy.exact.fallback_count` detects on the reference side).
- Sum/Avg pools: float64 window sums (``avg_pool2d`` with ``divisor_override=1``), rounded
  once, then ``/ (kH·kW)`` for Avg. Max pools in the working precision (−inf padding).
- Add in edge order; neuron updates as in :mod:`slt_deploy.ir.neurons`, one torch op per
  floating-point operation (no fused multiply-add), so every rounding matches.

Rate-coded input uses the documented numpy generator (``Generator(PCG64(seed))``), so the
input spikes are the reference's. torch is imported lazily: this module is only loaded by
``slt_deploy.run(..., target="torch")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SltError, SltInputError
from .ir.graph import Ticket
from .ir.neurons import LI, LIF
from .ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from .ir.weights import FloatWeights, Weights
from .result import Result, check_input, encode_step, rate_rng

_NEEDS_TORCH = "target 'torch' needs PyTorch: pip install 'slt-deploy[torch]'"


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise SltError(_NEEDS_TORCH) from None
    return torch


def _resolve_dtype(torch: Any, dtype: Any) -> tuple[Any, type]:
    """Map ``torch.float32`` / ``"float32"`` / ``np.float32`` (and the 64-bit ones) to (torch, numpy) dtypes."""
    table = {
        torch.float32: (torch.float32, np.float32), torch.float64: (torch.float64, np.float64),
        "float32": (torch.float32, np.float32), "float64": (torch.float64, np.float64),
        np.float32: (torch.float32, np.float32), np.float64: (torch.float64, np.float64),
    }
    try:
        return table[dtype]
    except (KeyError, TypeError):
        pass
    if isinstance(dtype, np.dtype) and dtype.type in table:
        return table[dtype.type]
    raise SltInputError(f"target 'torch' runs in float32 or float64, got dtype={dtype!r}")


def run_torch(ticket: Ticket, x: np.ndarray, dtype: Any = "float32", device: Any = "cpu",
              record: bool = True) -> Result:
    """Run ``ticket`` on ``x`` with PyTorch; same contract as :func:`slt_deploy.reference.simulate`.

    ``dtype``: ``torch.float32`` / ``"float32"`` (exact-comparison mode) or the float64 ones.
    ``device``: any torch device (``"cpu"``, ``"cuda"``). Returns a :class:`Result` with
    ``target="torch"``, numpy arrays throughout.
    """
    torch = _import_torch()
    tdtype, npdtype = _resolve_dtype(torch, dtype)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SltError(f"target 'torch': bad device {device!r}: {exc}") from None
    x = check_input(ticket, x)
    batch = x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0]
    T = ticket.timesteps
    rng = rate_rng(ticket)
    nodes = {n.name: n for n in ticket.nodes}
    incoming = {name: ticket.inputs_of(name) for name in ticket.order}
    ops = {n.name: _StatelessOp(torch, n, tdtype, dev) for n in ticket.nodes
           if not isinstance(n, (LIF, LI, Input))}
    state = {n.name: _NeuronState(torch, n, batch, tdtype, dev) for n in ticket.nodes if isinstance(n, (LIF, LI))}
    previous = {name: st.output_zero() for name, st in state.items()}
    recorded: dict[str, list[Any]] = {name: [] for name in ticket.order}
    out_name = ticket.output.name

    with torch.no_grad():
        for t in range(T):
            values: dict[str, Any] = {}
            for name in ticket.order:
                node = nodes[name]
                if isinstance(node, Input):
                    # The reference's own encoder (float64 -> working dtype, rate draws from
                    # the documented numpy generator), then moved to the device unchanged.
                    out = torch.from_numpy(np.ascontiguousarray(encode_step(ticket, x, t, rng, npdtype))).to(dev)
                else:
                    ins = [previous[e.src] if e.recurrent else values[e.src] for e in incoming[name]]
                    out = state[name].step(ins[0]) if name in state else ops[name](ins)
                values[name] = out
                if record or name == out_name:
                    recorded[name].append(out)
            for name in state:
                previous[name] = values[name]

    layers = {name: torch.stack(v).cpu().numpy() for name, v in recorded.items() if v}
    output = layers[out_name]
    spike_counts = {
        n.name: layers[n.name].reshape(T, -1).sum(axis=1, dtype=np.int64)  # exact past 2^24
        for n in ticket.nodes if isinstance(n, LIF) and n.name in layers
    }
    if not record:
        layers = {out_name: output}
    return Result(output=output, spiking=ticket.output_is_spiking, layers=layers,
                  spike_counts=spike_counts, target="torch")


class _NeuronState:
    """Membrane state of one neuron layer, the torch twin of ``reference._NeuronState``."""

    def __init__(self, torch: Any, node: LIF | LI, batch: int, dtype: Any, device: Any) -> None:
        self.torch = torch
        self.node = node

        def param(a: np.ndarray | None) -> Any:
            return None if a is None else torch.from_numpy(np.array(a, dtype=np.float32)).to(device=device, dtype=dtype)

        shape = (batch, *node.shape)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.s = torch.zeros(shape, dtype=dtype, device=device)  # previous step's spikes
        self.beta = param(node.beta)
        self.bias = param(node.bias)
        self.zero = torch.zeros((), dtype=dtype, device=device)
        if isinstance(node, LIF):
            self.threshold = param(node.threshold)
            self.reset_amount = param(node.reset_amount)
            self.tau = param(node.tau)

    def output_zero(self) -> Any:
        return self.torch.zeros_like(self.v)

    def step(self, u: Any) -> Any:
        node = self.node
        u = u.to(self.v.dtype)
        current = u if self.bias is None else u + self.bias
        if isinstance(node, LI) or node.charge == "leaky":
            v = self.beta * self.v + current  # two roundings: the product, then the sum
        elif node.charge == "decay_input":  # v + (I - v) / tau
            v = self.v + (current - self.v) / self.tau
        elif node.charge == "leaky_tau":  # (v - v / tau) + I
            v = (self.v - self.v / self.tau) + current
        else:
            raise SltError(f"target 'torch' has no rule for charge {node.charge!r} (node '{node.name}')")
        if isinstance(node, LI):
            self.v = v
            return v.clone()
        if node.reset == "subtract_delayed":
            v = v - self.reset_amount * self.s
        s = (v > self.threshold).to(v.dtype)
        if node.reset == "zero":
            v = self.torch.where(s > 0, self.zero, v)
        elif node.reset == "subtract":
            v = v - self.reset_amount * s
        self.v, self.s = v, s
        return s


class _StatelessOp:
    """One stateless node (synapses, pools, Flatten, Add, Output) as a torch callable."""

    def __init__(self, torch: Any, node: Node, dtype: Any, device: Any) -> None:
        self.torch = torch
        self.node = node
        self.dtype = dtype
        if isinstance(node, (Linear, Conv2d)):
            w = node.weights
            self.codes = torch.from_numpy(_integer_or_float(w)).to(device)  # float64
            channel = (1, -1) if isinstance(node, Linear) else (1, -1, 1, 1)
            self.scale = None if isinstance(w, FloatWeights) else (
                torch.from_numpy(np.array(w.channel_scale(), dtype=np.float32)).to(device=device, dtype=dtype)
                .reshape(channel))
            self.bias = None if node.bias is None else (
                torch.from_numpy(np.array(node.bias, dtype=np.float32)).to(device=device, dtype=dtype).reshape(channel))
        if isinstance(node, AvgPool2d):
            kh, kw = node.kernel_size
            self.divisor = torch.tensor(float(kh * kw), dtype=dtype, device=device)

    def __call__(self, ins: list[Any]) -> Any:
        torch, node = self.torch, self.node
        F = torch.nn.functional
        if isinstance(node, (Linear, Conv2d)):
            x64 = ins[0].to(torch.float64)
            if isinstance(node, Linear):
                acc = torch.matmul(x64, self.codes.T)
            else:
                acc = F.conv2d(x64, self.codes, None, stride=node.stride, padding=node.padding,
                               dilation=node.dilation, groups=node.groups)
            out = acc.to(self.dtype)  # the one rounding of the synaptic sum
            if self.scale is not None:
                out = out * self.scale
            if self.bias is not None:
                out = out + self.bias
            return out
        if isinstance(node, (SumPool2d, AvgPool2d)):
            total = F.avg_pool2d(ins[0].to(torch.float64), node.kernel_size, node.stride, node.padding,
                                 ceil_mode=False, count_include_pad=True, divisor_override=1).to(self.dtype)
            if isinstance(node, AvgPool2d):
                return total / self.divisor
            return total
        if isinstance(node, MaxPool2d):
            return F.max_pool2d(ins[0].to(self.dtype), node.kernel_size, node.stride, node.padding)
        if isinstance(node, Flatten):
            return ins[0].reshape(ins[0].shape[0], -1)
        if isinstance(node, Add):
            total = ins[0].to(self.dtype)
            for other in ins[1:]:
                total = total + other.to(self.dtype)
            return total
        if isinstance(node, Output):
            return ins[0]
        raise SltError(f"target 'torch' has no rule for node kind {node.kind!r} (node '{node.name}')")


def _integer_or_float(w: Weights) -> np.ndarray:
    """float64 array of the summed codes: signs/int8 codes, or the float weights themselves."""
    if isinstance(w, FloatWeights):
        return np.array(w.values, dtype=np.float64)
    return np.array(w.integer_values(), dtype=np.float64)
