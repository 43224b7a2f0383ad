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

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import exact, tokens_ref
from .dispatch import HandlerTable
from .errors import SltInputError
from .ir.graph import Ticket
from .ir.neurons import LI, LIF, RLIF
from .ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, SumPool2d
from .ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from .numerics import (
    NUMPY,
    NeuronConstants,
    channel_scale,
    channel_shape,
    conv_patches,
    neuron_step,
    pool_windows,
    scale_and_bias,
    summed_codes,
)
from .registry import REFERENCE
from .result import Diagnostics, Result, build_result, check_input, encode_step, rate_coder, stack_steps

Step = Callable[[list[np.ndarray], int], np.ndarray]  # (inputs of this step, t) -> output


class _Run:
    """What every node's step needs: the checked input, its encoding state, batch and precision."""

    def __init__(self, ticket: Ticket, x: np.ndarray, dtype: type) -> None:
        self.ticket, self.x, self.dtype = ticket, x, dtype
        self.batch = x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0]
        self.coder = rate_coder(ticket, x)


def simulate(ticket: Ticket, x: np.ndarray, dtype: Any = np.float32, record: bool = True) -> Result:
    """Run ``ticket`` on ``x`` for T steps; see :func:`slt_deploy.result.check_input` for shapes."""
    dtype = _working_dtype(dtype)
    x = check_input(ticket, x)
    HANDLERS.check(ticket.nodes)
    run = _Run(ticket, x, dtype)
    steps: dict[str, Step] = {n.name: HANDLERS.call(n, run) for n in ticket.nodes}
    incoming = {name: ticket.inputs_of(name) for name in ticket.order}
    sources = {e.src for e in ticket.edges if e.recurrent}
    previous = {name: np.zeros((run.batch, *ticket.shapes[name]), dtype) for name in sources}
    out_name = ticket.output.name
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in ticket.order}
    lif_names = [n.name for n in ticket.nodes if isinstance(n, LIF)]
    counts: dict[str, list[int]] = {name: [] for name in lif_names}  # kept even when not recording

    before = exact.fallback_count()
    for t in range(ticket.timesteps):
        values: dict[str, np.ndarray] = {}
        for name in ticket.order:
            ins = [previous[e.src] if e.recurrent else values[e.src] for e in incoming[name]]
            values[name] = steps[name](ins, t)
            if record or name == out_name:
                recorded[name].append(values[name])
        for name in lif_names:
            counts[name].append(np.count_nonzero(values[name]))
        for name in sources:
            previous[name] = values[name]
    return build_result(ticket, REFERENCE.name, stack_steps(recorded), record=record,
                        spike_counts={name: np.array(c, np.int64) for name, c in counts.items()},
                        diagnostics=Diagnostics(slow_path_sums=exact.fallback_count() - before))


def _working_dtype(dtype: object) -> type:
    """``np.float32`` / ``np.float64`` from a numpy type, ``np.dtype`` or name; else SltInputError."""
    try:
        scalar = None if dtype is None else np.dtype(dtype).type  # np.dtype(None) would mean float64
    except TypeError:
        scalar = None
    if scalar not in (np.float32, np.float64):
        raise SltInputError(f"dtype must be float32 or float64 (np.float32, np.dtype or name), got {dtype!r}")
    return scalar


# ------------------------------------------------------------------ one step function per node kind
def _input(node: Input, run: _Run) -> Step:
    if run.ticket.encoding.kind == "direct":  # the same values every step: one array, so the next layer can tell
        x = encode_step(run.ticket, run.x, 0, run.coder, run.dtype)
        return lambda ins, t: x
    return lambda ins, t: encode_step(run.ticket, run.x, t, run.coder, run.dtype)


def _neuron(node: LIF | RLIF | LI, run: _Run) -> Step:
    """Membrane state of one layer; each step applies :func:`slt_deploy.numerics.neuron_step`."""
    dtype = run.dtype
    consts = NeuronConstants.of(node, lambda a: a.astype(dtype), dtype(0))
    state = {"v": np.zeros((run.batch, *node.shape), dtype), "s": np.zeros((run.batch, *node.shape), dtype)}

    def step(ins: list[np.ndarray], t: int) -> np.ndarray:
        rec = ins[1].astype(dtype) if len(ins) > 1 else None  # RLIF: recurrent current after the leak
        v, s = neuron_step(NUMPY, consts, state["v"], state["s"], ins[0].astype(dtype), rec)
        state["v"], state["s"] = v, s
        return v if consts.li else s

    return step


