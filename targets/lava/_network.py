"""Build a Lava process network from a ticket and run it on Loihi2SimCfg.

Processes: one input ``RingBuffer`` (io.source) holding the whole batch; per neuron layer a
Lava ``LIF`` (or :class:`._processes.SltLIF` where LIF cannot express the layer); per input
of a layer a ``Dense``, ``Sparse``, ``DelaySparse`` or ``Conv``; one output ``RingBuffer``
(io.sink) per recorded layer.

Batching: Lava processes have no batch axis, so a batch of B samples runs as B disjoint
copies in one network: neuron populations of B·n neurons and block-diagonal ``Sparse``
weights (``Conv`` and ``Dense`` are used when B = 1).

Timing: every connection process delays by one step (it sends the previous step's
accumulation), so a layer ``d`` connections from the input sees ticket step t at Lava step
t + 1 + d. Inputs that arrive over shorter paths (residual joins) get ``DelaySparse``
delays; recurrent inputs (ticket lag 1) need exactly the one step a connection adds. The
network runs T + D steps (D: the output layer's depth) and each layer's record is read
from its own offset. Biases are held at zero until a layer's first real step (Lava
``Var.set`` between run phases), because Loihi would otherwise integrate them during the
warm-up steps in which the input has not arrived yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slt_deploy.errors import SltInputError
from slt_deploy.fixed_point import (
    ConvSpec,
    FixedNetwork,
    Plan,
    SparseMap,
    integer_inputs,
    leaky_form,
    make_plan,
    mark_graded_input,
    package_result,
    to_fixed,
)
from slt_deploy.ir.graph import Ticket
from slt_deploy.registry import LAVA, LAVA_FLOAT
from slt_deploy.result import Diagnostics, Result, check_input, encode_step, rate_coder

from ._compat import import_lava

SYNAPSES = ("auto", "dense", "sparse")
MAX_DENSE = 1 << 20  # entries of a batch-1 weight matrix for which "auto" uses Dense


@dataclass
class _Syn:
    src: str
    W: SparseMap                 # weights as Lava gets them (fixed: already scaled for weight_exp)
    weight_exp: int
    conv: ConvSpec | None
    graded: bool
    delay: int


@dataclass
class _Layer:
    name: str
    kind: str
    size: int
    depth: int
    stock: bool                  # Lava's LIF (else SltLIF)
    params: dict[str, Any]       # neuron parameters (per neuron arrays for SltLIF)
    bias: np.ndarray             # applied from the layer's first real step
    reset: str
    synapses: list[_Syn] = field(default_factory=list)
    readout: Any = None          # fixed LI: V -> value


PROGRESS_CHUNKS = 50  # progress reports per run when a callback is given


def run_network(ticket: Ticket, x: np.ndarray, mode: str, synapse: str = "auto", record: bool = True,
                input_frac_bits: int | None = None, progress: Callable[[int, int], None] | None = None) -> Result:
    """Run ``ticket`` on Lava (``mode`` ``fixed_pt`` or ``floating_pt``); see the module docstring."""
    if synapse not in SYNAPSES:
        raise SltInputError(f"synapse must be one of {SYNAPSES}, got {synapse!r}")
    if mode == "fixed_pt":
        fixed = to_fixed(ticket, x, input_frac_bits=input_frac_bits)
        layers = _fixed_layers(fixed)
        inputs = fixed.input_values(x)
        plan = fixed.plan
        report = fixed.report
    elif mode == "floating_pt":
        plan = make_plan(ticket)
        inputs = _float_inputs(ticket, x)
        mark_graded_input(plan, ticket.encoding.kind == "direct" or not np.all((inputs == 0) | (inputs == 1)))
        layers = _float_layers(plan)
        report = {"mode": "floating_pt", "delay_steps": plan.depth}
    else:
        raise SltInputError(f"mode must be 'fixed_pt' or 'floating_pt', got {mode!r}")
    values, used_conv = _run(plan, layers, inputs, mode, synapse, record, progress)
    report = dict(report)
    report["processes"] = used_conv
    name = LAVA.name if mode == "fixed_pt" else LAVA_FLOAT.name
    return package_result(ticket, values, plan.output, record, name, Diagnostics(conversion=report))


# ------------------------------------------------------------------ layer specs
def _fixed_layers(fixed: FixedNetwork) -> list[_Layer]:
    chip = fixed.chip
    out = []
    for fl in fixed.layers:
        stock = fl.kind in ("lif", "or") and fl.reset == "zero" and fl.uniform_dv
        n = fl.size
        if stock:
            params = dict(du=chip.du_full, dv=int(fl.dv[0]), vth=int(fl.vth), bias_exp=np.full(n, chip.bias_exp))
        else:
            params = dict(du=np.full(n, chip.du_full), dv=fl.dv.copy(), vth=np.full(n, fl.vth),
                          bias_exp=np.full(n, chip.bias_exp), reset=fl.reset, reset_amount=fl.reset_amount.copy(),
                          spiking=fl.kind != "li")
        layer = _Layer(fl.name, fl.kind, n, fl.depth, stock, params, fl.bias_mant.copy(), fl.reset,
                       readout=fl.readout if fl.kind == "li" else None)
        for syn in fl.synapses:
            # Lava's Dense/Sparse keep 8-bit mixed-sign weights as even numbers 2k and shift the
            # sum by weight_exp: W = k·2^E is sent as 2k with weight_exp = E − 1 (exact: Σ 2k·x is even).
            if syn.weight_exp == 0:
                W = SparseMap(syn.W.shape, syn.W.rows, syn.W.cols, syn.W.vals * 2)
                wexp = -1
            else:
                W, wexp = syn.W, 0
            layer.synapses.append(_Syn(syn.src, W, wexp, syn.conv, syn.graded, syn.delay))
        out.append(layer)
    return out


def _float_layers(plan: Plan) -> list[_Layer]:
    """Lava's floating-point neurons run the leaky form itself: du = 1, dv = 1 − β, vth = θ, inputs scaled by g."""
    out = []
    for pl in plan.layers:
        n = pl.size
        form = leaky_form(pl)
        gain, theta = form.gain, form.theta
        dv = 1.0 - form.beta
        stock = (pl.kind in ("lif", "or") and form.reset == "zero" and bool(np.all(dv == dv[0]))
                 and bool(np.all(theta == theta[0])))
        if stock:
            params = dict(du=1.0, dv=float(dv[0]), vth=float(theta[0]), bias_exp=np.zeros(n))
        else:
            params = dict(du=np.ones(n), dv=dv, vth=theta, bias_exp=np.zeros(n), reset=form.reset,
                          reset_amount=form.reset_amount, spiking=pl.kind != "li")
        layer = _Layer(pl.name, pl.kind, n, pl.depth, stock, params, pl.bias * gain, form.reset)
        for s in pl.sources:
            W = SparseMap(s.M.shape, s.M.rows, s.M.cols, s.M.vals * gain[s.M.rows])
            conv = s.conv if s.conv is not None and bool(np.all(gain == 1)) else None
            layer.synapses.append(_Syn(s.src, W, 0, conv, s.graded, s.delay))
        out.append(layer)
    return out


