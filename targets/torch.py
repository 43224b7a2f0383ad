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
- Token/attention kinds: :mod:`.torch_tokens` (float64 sums rounded once, as above).
- Add in edge order; neuron updates as in :mod:`slt_deploy.ir.neurons`, one torch op per
  floating-point operation (no fused multiply-add), so every rounding matches.

Rate-coded input uses the rate code of :mod:`slt_deploy.ratecode` (numpy, then moved to the
device), so the input spikes are the reference's. torch is imported lazily: this module is only loaded by
``slt_deploy.run(..., target=...)`` with this target.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from slt_deploy.dispatch import HandlerTable
from slt_deploy.errors import SltError, SltInputError
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.neurons import LI, LIF, RLIF
from slt_deploy.ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, SumPool2d
from slt_deploy.ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from slt_deploy.numerics import (
    NeuronConstants,
    channel_scale,
    channel_shape,
    neuron_step,
    scale_and_bias,
    summed_codes,
    torch_ops,
)
from slt_deploy.registry import TORCH
from slt_deploy.result import Result, build_result, check_input, encode_step, rate_coder

from . import torch_tokens as T

_NEEDS_TORCH = "this target needs PyTorch: pip install 'slt-deploy[torch]'"
Step = Callable[[list[Any], int], Any]


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
    raise SltInputError(f"the torch target runs in float32 or float64 (--precision), got {dtype!r}")


class _Run:
    """What every node's step needs: torch, the device and precision, the checked input."""

    def __init__(self, torch: Any, ticket: Ticket, x: np.ndarray, tdtype: Any, npdtype: type, device: Any) -> None:
        self.torch, self.ticket, self.x = torch, ticket, x
        self.dtype, self.npdtype, self.device = tdtype, npdtype, device
        self.batch = x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0]
        self.coder = rate_coder(ticket, x)
        self.ops = torch_ops(torch)

    def tensor(self, a: np.ndarray, dtype: Any = None) -> Any:
        return self.torch.from_numpy(np.array(a)).to(device=self.device, dtype=dtype or self.dtype)


def run(ticket: Ticket, x: np.ndarray, dtype: Any = "float32", device: Any = "cpu", record: bool = True) -> Result:
    """Run ``ticket`` on ``x`` with PyTorch; same contract as :func:`slt_deploy.reference.simulate`.

    ``dtype``: ``torch.float32`` / ``"float32"`` (exact-comparison mode) or the float64 ones.
    ``device``: any torch device (``"cpu"``, ``"cuda"``). Returns a :class:`Result`, numpy arrays
    throughout.
    """
    torch = _import_torch()
    tdtype, npdtype = _resolve_dtype(torch, dtype)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SltInputError(f"bad torch device {device!r} (--device): {exc}") from None
    x = check_input(ticket, x)
    HANDLERS.check(ticket.nodes)
    run_ = _Run(torch, ticket, x, tdtype, npdtype, dev)
    steps: dict[str, Step] = {n.name: HANDLERS.call(n, run_) for n in ticket.nodes}
    incoming = {name: ticket.inputs_of(name) for name in ticket.order}
    sources = {e.src for e in ticket.edges if e.recurrent}
    previous = {n: torch.zeros((run_.batch, *ticket.shapes[n]), dtype=tdtype, device=dev) for n in sources}
    out_name = ticket.output.name
    recorded: dict[str, list[Any]] = {name: [] for name in ticket.order}
    lif_names = [n.name for n in ticket.nodes if isinstance(n, LIF)]
    counts: dict[str, list[Any]] = {name: [] for name in lif_names}  # kept even when not recording

    with torch.no_grad():
        for t in range(ticket.timesteps):
            values: dict[str, Any] = {}
            for name in ticket.order:
                ins = [previous[e.src] if e.recurrent else values[e.src] for e in incoming[name]]
                values[name] = steps[name](ins, t)
                if record or name == out_name:
                    recorded[name].append(values[name])
            for name in lif_names:
                counts[name].append(torch.count_nonzero(values[name]))
            for name in sources:
                previous[name] = values[name]
    layers = {name: torch.stack(v).cpu().numpy() for name, v in recorded.items() if v}
    spike_counts = {name: torch.stack(c).cpu().numpy().astype(np.int64) for name, c in counts.items()}
    return build_result(ticket, TORCH.name, layers, record=record, spike_counts=spike_counts)


# ------------------------------------------------------------------ one step function per node kind
def _input(node: Input, r: _Run) -> Step:
    # The reference's own encoder (float64 -> working dtype; rate spikes from slt_deploy.ratecode),
    # then moved to the device unchanged.
    def step(ins: list[Any], t: int) -> Any:
        return r.torch.from_numpy(np.ascontiguousarray(encode_step(r.ticket, r.x, t, r.coder, r.npdtype))).to(r.device)

    if r.ticket.encoding.kind == "direct":  # the same values every step: one tensor, so the next layer can tell
        x = step([], 0)
        return lambda ins, t: x
    return step