_CODES: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, list[exact.WeightRows]]] = weakref.WeakKeyDictionary()


def _codes_and_rows(node: Linear | Conv2d) -> tuple[np.ndarray, list[exact.WeightRows]]:
    """Dense float64 codes and the per-group :class:`exact.WeightRows`, built once per weights
    object (kept while the ticket lives): most of a small batch's time otherwise."""
    if node.weights not in _CODES:
        codes = summed_codes(node.weights)
        groups = 1 if isinstance(node, Linear) else node.groups
        og = codes.shape[0] // groups
        _CODES[node.weights] = codes, [exact.weight_rows(codes[g * og:(g + 1) * og].reshape(og, -1))
                                       for g in range(groups)]
    return _CODES[node.weights]


def _synapses(node: Linear | Conv2d, run: _Run) -> Step:
    """Exact synaptic sum rounded once to the working precision, then ``· scale + bias``.

    A static input (direct encoding: the very array of the previous step) gives the same sums:
    they are computed once per run.
    """
    dtype, (codes, rows) = run.dtype, _codes_and_rows(node)
    shape = channel_shape(2 if isinstance(node, Linear) else 4)
    scale = channel_scale(node.weights)
    scale = None if scale is None else scale.astype(dtype).reshape(shape)
    bias = None if node.bias is None else node.bias.astype(dtype).reshape(shape)
    total = _linear_sum if isinstance(node, Linear) else _conv_sum
    last: dict[str, np.ndarray] = {}

    def step(ins: list[np.ndarray], t: int) -> np.ndarray:
        if last.get("x") is ins[0]:
            return last["out"]
        out = scale_and_bias(total(node, codes, ins[0].astype(np.float64), dtype, rows), scale, bias)
        last.update(x=ins[0], out=out)
        return out

    return step


def _linear_sum(node: Linear, codes: np.ndarray, x: np.ndarray, dtype: type,
                rows: list[exact.WeightRows]) -> np.ndarray:
    """``x @ W.T`` (codes or float weights), each entry the exact sum rounded once to ``dtype``."""
    return exact.exact_matmul(x, codes, dtype, rows[0])


def _conv_sum(node: Conv2d, codes: np.ndarray, x: np.ndarray, dtype: type, rows: list[exact.WeightRows]) -> np.ndarray:
    """Cross-correlation ``(batch, C_in, H, W) -> (batch, C_out, H_out, W_out)``, exact sums rounded once."""
    sh, sw = node.stride
    if sh * sw <= 4 and all(r.spikes_exact for r in rows) and np.all((x == 0.0) | (x == 1.0)):
        return _spike_conv_sum(node, codes, x).astype(dtype)
    patches = conv_patches(x, node.kernel_size, node.stride, node.padding, node.dilation)
    batch, _, h_out, w_out = patches.shape[:4]
    c_out, c_in_g = codes.shape[:2]
    og, outs = c_out // node.groups, []
    for gi in range(node.groups):
        # rows: (b, i, j); columns: (c, ki, kj) of this group's patch
        p = patches[:, gi * c_in_g:(gi + 1) * c_in_g].transpose(0, 2, 3, 1, 4, 5).reshape(batch * h_out * w_out, -1)
        wg = codes[gi * og:(gi + 1) * og].reshape(og, -1)
        outs.append(exact.exact_matmul(p, wg, dtype, rows[gi]).reshape(batch, h_out, w_out, og).transpose(0, 3, 1, 2))
    return np.concatenate(outs, axis=1)