def _float_inputs(ticket: Ticket, x: np.ndarray) -> np.ndarray:
    x = check_input(ticket, x)
    coder = rate_coder(ticket, x)
    batch = x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0]
    return np.stack([encode_step(ticket, x, t, coder, np.float32).astype(np.float64).reshape(batch, -1)
                     for t in range(ticket.timesteps)])


# ------------------------------------------------------------------ Lava network
def _run(plan: Plan, layers: list[_Layer], inputs: np.ndarray, mode: str, synapse: str, record: bool,
         progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    lava = import_lava()
    from ._processes import MODELS, SltLIF

    fixed = mode == "fixed_pt"
    T, batch, n_in = inputs.shape
    D = plan.depth
    steps = T + D
    data = np.zeros((batch * n_in, steps), np.int32 if fixed else np.float64)
    data[:, :T] = inputs.reshape(T, -1).T
    source = lava.Source(data=data)
    ports: dict[str, Any] = {plan.input_name: source.s_out}
    neurons: dict[str, Any] = {}
    for layer in layers:
        shape = (batch * layer.size,)
        params = {k: (np.tile(v, batch) if isinstance(v, np.ndarray) else v) for k, v in layer.params.items()}
        zero_bias = np.zeros(shape, np.int32 if fixed else np.float64)
        if layer.stock:
            proc = lava.LIF(shape=shape, bias_mant=zero_bias, name=layer.name, **params)
        else:
            proc = SltLIF(shape=shape, bias_mant=zero_bias, name=layer.name, **params)
        neurons[layer.name] = proc
        ports[layer.name] = proc.s_out
    kinds: dict[str, str] = {}
    for layer in layers:
        for i, syn in enumerate(layer.synapses):
            proc, kind = _synapse(lava, syn, batch, fixed, synapse, f"{layer.name}.syn{i}")
            kinds[f"{layer.name}<-{syn.src}"] = kind
            port = ports[syn.src]
            if kind == "Conv":
                c, h, w = syn.conv.in_shape  # type: ignore[union-attr]
                port.reshape((c, h, w)).transpose([2, 1, 0]).connect(proc.s_in)
                proc.a_out.transpose([2, 1, 0]).flatten().connect(neurons[layer.name].a_in)
            else:
                port.connect(proc.s_in)
                proc.a_out.connect(neurons[layer.name].a_in)
    sinks = {}
    for layer in layers:
        if record or layer.name == plan.output:
            sink = lava.Sink(shape=(batch * layer.size,), buffer=steps)
            ports[layer.name].connect(sink.a_in)
            sinks[layer.name] = sink
    # Lava looks the exceptions up by process *instance* (compiler_graphs.py: `proc in map`)
    own = {proc: MODELS[mode] for proc in neurons.values() if isinstance(proc, SltLIF)}
    cfg = lava.Loihi2SimCfg(select_tag=mode, exception_proc_model_map=own)
    phases = sorted({layer.depth for layer in layers if np.any(layer.bias)})
    done = 0
    try:
        for d in phases:
            if d > done:
                source.run(condition=lava.RunSteps(num_steps=d - done), run_cfg=cfg)
                done = d
            for layer in layers:
                if layer.depth == d and np.any(layer.bias):
                    bias = np.tile(layer.bias, batch)
                    neurons[layer.name].bias_mant.set(bias.astype(np.int32) if fixed else bias.astype(np.float64))
        chunk = steps - done if progress is None else max(1, -(-(steps - done) // PROGRESS_CHUNKS))
        while steps > done:  # in chunks when someone watches the progress (Lava runs them back to back)
            n = min(chunk, steps - done)
            source.run(condition=lava.RunSteps(num_steps=n), run_cfg=cfg)
            done += n
            if progress is not None:
                progress(done, steps)
        raw = {name: np.asarray(sink.data.get()) for name, sink in sinks.items()}
    finally:
        try:
            source.stop()
        except Exception:  # noqa: BLE001 - a failed run may have stopped already
            pass
    values = {}
    for layer in layers:
        if layer.name not in raw:
            continue
        arr = raw[layer.name][:, layer.depth:layer.depth + T]          # (batch·n, T)
        arr = arr.T.reshape(T, batch, layer.size).astype(np.float64)
        if layer.kind == "li" and fixed:
            arr = layer.readout(arr)
        values[layer.name] = arr
    return values, kinds


def _synapse(lava: Any, syn: _Syn, batch: int, fixed: bool, synapse: str, name: str) -> tuple[Any, str]:
    nmb = 24 if syn.graded else 0
    if syn.conv is not None and batch == 1 and synapse == "auto" and syn.delay == 0:
        conv = syn.conv
        kernel = conv.kernel[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # Lava: (C_out, kW, kH, C_in), flipped
        weight = kernel.astype(np.int32) if fixed else kernel.astype(np.float64)
        proc = lava.Conv(weight=np.ascontiguousarray(weight), input_shape=tuple(conv.in_shape[::-1]),
                         padding=tuple(conv.padding[::-1]), stride=tuple(conv.stride[::-1]),
                         dilation=tuple(conv.dilation[::-1]), groups=conv.groups, num_message_bits=nmb, name=name)
        return proc, "Conv"
    from scipy.sparse import block_diag, csr_matrix

    dtype = np.int32 if fixed else np.float64
    w = csr_matrix((syn.W.vals.astype(dtype), (syn.W.rows, syn.W.cols)), shape=syn.W.shape)
    if batch > 1:
        w = block_diag([w] * batch, format="csr")
    extra = {"weight_exp": syn.weight_exp, "num_weight_bits": 8} if fixed else {}
    if syn.delay > 0:
        delays = w.copy()
        delays = delays.astype(np.int64)
        delays.data[:] = syn.delay
        proc = lava.DelaySparse(weights=w, delays=delays, max_delay=syn.delay, num_message_bits=nmb, name=name, **extra)
        return proc, "DelaySparse"
    use_dense = synapse == "dense" or (synapse == "auto" and batch == 1 and w.shape[0] * w.shape[1] <= MAX_DENSE)
    if use_dense:
        return lava.Dense(weights=w.toarray(), num_message_bits=nmb, name=name, **extra), "Dense"
    return lava.Sparse(weights=w, num_message_bits=nmb, name=name, **extra), "Sparse"


__all__ = ["run_network", "integer_inputs"]