def _neuron(node: LIF | LI, r: _Run) -> Step:
    consts = NeuronConstants.of(node, lambda a: r.tensor(np.asarray(a, np.float32)),
                                r.torch.zeros((), dtype=r.dtype, device=r.device))
    shape = (r.batch, *node.shape)
    state = {"v": r.torch.zeros(shape, dtype=r.dtype, device=r.device),
             "s": r.torch.zeros(shape, dtype=r.dtype, device=r.device)}

    def step(ins: list[Any], t: int) -> Any:
        rec = ins[1].to(r.dtype) if len(ins) > 1 else None  # RLIF: recurrent current after the leak
        v, s = neuron_step(r.ops, consts, state["v"], state["s"], ins[0].to(r.dtype), rec)
        state["v"], state["s"] = v, s
        return v if consts.li else s

    return step


_CODES: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _codes(node: Linear | Conv2d, r: _Run) -> Any:
    """float64 codes on the device, built once per weights object and device (kept while the
    ticket lives): building them from the IR weights took longer than a small batch's run."""
    per_device = _CODES.setdefault(node.weights, {})
    key = str(r.device)
    if key not in per_device:
        per_device[key] = r.tensor(summed_codes(node.weights), r.torch.float64)
    return per_device[key]


def _synapses(node: Linear | Conv2d, r: _Run) -> Step:
    """float64 matmul / conv2d on the codes (exact for spike inputs), rounded once, ``· scale + bias``.

    A static input (direct encoding: the very tensor of the previous step) gives the same
    sums: they are computed once per run.
    """
    torch = r.torch
    F = torch.nn.functional
    codes = _codes(node, r)
    shape = channel_shape(2 if isinstance(node, Linear) else 4)
    scale = channel_scale(node.weights)
    scale = None if scale is None else r.tensor(scale).reshape(shape)
    bias = None if node.bias is None else r.tensor(np.asarray(node.bias, np.float32)).reshape(shape)
    last: dict[str, Any] = {}

    def step(ins: list[Any], t: int) -> Any:
        if last.get("x") is ins[0]:
            return last["out"]
        x64 = ins[0].to(torch.float64)
        if isinstance(node, Linear):
            acc = F.linear(x64, codes)
        else:
            acc = F.conv2d(x64, codes, None, stride=node.stride, padding=node.padding, dilation=node.dilation,
                           groups=node.groups)
        out = scale_and_bias(acc.to(r.dtype), scale, bias)  # one rounding of the synaptic sum
        last.update(x=ins[0], out=out)
        return out

    return step


def _window_sum(node: SumPool2d | AvgPool2d, r: _Run) -> Step:
    F = r.torch.nn.functional
    divisor = r.torch.tensor(float(node.kernel_size[0] * node.kernel_size[1]), dtype=r.dtype, device=r.device)

    def step(ins: list[Any], t: int) -> Any:
        total = F.avg_pool2d(ins[0].to(r.torch.float64), node.kernel_size, node.stride, node.padding,
                             ceil_mode=False, count_include_pad=True, divisor_override=1).to(r.dtype)
        return total / divisor if isinstance(node, AvgPool2d) else total

    return step


def _max_pool(node: MaxPool2d, r: _Run) -> Step:
    F = r.torch.nn.functional
    return lambda ins, t: F.max_pool2d(ins[0].to(r.dtype), node.kernel_size, node.stride, node.padding)


def _flatten(node: Flatten, r: _Run) -> Step:
    return lambda ins, t: ins[0].reshape(ins[0].shape[0], -1)


def _add(node: Add, r: _Run) -> Step:
    def step(ins: list[Any], t: int) -> Any:
        total = ins[0].to(r.dtype)
        for other in ins[1:]:
            total = total + other.to(r.dtype)
        return total

    return step


def _output(node: Output, r: _Run) -> Step:
    return lambda ins, t: ins[0]


HANDLERS: HandlerTable[Callable[[Any, _Run], Step]] = HandlerTable("the torch target", {
    Input: _input, Output: _output, Linear: _synapses, Conv2d: _synapses, SumPool2d: _window_sum,
    AvgPool2d: _window_sum, MaxPool2d: _max_pool, Flatten: _flatten, Add: _add, LIF: _neuron,
    RLIF: _neuron, LI: _neuron,
    Reshape: T.view, Transpose: T.view, Select: T.view, MatMul: T.matmul, Mul: T.mul, Reduce: T.reduce,
})