def _spike_conv_sum(node: Conv2d, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The float64 sums of a conv over spikes (0/1 input), tap by tap, without patches.

    Each sample's zero-padded image is laid out flat, ``F[c, b·P' + y·Wp + x]`` (``P' =
    Hp·Wp`` plus room for the largest tap offset); the tap ``(ky, kx)`` reads the same array
    shifted by ``ky·dh·Wp + kx·dw``, so the sums at every padded position of every sample are
    ``Σ_taps W[:, :, ky, kx] @ F[:, shift:]`` (one matrix product per tap and group), of which
    the positions ``(i·sh, j·sw)`` are the outputs (so the work is ``sh·sw`` times the outputs':
    :func:`_conv_sum` takes this path for strides up to ``sh·sw = 4``). Every sum is a sum of kept weights: the
    lattice certificate (``spikes_exact``) makes it exact in float64 in any order, so this
    equals the patch product entry for entry.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = node.kernel_size, node.stride, node.padding, node.dilation
    batch, c_in, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    h_out, w_out = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    tail = (kh - 1) * dh * wp + (kw - 1) * dw  # room for the largest shift
    seg = hp * wp + tail
    flat = np.zeros((c_in, batch, seg))
    flat[:, :, :hp * wp].reshape(c_in, batch, hp, wp)[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    flat = flat.reshape(c_in, batch * seg)
    cols = batch * seg - tail  # every position a shift can read from inside the array
    c_out, c_in_g = codes.shape[:2]
    og = c_out // node.groups
    sums = np.zeros((c_out, batch * seg))
    product = np.empty((og, cols))  # one buffer for every tap's product: no allocation per tap
    for gi in range(node.groups):
        for ky in range(kh):
            for kx in range(kw):
                tap = codes[gi * og:(gi + 1) * og, :, ky, kx]
                if not tap.any():
                    continue
                shift = ky * dh * wp + kx * dw
                np.matmul(tap, flat[gi * c_in_g:(gi + 1) * c_in_g, shift:shift + cols], out=product)
                sums[gi * og:(gi + 1) * og, :cols] += product
    padded = sums.reshape(c_out, batch, seg)[:, :, :hp * wp].reshape(c_out, batch, hp, wp)
    return padded[:, :, :(h_out - 1) * sh + 1:sh, :(w_out - 1) * sw + 1:sw].transpose(1, 0, 2, 3)


def _window_sum(node: SumPool2d | AvgPool2d, run: _Run) -> Step:
    """Exact window sum rounded once; AvgPool then divides by ``kH·kW`` in the working precision."""
    dtype = run.dtype
    divisor = dtype(node.kernel_size[0] * node.kernel_size[1]) if isinstance(node, AvgPool2d) else None

    def step(ins: list[np.ndarray], t: int) -> np.ndarray:
        windows = pool_windows(ins[0].astype(np.float64), node.kernel_size, node.stride, node.padding, 0.0)
        total = exact.exact_sum(windows, (-2, -1), dtype)
        return total if divisor is None else total / divisor

    return step


def _max_pool(node: MaxPool2d, run: _Run) -> Step:
    def step(ins: list[np.ndarray], t: int) -> np.ndarray:
        windows = pool_windows(ins[0].astype(run.dtype), node.kernel_size, node.stride, node.padding, -np.inf)
        return windows.max(axis=(-2, -1)).astype(run.dtype)

    return step


def _flatten(node: Flatten, run: _Run) -> Step:
    return lambda ins, t: ins[0].reshape(ins[0].shape[0], -1)


def _add(node: Add, run: _Run) -> Step:
    """Edge-order sum ``((x0 + x1) + x2) + …`` in the working precision."""

    def step(ins: list[np.ndarray], t: int) -> np.ndarray:
        total = ins[0].astype(run.dtype)
        for other in ins[1:]:
            total = total + other.astype(run.dtype)
        return total

    return step


def _view(node: Reshape | Transpose | Select, run: _Run) -> Step:
    rule = {Reshape.kind: tokens_ref.reshape, Transpose.kind: tokens_ref.transpose, Select.kind: tokens_ref.select}
    fn = rule[node.kind]
    return lambda ins, t: fn(node, ins[0])  # type: ignore[arg-type]


def _token_math(node: MatMul | Mul | Reduce, run: _Run) -> Step:
    """MatMul / Mul / Reduce in the working precision (tokens_ref: exact sums rounded once)."""
    if isinstance(node, Reduce):
        return lambda ins, t: tokens_ref.reduce(node, ins[0], run.dtype)
    fn = tokens_ref.matmul if isinstance(node, MatMul) else tokens_ref.mul
    return lambda ins, t: fn(node, ins[0], ins[1], run.dtype)  # type: ignore[arg-type]


def _output(node: Output, run: _Run) -> Step:
    return lambda ins, t: ins[0]


HANDLERS: HandlerTable[Callable[[Any, _Run], Step]] = HandlerTable("the reference simulator", {
    Input: _input, Output: _output, Linear: _synapses, Conv2d: _synapses, SumPool2d: _window_sum,
    AvgPool2d: _window_sum, MaxPool2d: _max_pool, Flatten: _flatten, Add: _add, LIF: _neuron,
    RLIF: _neuron, LI: _neuron,
    Reshape: _view, Transpose: _view, Select: _view, MatMul: _token_math, Mul: _token_math, Reduce: _token_math,
})
