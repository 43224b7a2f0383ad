"""ONNX exporter: the whole T-step network as one ONNX model, spike for spike equal to the reference.

The model (opset 18, IR version 8) takes the per-step input and returns the output node's
values of every step, ``(T, batch, *out)``, with a symbolic ``batch`` dimension::

    input   direct encoding:       (batch, *in)      float32, fed unchanged at every step
            rate / spikes:         (T, batch, *in)   float32, the encoded input of each step
    output  (T, batch, *out)       float32 (0/1 spikes, or the LI membrane for a readout)
    rec_*   (T, batch, *shape)     per-node values (neuron layers by default), for spike counts

Rate coding draws from numpy's ``Generator(PCG64(seed))`` (docs/semantics.md), which ONNX
cannot express, so the caller encodes: :func:`slt_deploy.targets.onnxruntime.run_onnx_file`
does it from the seed stored in the model's metadata.

Exactness (the rounding contract of docs/semantics.md), operation by operation:

- Binary / int8 layers whose input is known to be integer-valued (spikes, rate-coded input,
  sums/maxima of those) with ``Σ|code|·max|x| < 2^24`` compute ``n = x @ codes`` in float32:
  every partial sum is an integer below 2^24, so the sum is exact in any order. Otherwise
  (analog input, float weights) the sum runs in float64 (``Cast`` → ``MatMul`` → ``Cast``),
  as the reference does. ONNX Runtime has no float64 ``Conv``, so a float64 convolution is
  an explicit im2col (``Pad``, strided ``Slice`` per kernel tap, ``MatMul``).
- Then ``Mul`` by the per-channel scale (binary/int8) and ``Add`` the bias, in float32.
- Sum/Avg pools: exact window sums (a float32 ones-kernel ``Conv`` for integer input, else a
  float64 sum of strided slices in row-major tap order), rounded once, ``Div`` by kH·kW.
  ``MaxPool`` is native. ``Add`` nodes sum in edge order in float32.
- Neuron updates: one ONNX op per floating-point operation of ``slt_deploy.ir.neurons``.
  Run it with graph optimizations disabled (the ONNX Runtime target does): level-1 fusions
  such as ``ConvMulFusion`` fold the scale into the weights and change rounding.
- Nodes whose inputs do not change over time (a directly encoded input and the stateless
  layers fed only by it) are computed once, before the time loop: the same operations on
  the same values, so the same result, T times cheaper.

Weights are stored compactly, per layer the smallest of: ``dense`` (int8 codes; float32 for
float weights), ``bitmask`` (packed keep-mask bits + the kept values: packed sign bits for
binary, int8 or float32 otherwise) or ``index`` (gaps between kept positions as uint8 or
uint16 with an escape code for longer gaps, + the kept values). A small decode subgraph
(``BitShift``/``BitwiseAnd`` unpacking, ``CumSum`` + ``Gather`` / ``Compress`` +
``ScatterElements``) rebuilds the dense code tensor; it depends only on initializers, so a
runtime computes it once (the ONNX Runtime target folds it at load).
ONNX ``sparse_initializer`` is not used: onnx's checker with ``full_check=True`` rejects
sparse initializers consumed by ordinary operators.

Two graph layouts: ``loop`` (the default: one ONNX ``Loop`` whose body is one step, states
loop-carried, per-step outputs as scan outputs; constant size in T) and ``unrolled`` (T
copies of the step sharing the weights, for runtimes without ``Loop``). Measured on a
784-1024-1024-10 MLP they run equally fast in ONNX Runtime; the loop builds and loads
several times faster and does not grow with T (docs/targets-onnx.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SltError, SltUnsupportedError
from ..ir.graph import Ticket
from ..ir.neurons import LI, LIF
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from ..ir.weights import FloatWeights, Weights

OPSET = 18
IR_VERSION = 8
FORMAT_TAG = "slt-deploy-onnx/1"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
MODES = ("loop", "unrolled")
WEIGHT_STORAGE = ("auto", "dense", "bitmask", "index", "float32")
RECORDS = ("output", "neurons", "all")
MAX_MODEL_BYTES = 2**31 - 1  # protobuf's hard limit for one serialized message
EXACT_F32_SUM = 2**24  # integers below this are exact in float32, in any summation order

META = {
    "format": "slt_deploy.format",
    "timesteps": "slt_deploy.timesteps",
    "encoding": "slt_deploy.encoding",
    "seed": "slt_deploy.seed",
    "input_shape": "slt_deploy.input_shape",
    "output_shape": "slt_deploy.output_shape",
    "input_node": "slt_deploy.input_node",
    "output_node": "slt_deploy.output_node",
    "output_spiking": "slt_deploy.output_spiking",
    "records": "slt_deploy.records",
    "sha256": "slt_deploy.sha256",
}

_NEEDS_ONNX = "ONNX export needs the onnx package: pip install 'slt-deploy[onnx]'"


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise SltError(_NEEDS_ONNX) from None
    return onnx


# --------------------------------------------------------------------- public API
def export_onnx(ticket: Ticket, path: str | os.PathLike[str], mode: str = "loop", weights: str = "auto",
                record: str = "neurons") -> dict[str, Any]:
    """Write ``ticket`` as an ONNX model to ``path`` (atomically); returns a report dict.

    ``mode``: ``loop`` (one ONNX Loop, the default) or ``unrolled`` (T copies of the step).
    ``weights``: ``auto`` (smallest per layer), ``dense``, ``bitmask``, ``index``, or
    ``float32`` (dense fp32, the uncompressed baseline).
    ``record``: extra outputs, ``neurons`` (every neuron layer: spike counts), ``all`` (every
    node) or ``output`` (none). The model passes ``onnx.checker.check_model(full_check=True)``.
    """
    from ..atomic import atomic_write_bytes

    onnx = _import_onnx()
    built = build_model(ticket, mode=mode, weights=weights, record=record)
    data = built.model.SerializeToString()
    atomic_write_bytes(path, data)
    stored = sum(layer["bytes"] for layer in built.layers)
    dense_w = sum(layer["dense_fp32_bytes"] for layer in built.layers)
    # The same file with every layer stored as dense fp32 codes (weights="float32" builds it;
    # the estimate is within 0.1% and costs nothing for big tickets).
    dense_bytes = len(data) - stored + dense_w
    return {
        "format": "onnx",
        "path": os.fspath(path),
        "opset": OPSET,
        "ir_version": IR_VERSION,
        "onnx_version": onnx.__version__,
        "mode": built.mode,
        "weights": weights,
        "record": record,
        "timesteps": ticket.timesteps,
        "input": {"name": INPUT_NAME, "shape": built.input_dims, "encoding": ticket.encoding.kind,
                  "seed": ticket.encoding.seed,
                  "note": _INPUT_NOTES[ticket.encoding.kind]},
        "output": {"name": OUTPUT_NAME, "shape": built.output_dims, "spiking": ticket.output_is_spiking},
        "records": built.records,
        "nodes": _count_nodes(built.model.graph),
        "file_bytes": len(data),
        "dense_fp32_file_bytes": dense_bytes,
        "ratio_vs_dense_fp32": (dense_bytes / len(data)) if data else None,
        "weight_bytes": stored,
        "dense_fp32_weight_bytes": dense_w,
        "weight_ratio_vs_dense_fp32": (dense_w / stored) if stored else None,
        "layers": built.layers,
        "checked": "onnx.checker.check_model(full_check=True) passed",
        "runtime_note": "run with graph optimizations disabled (ORT_DISABLE_ALL) for exact float32 rounding",
    }


_INPUT_NOTES = {
    "direct": "float32 (batch, *in), fed unchanged at every step",
    "rate": "float32 (T, batch, *in) spikes: encode with u_t = Generator(PCG64(seed)).random(x.shape), x_t = u_t < x",
    "spikes": "float32 (T, batch, *in): the ticket's spike trains",
}


@dataclass
class BuiltModel:
    """An ONNX model plus what the exporter knows about it."""

    model: Any
    mode: str
    input_dims: list[Any]
    output_dims: list[Any]
    records: list[dict[str, Any]]
    layers: list[dict[str, Any]]


def build_model(ticket: Ticket, mode: str = "loop", weights: str = "auto", record: str = "neurons",
                check: bool = True) -> BuiltModel:
    """Build (and by default check with ``full_check=True``) the ONNX model of ``ticket``."""
    onnx = _import_onnx()
    if mode not in MODES:
        raise SltError(f"ONNX mode must be one of {', '.join(MODES)}, got {mode!r}")
    if weights not in WEIGHT_STORAGE:
        raise SltError(f"ONNX weight storage must be one of {', '.join(WEIGHT_STORAGE)}, got {weights!r}")
    if record not in RECORDS:
        raise SltError(f"ONNX record must be one of {', '.join(RECORDS)}, got {record!r}")
    builder = _ModelBuilder(onnx, ticket, mode, weights, record)
    model = builder.build()
    size = model.ByteSize()
    if size > MAX_MODEL_BYTES:
        raise SltUnsupportedError(
            f"the ONNX model would be {size:,} bytes, over protobuf's 2 GiB limit; "
            "use weights='auto' or a smaller ticket"
        )
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:  # noqa: BLE001 - a failure here is a bug in this exporter
            raise SltError(f"internal error: exported ONNX model fails the checker: {_one_line(exc)}") from None
    return BuiltModel(model, mode, builder.input_dims, builder.output_dims, builder.record_info, builder.layer_info)


def _count_nodes(graph: Any) -> int:
    """Nodes of a graph including those of its subgraphs (the Loop body)."""
    total = 0
    for node in graph.node:
        total += 1
        for attr in node.attribute:
            if attr.HasField("g"):
                total += _count_nodes(attr.g)
            for sub in attr.graphs:
                total += _count_nodes(sub)
    return total


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


# --------------------------------------------------------------------- graph building
class _Graph:
    """Nodes and initializers of one ONNX graph; names come from a counter shared with subgraphs."""

    def __init__(self, onnx: Any, counter: list[int]) -> None:
        self.onnx = onnx
        self.counter = counter
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def fresh(self, hint: str) -> str:
        self.counter[0] += 1
        return f"{hint}_{self.counter[0]}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, name=self.fresh("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def named_op(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        node = self.onnx.helper.make_node(op_type, inputs, outputs, name=self.fresh("n_" + op_type), **attrs)
        self.nodes.append(node)

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    def i64(self, values: list[int] | tuple[int, ...], hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint)

    def scalar(self, value: float, dtype: type, hint: str = "c") -> str:
        return self.const(np.asarray(value, dtype=dtype), hint)


def _ident(text: str) -> str:
    """A C-identifier fragment of a node name (ONNX names should be C90 identifiers)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return s if s and not s[0].isdigit() else f"_{s}"


@dataclass
class _State:
    """Names of a neuron layer's state tensors at one step."""

    v: str
    s: str | None = None


@dataclass
class _Plan:
    """Static facts per node: integer bound of its values, time invariance, exact path."""

    bound: dict[str, float | None] = field(default_factory=dict)
    invariant: dict[str, bool] = field(default_factory=dict)


class _ModelBuilder:
    def __init__(self, onnx: Any, ticket: Ticket, mode: str, weights: str, record: str) -> None:
        self.onnx = onnx
        self.ticket = ticket
        self.mode = mode
        self.weights = weights
        self.record = record
        self.counter = [0]
        self.outer = _Graph(onnx, self.counter)
        self.nodes = {n.name: n for n in ticket.nodes}
        self.incoming = {name: ticket.inputs_of(name) for name in ticket.order}
        self.plan = self._plan()
        self.per_step_input = ticket.encoding.kind != "direct"
        self.layer_info: list[dict[str, Any]] = []
        self.record_info: list[dict[str, Any]] = []
        self.decoded: dict[tuple[str, str], str] = {}  # (node, dtype/layout) -> dense code tensor
        self.invariant_values: dict[str, str] = {}
        self.consts: dict[tuple[str, str], str] = {}
        T, inp = ticket.timesteps, list(ticket.input_shape)
        self.input_dims: list[Any] = ([T, "batch"] if self.per_step_input else ["batch"]) + inp
        self.output_dims: list[Any] = [T, "batch", *ticket.output_shape]
        self.recorded = self._recorded_nodes()

    # ---------------------------------------------------------------- analysis
    def _plan(self) -> _Plan:
        """Integer bounds (max |value| of an integer-valued tensor, else None) and time invariance."""
        plan = _Plan()
        enc = self.ticket.encoding.kind
        for name in self.ticket.order:
            node = self.nodes[name]
            ins = self.incoming[name]
            in_bounds = [self._source_bound(plan, e) for e in ins]
            in_inv = [not e.recurrent and plan.invariant[e.src] for e in ins]
            if isinstance(node, Input):
                plan.bound[name] = 1.0 if enc == "rate" else None
                plan.invariant[name] = enc == "direct"
                continue
            plan.invariant[name] = not isinstance(node, (LIF, LI)) and all(in_inv)
            b = in_bounds[0] if in_bounds else None
            if isinstance(node, LIF):
                plan.bound[name] = 1.0
            elif isinstance(node, (LI, Linear, Conv2d, AvgPool2d)):
                plan.bound[name] = None
            elif isinstance(node, SumPool2d):
                plan.bound[name] = None if b is None else b * node.kernel_size[0] * node.kernel_size[1]
            elif isinstance(node, (MaxPool2d, Flatten, Output)):
                plan.bound[name] = b
            elif isinstance(node, Add):
                plan.bound[name] = None if any(x is None for x in in_bounds) else float(sum(in_bounds))  # type: ignore[arg-type]
            else:
                raise SltUnsupportedError(f"ONNX exporter has no rule for node '{name}' ({node.kind})")
        return plan

    def _source_bound(self, plan: _Plan, edge: Any) -> float | None:
        if edge.recurrent:
            return 1.0 if isinstance(self.nodes[edge.src], LIF) else None
        return plan.bound[edge.src]

    def _exact_f32(self, node: Linear | Conv2d) -> bool:
        """True when the float32 sum of integer codes times integer inputs is exact."""
        w = node.weights
        bound = self.plan.bound[self.incoming[node.name][0].src]
        if isinstance(w, FloatWeights) or bound is None:
            return False
        rows = np.abs(w.integer_values().astype(np.int64)).reshape(w.mask.shape[0], -1).sum(axis=1)
        return float(rows.max(initial=0)) * bound < EXACT_F32_SUM

    def _recorded_nodes(self) -> list[str]:
        if self.record == "output":
            return []
        keep = []
        for name in self.ticket.order:
            node = self.nodes[name]
            if isinstance(node, (Input, Output)):
                continue
            if self.record == "all" or isinstance(node, (LIF, LI)):
                keep.append(name)
        return keep

    # ---------------------------------------------------------------- model
    def build(self) -> Any:
        onnx = self.onnx
        helper, TP = onnx.helper, onnx.TensorProto
        g = self.outer
        T = self.ticket.timesteps
        batch_axis = 1 if self.per_step_input else 0
        self.batch = g.op("Shape", [INPUT_NAME], "batch", start=batch_axis, end=batch_axis + 1)
        neurons = [n for n in self.ticket.order if isinstance(self.nodes[n], (LIF, LI))]
        needs_s = self._needs_spike_state()
        init_state = {}
        for name in neurons:
            node = self.nodes[name]
            zeros = self._zeros(g, node.shape, f"v0_{_ident(name)}")
            init_state[name] = _State(zeros, zeros if name in needs_s else None)

        stacked_names = [self._out_name(n) for n in self.recorded]
        if self.mode == "unrolled":
            per_step: dict[str, list[str]] = {n: [] for n in [OUTPUT_NAME, *self.recorded]}
            state = init_state
            for t in range(T):
                x_t = INPUT_NAME if not self.per_step_input else g.op(
                    "Gather", [INPUT_NAME, g.scalar(t, np.int64, "t")], "x_t", axis=0)
                values, state = self._step(g, x_t, state)
                per_step[OUTPUT_NAME].append(values[self.ticket.output.name])
                for n in self.recorded:
                    per_step[n].append(values[n])
            axes = g.i64([0], "axes")
            for key, out in zip([OUTPUT_NAME, *self.recorded], [OUTPUT_NAME, *stacked_names], strict=True):
                parts = [g.op("Unsqueeze", [v, axes], "u") for v in per_step[key]]
                if len(parts) == 1:
                    g.named_op("Identity", parts, [out])
                else:
                    g.named_op("Concat", parts, [out], axis=0)
        else:
            self._build_loop(g, init_state, neurons, needs_s, stacked_names)

        out_shapes = {OUTPUT_NAME: self.output_dims}
        for n, out in zip(self.recorded, stacked_names, strict=True):
            out_shapes[out] = [T, "batch", *self.ticket.shapes[n]]
            self.record_info.append({"output": out, "node": n, "kind": self.nodes[n].kind,
                                     "shape": list(self.ticket.shapes[n])})
        graph = helper.make_graph(
            g.nodes, f"slt_{_ident(self.ticket.output.name)}",
            [helper.make_tensor_value_info(INPUT_NAME, TP.FLOAT, self.input_dims)],
            [helper.make_tensor_value_info(k, TP.FLOAT, v) for k, v in out_shapes.items()],
            initializer=g.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                  producer_name="slt-deploy", producer_version=_version(),
                                  doc_string=_doc(self.ticket))
        meta = {
            META["format"]: FORMAT_TAG,
            META["timesteps"]: str(T),
            META["encoding"]: self.ticket.encoding.kind,
            META["seed"]: "" if self.ticket.encoding.seed is None else str(int(self.ticket.encoding.seed)),
            META["input_shape"]: json.dumps(list(self.ticket.input_shape)),
            META["output_shape"]: json.dumps(list(self.ticket.output_shape)),
            META["input_node"]: self.ticket.input.name,
            META["output_node"]: self.ticket.output.name,
            META["output_spiking"]: "1" if self.ticket.output_is_spiking else "0",
            META["records"]: json.dumps(self.record_info),
        }
        helper.set_model_props(model, meta)
        digest = model_digest(model)
        entry = model.metadata_props.add()
        entry.key, entry.value = META["sha256"], digest
        return model

    def _out_name(self, node: str) -> str:
        return f"rec_{self.ticket.order.index(node)}_{_ident(node)}"

    def _needs_spike_state(self) -> set[str]:
        """LIF layers whose previous spikes are needed: subtract_delayed, or a recurrent edge's source."""
        need = {n.name for n in self.ticket.nodes if isinstance(n, LIF) and n.reset == "subtract_delayed"}
        need |= {e.src for e in self.ticket.edges if e.recurrent and isinstance(self.nodes[e.src], LIF)}
        return need

    def _zeros(self, g: _Graph, shape: tuple[int, ...], hint: str) -> str:
        full = g.op("Concat", [self.batch, g.i64(list(shape))], "zshape", axis=0)
        value = self.onnx.helper.make_tensor("zero", self.onnx.TensorProto.FLOAT, [1], [0.0])
        return g.op("ConstantOfShape", [full], hint, value=value)

    def _build_loop(self, g: _Graph, init_state: dict[str, _State], neurons: list[str], needs_s: set[str],
                    stacked_names: list[str]) -> None:
        helper, TP = self.onnx.helper, self.onnx.TensorProto
        body = _Graph(self.onnx, self.counter)
        it, cond_in = body.fresh("iter"), body.fresh("cond_in")
        carried = []  # (neuron, "v"/"s", body input name, outer init)
        state: dict[str, _State] = {}
        for name in neurons:
            shape = ["batch", *self.nodes[name].shape]
            v_in = body.fresh(f"v_{_ident(name)}")
            carried.append((name, "v", v_in, init_state[name].v, shape))
            s_in = None
            if name in needs_s:
                s_in = body.fresh(f"s_{_ident(name)}")
                carried.append((name, "s", s_in, init_state[name].s, shape))
            state[name] = _State(v_in, s_in)
        x_t = INPUT_NAME if not self.per_step_input else body.op("Gather", [INPUT_NAME, it], "x_t", axis=0)
        values, new_state = self._step(body, x_t, state)
        cond_out = body.op("Identity", [cond_in], "cond_out")
        outs = [cond_out]
        for name, which, _, _, _ in carried:
            outs.append(body.op("Identity", [getattr(new_state[name], which)], f"{which}_next"))
        scans = [self.ticket.output.name, *self.recorded]
        for n in scans:
            outs.append(body.op("Identity", [values[n]], "scan"))
        scan_shapes = [["batch", *self.ticket.shapes[n]] for n in scans]
        b_inputs = [helper.make_tensor_value_info(it, TP.INT64, []),
                    helper.make_tensor_value_info(cond_in, TP.BOOL, [])]
        b_inputs += [helper.make_tensor_value_info(c[2], TP.FLOAT, c[4]) for c in carried]
        b_outputs = [helper.make_tensor_value_info(cond_out, TP.BOOL, [])]
        b_outputs += [helper.make_tensor_value_info(o, TP.FLOAT, c[4]) for o, c in zip(outs[1:], carried, strict=False)]
        b_outputs += [helper.make_tensor_value_info(o, TP.FLOAT, s) for o, s in
                      zip(outs[1 + len(carried):], scan_shapes, strict=True)]
        body_graph = helper.make_graph(body.nodes, "step", b_inputs, b_outputs, initializer=body.inits)
        trip = g.scalar(self.ticket.timesteps, np.int64, "T")
        cond = g.const(np.asarray(True), "cond")
        finals = [g.fresh("final") for _ in carried]
        g.named_op("Loop", [trip, cond, *[c[3] for c in carried]], [*finals, OUTPUT_NAME, *stacked_names],
                   body=body_graph)

    # ---------------------------------------------------------------- one step
    def _step(self, g: _Graph, x_t: str, state: dict[str, _State]) -> tuple[dict[str, str], dict[str, _State]]:
        values: dict[str, str] = {}
        new_state: dict[str, _State] = {}
        for name in self.ticket.order:
            node = self.nodes[name]
            if isinstance(node, Input):
                values[name] = x_t
                continue
            if self.plan.invariant[name]:
                if name not in self.invariant_values:
                    ins = [values[e.src] for e in self.incoming[name]]
                    self.invariant_values[name] = self._stateless(self.outer, node, ins)
                values[name] = self.invariant_values[name]
                continue
            ins = []
            for e in self.incoming[name]:
                if e.recurrent:
                    src = self.nodes[e.src]
                    st = state[e.src]
                    ins.append(st.s if isinstance(src, LIF) else st.v)  # type: ignore[arg-type]
                else:
                    ins.append(values[e.src])
            if isinstance(node, (LIF, LI)):
                values[name], new_state[name] = self._neuron(g, node, ins[0], state[name])
            else:
                values[name] = self._stateless(g, node, ins)
        return values, new_state

    def _param(self, g: _Graph, node: Node, what: str, array: np.ndarray) -> str:
        """A float32 neuron parameter, stored as a scalar when all values are equal."""
        key = (node.name, what)
        if key not in self.consts:
            a = np.asarray(array, np.float32)
            if a.size and np.all(a.view(np.uint32) == a.reshape(-1)[:1].view(np.uint32)):
                a = a.reshape(-1)[0]
            self.consts[key] = self.outer.const(np.asarray(a, np.float32), f"{_ident(node.name)}_{what}")
        return self.consts[key]

    def _neuron(self, g: _Graph, node: LIF | LI, u: str, st: _State) -> tuple[str, _State]:
        cur = u if node.bias is None else g.op("Add", [u, self._param(g, node, "bias", node.bias)], "I")
        v_prev = st.v
        if isinstance(node, LI) or node.charge == "leaky":
            v = g.op("Add", [g.op("Mul", [self._param(g, node, "beta", node.beta), v_prev], "bv"), cur], "v")
        elif node.charge == "decay_input":
            tau = self._param(g, node, "tau", node.tau)  # type: ignore[arg-type]
            v = g.op("Add", [v_prev, g.op("Div", [g.op("Sub", [cur, v_prev], "d"), tau], "dt")], "v")
        else:  # leaky_tau
            tau = self._param(g, node, "tau", node.tau)  # type: ignore[arg-type]
            v = g.op("Add", [g.op("Sub", [v_prev, g.op("Div", [v_prev, tau], "vt")], "dv"), cur], "v")
        if isinstance(node, LI):
            return v, _State(v)
        r = None
        if node.reset in ("subtract", "subtract_delayed"):
            r = self._param(g, node, "reset", node.reset_amount)  # type: ignore[arg-type]
        if node.reset == "subtract_delayed":
            v = g.op("Sub", [v, g.op("Mul", [r, st.s], "rs")], "v")  # type: ignore[list-item]
        fired = g.op("Greater", [v, self._param(g, node, "threshold", node.threshold)], "fired")
        s = g.op("Cast", [fired], "s", to=self.onnx.TensorProto.FLOAT)
        if node.reset == "zero":
            v = g.op("Where", [fired, self._zero_f32(), v], "v")
        elif node.reset == "subtract":
            v = g.op("Sub", [v, g.op("Mul", [r, s], "rs")], "v")  # type: ignore[list-item]
        return s, _State(v, s)

    def _zero_f32(self) -> str:
        key = ("", "zero_f32")
        if key not in self.consts:
            self.consts[key] = self.outer.scalar(0.0, np.float32, "zero")
        return self.consts[key]

    def _stateless(self, g: _Graph, node: Node, ins: list[str]) -> str:
        if isinstance(node, Linear):
            return self._linear(g, node, ins[0])
        if isinstance(node, Conv2d):
            return self._conv(g, node, ins[0])
        if isinstance(node, (SumPool2d, AvgPool2d)):
            total = self._window_sum(g, node, ins[0])
            if isinstance(node, AvgPool2d):
                k = node.kernel_size[0] * node.kernel_size[1]
                return g.op("Div", [total, self.outer.scalar(k, np.float32, "k")], "avg")
            return total
        if isinstance(node, MaxPool2d):
            (ph, pw), (sh, sw), (kh, kw) = node.padding, node.stride, node.kernel_size
            return g.op("MaxPool", [ins[0]], "maxpool", kernel_shape=[kh, kw], pads=[ph, pw, ph, pw],
                        strides=[sh, sw])
        if isinstance(node, Flatten):
            return g.op("Flatten", [ins[0]], "flat", axis=1)
        if isinstance(node, Add):
            total = ins[0]
            for other in ins[1:]:
                total = g.op("Add", [total, other], "sum")
            return total
        if isinstance(node, Output):
            return g.op("Identity", [ins[0]], "out")
        raise SltUnsupportedError(f"ONNX exporter has no rule for node '{node.name}' ({node.kind})")

    # ---------------------------------------------------------------- synapses
    def _finish(self, g: _Graph, node: Linear | Conv2d, n: str, channel_shape: tuple[int, ...]) -> str:
        """float32(n) · scale (binary/int8), then + bias, each one float32 op."""
        w = node.weights
        out = n
        if not isinstance(w, FloatWeights):
            scale = np.asarray(w.channel_scale(), np.float32)
            scale = scale[:1].reshape(()) if np.all(scale.view(np.uint32) == scale[:1].view(np.uint32)) \
                else scale.reshape(channel_shape)
            out = g.op("Mul", [out, self._cached_const(node, "scale", scale)], "scaled")
        if node.bias is not None:
            out = g.op("Add", [out, self._cached_const(node, "bias", node.bias.reshape(channel_shape))], "biased")
        return out

    def _cached_const(self, node: Node, what: str, array: np.ndarray) -> str:
        key = (node.name, what)
        if key not in self.consts:
            self.consts[key] = self.outer.const(np.asarray(array), f"{_ident(node.name)}_{what}")
        return self.consts[key]

    def _linear(self, g: _Graph, node: Linear, x: str) -> str:
        TP = self.onnx.TensorProto
        codes = _codes(node.weights).T  # (in, out)
        exact = self._exact_f32(node)
        w = self._decoded(node, codes, np.float32 if exact else np.float64, "linear", exact)
        if exact:
            n = g.op("MatMul", [x, w], "n")
        else:
            xd = g.op("Cast", [x], "xd", to=TP.DOUBLE)
            n = g.op("Cast", [g.op("MatMul", [xd, w], "nd")], "n", to=TP.FLOAT)
        return self._finish(g, node, n, (node.out_features,))

    def _conv(self, g: _Graph, node: Conv2d, x: str) -> str:
        TP = self.onnx.TensorProto
        exact = self._exact_f32(node)
        codes = _codes(node.weights)  # (C_out, C_in/g, kh, kw)
        c_out, c_in_g, kh, kw = codes.shape
        (ph, pw), (sh, sw), (dh, dw), groups = node.padding, node.stride, node.dilation, node.groups
        c_shape = (c_out, 1, 1)
        if exact:
            w = self._decoded(node, codes, np.float32, "conv", True)
            n = g.op("Conv", [x, w], "n", kernel_shape=[kh, kw], pads=[ph, pw, ph, pw], strides=[sh, sw],
                     dilations=[dh, dw], group=groups)
            return self._finish(g, node, n, c_shape)
        # float64 im2col: (B, taps, C, Ho, Wo) -> (B, G, C_in_g·taps, Ho·Wo), then one batched MatMul.
        _, ho, wo = self.ticket.shapes[node.name]
        wmat = codes.reshape(groups, c_out // groups, c_in_g * kh * kw)
        w = self._decoded(node, wmat, np.float64, "conv-im2col", False)
        xd = self._padded_double(g, x, ph, pw)
        taps = []
        axes = self.outer.i64([2, 3], "axes")
        steps = self.outer.i64([sh, sw], "steps")
        unsq = self.outer.i64([1], "axes")
        for ki in range(kh):
            for kj in range(kw):
                starts = self.outer.i64([ki * dh, kj * dw], "starts")
                ends = self.outer.i64([ki * dh + (ho - 1) * sh + 1, kj * dw + (wo - 1) * sw + 1], "ends")
                tap = g.op("Slice", [xd, starts, ends, axes, steps], "tap")
                taps.append(g.op("Unsqueeze", [tap, unsq], "tap"))
        cols = taps[0] if len(taps) == 1 else g.op("Concat", taps, "cols", axis=1)
        cols = g.op("Reshape", [cols, self.outer.i64([0, kh * kw, groups, c_in_g, ho * wo])], "cols")
        cols = g.op("Transpose", [cols], "cols", perm=[0, 2, 3, 1, 4])
        cols = g.op("Reshape", [cols, self.outer.i64([0, groups, c_in_g * kh * kw, ho * wo])], "cols")
        nd = g.op("MatMul", [w, cols], "nd")  # (B, G, C_out/G, Ho·Wo)
        nd = g.op("Reshape", [nd, self.outer.i64([0, c_out, ho, wo])], "nd")
        return self._finish(g, node, g.op("Cast", [nd], "n", to=TP.FLOAT), c_shape)

    def _padded_double(self, g: _Graph, x: str, ph: int, pw: int) -> str:
        xd = g.op("Cast", [x], "xd", to=self.onnx.TensorProto.DOUBLE)
        if ph or pw:
            xd = g.op("Pad", [xd, self.outer.i64([0, 0, ph, pw, 0, 0, ph, pw], "pads")], "xpad", mode="constant")
        return xd

    def _window_sum(self, g: _Graph, node: SumPool2d | AvgPool2d, x: str) -> str:
        """Exact window sum rounded once to float32."""
        (ph, pw), (sh, sw), (kh, kw) = node.padding, node.stride, node.kernel_size
        src = self.incoming[node.name][0].src
        bound = self.plan.bound[src]
        c, _, _ = self.ticket.shapes[src]
        if bound is not None and bound * kh * kw < EXACT_F32_SUM:
            ones = self._cached_const(node, "ones", np.ones((c, 1, kh, kw), np.float32))
            return g.op("Conv", [x, ones], "wsum", kernel_shape=[kh, kw], pads=[ph, pw, ph, pw],
                        strides=[sh, sw], group=c)
        _, ho, wo = self.ticket.shapes[node.name]
        xd = self._padded_double(g, x, ph, pw)
        axes = self.outer.i64([2, 3], "axes")
        steps = self.outer.i64([sh, sw], "steps")
        total = None
        for ki in range(kh):  # row-major tap order, sequential float64 sum (as numpy's window sum)
            for kj in range(kw):
                starts = self.outer.i64([ki, kj], "starts")
                ends = self.outer.i64([ki + (ho - 1) * sh + 1, kj + (wo - 1) * sw + 1], "ends")
                tap = g.op("Slice", [xd, starts, ends, axes, steps], "tap")
                total = tap if total is None else g.op("Add", [total, tap], "wsum")
        return g.op("Cast", [total], "wsum", to=self.onnx.TensorProto.FLOAT)  # type: ignore[list-item]

    # ---------------------------------------------------------------- compact weights
    def _decoded(self, node: Linear | Conv2d, codes: np.ndarray, dtype: type, layout: str, exact: bool) -> str:
        """The dense code tensor in ``dtype``, decoded from the compact initializers (once per layer)."""
        key = (node.name, layout + np.dtype(dtype).name)
        if key in self.decoded:
            return self.decoded[key]
        g = self.outer
        w = node.weights
        choice, tensors, nnz = _encode(codes, w.kind, self.weights)
        dense_fp32 = 4 * codes.size
        stored = sum(int(t.nbytes) for t in tensors.values())
        TP = self.onnx.TensorProto
        onnx_dtype = TP.FLOAT if dtype == np.float32 else TP.DOUBLE
        hint = _ident(node.name)
        names = {k: g.const(v, f"{hint}_{k}") for k, v in tensors.items()}
        n = codes.size
        if choice == "zero":
            value = self.onnx.helper.make_tensor("zero", onnx_dtype, [1], [0.0])
            flat = g.op("ConstantOfShape", [g.i64([n])], f"{hint}_w", value=value)
        elif choice in ("dense", "float32"):
            flat = g.op("Cast", [names["codes"]], f"{hint}_w", to=onnx_dtype)
        else:
            kept = self._kept_values(g, names, w.kind, nnz, onnx_dtype, dtype, hint)
            if choice == "bitmask":
                mask = self._unpack_bits(g, names["mask_bits"], n, hint)
                idx = g.op("CumSum", [g.op("Cast", [mask], "mi", to=TP.INT64), g.scalar(0, np.int64, "axis")], "idx")
                idx = g.op("Sub", [idx, g.i64([1], "one")], "idx")
                idx = g.op("Max", [idx, g.i64([0], "zero")], "idx")
                gathered = g.op("Gather", [kept, idx], "vals", axis=0)
                zero = g.const(np.zeros(1, dtype), "zero")
                flat = g.op("Where", [mask, gathered, zero], f"{hint}_w")
            else:  # index: gaps (with escapes) -> positions -> scatter
                escape = int(np.iinfo(tensors["gaps"].dtype).max)
                gaps = g.op("Cast", [names["gaps"]], "gaps", to=TP.INT64)
                esc = g.i64([escape], "escape")
                real = g.op("Not", [g.op("Equal", [gaps, esc], "is_escape")], "is_real")
                advance = g.op("Min", [g.op("Add", [gaps, g.i64([1], "one")], "adv"), esc], "adv")
                pos = g.op("CumSum", [advance, g.scalar(0, np.int64, "axis")], "pos")
                pos = g.op("Sub", [pos, g.i64([1], "one")], "pos")
                pos = g.op("Compress", [pos, real], "pos", axis=0)
                value = self.onnx.helper.make_tensor("zero", onnx_dtype, [1], [0.0])
                zeros = g.op("ConstantOfShape", [g.i64([n])], "zeros", value=value)
                flat = g.op("ScatterElements", [zeros, pos, kept], f"{hint}_w", axis=0)
        dense = g.op("Reshape", [flat, g.i64(list(codes.shape))], f"{hint}_w")
        self.decoded[key] = dense
        if not any(row["name"] == node.name for row in self.layer_info):
            self.layer_info.append({
                "name": node.name, "kind": node.kind, "weights": w.kind, "shape": list(w.mask.shape),
                "density": float(w.mask.mean()) if w.mask.size else 0.0, "storage": choice, "bytes": stored,
                "dense_fp32_bytes": dense_fp32, "ratio_vs_dense_fp32": (dense_fp32 / stored) if stored else None,
                "sum": "float32 (exact integer sums)" if exact else "float64",
            })
        return dense

    def _kept_values(self, g: _Graph, names: dict[str, str], kind: str, nnz: int, onnx_dtype: int, dtype: type,
                     hint: str) -> str:
        if kind == "binary":
            neg = self._unpack_bits(g, names["sign_bits"], nnz, hint)
            plus, minus = g.const(np.ones(1, dtype), "plus"), g.const(-np.ones(1, dtype), "minus")
            return g.op("Where", [neg, minus, plus], f"{hint}_kept")
        return g.op("Cast", [names["values"]], f"{hint}_kept", to=onnx_dtype)

    def _unpack_bits(self, g: _Graph, packed: str, n: int, hint: str) -> str:
        """Little-endian bit order within each byte (np.packbits(..., bitorder='little'))."""
        TP = self.onnx.TensorProto
        col = g.op("Unsqueeze", [packed, g.i64([1], "axes")], "bytes")
        shifted = g.op("BitShift", [col, g.const(np.arange(8, dtype=np.uint8), "shifts")], "bits", direction="RIGHT")
        bits = g.op("BitwiseAnd", [shifted, g.const(np.ones(1, np.uint8), "one")], "bits")
        flat = g.op("Reshape", [bits, g.i64([-1])], "bits")
        flat = g.op("Slice", [flat, g.i64([0], "starts"), g.i64([n], "ends")], "bits")
        return g.op("Cast", [flat], f"{hint}_bits", to=TP.BOOL)


def model_digest(model: Any) -> str:
    """sha256 of the serialized model without its own ``slt_deploy.sha256`` entry.

    ONNX has no checksums, so without this a flipped weight bit would run silently.
    """
    import hashlib

    copy = type(model)()
    copy.CopyFrom(model)
    keep = [p for p in copy.metadata_props if p.key != META["sha256"]]
    del copy.metadata_props[:]
    copy.metadata_props.extend(keep)
    return hashlib.sha256(copy.SerializeToString()).hexdigest()


def _codes(w: Weights) -> np.ndarray:
    """The summed codes: int8 signs / int8 q, or the float32 values themselves."""
    if isinstance(w, FloatWeights):
        return np.asarray(w.values, np.float32)
    return np.asarray(w.integer_values(), np.int8)


def _encode(codes: np.ndarray, kind: str, storage: str) -> tuple[str, dict[str, np.ndarray], int]:
    """Compact storage of a code tensor; returns (encoding, tensors, number of kept weights)."""
    flat = codes.reshape(-1)
    keep = flat != 0
    nnz = int(keep.sum())
    if storage == "float32":
        return "float32", {"codes": flat.astype(np.float32)}, nnz
    if nnz == 0:
        return "zero", {}, nnz
    value_dtype = np.float32 if kind == "float32" else np.int8
    dense = {"codes": flat.astype(value_dtype)}
    if kind == "binary":
        kept = {"sign_bits": np.packbits(flat[keep] < 0, bitorder="little")}
    else:
        kept = {"values": flat[keep].astype(value_dtype)}
    bitmask = {"mask_bits": np.packbits(keep, bitorder="little"), **kept}
    gaps = np.diff(np.flatnonzero(keep), prepend=-1) - 1
    index = {"gaps": min((_escaped_gaps(gaps, dt) for dt in (np.uint8, np.uint16, np.uint32)),
                         key=lambda a: a.nbytes), **kept}
    options = {"dense": dense, "bitmask": bitmask, "index": index}
    if storage != "auto":
        return storage, options[storage], nnz
    best = min(options, key=lambda k: sum(int(v.nbytes) for v in options[k].values()))
    return best, options[best], nnz


def _escaped_gaps(gaps: np.ndarray, dtype: type) -> np.ndarray:
    """Gap code: each kept weight is ``gap`` zeros after the previous one (0 … E−1, E = dtype max).

    A gap ≥ E is written as ``gap // E`` escape entries ``E`` (each skips E positions, no
    weight) followed by ``gap % E``. The decoder advances by ``min(entry + 1, E)`` per entry
    and keeps the positions of the non-escape entries.
    """
    escape = int(np.iinfo(dtype).max)
    gaps = np.asarray(gaps, np.int64)
    n_esc = gaps // escape
    out = np.full(len(gaps) + int(n_esc.sum()), escape, dtype=np.int64)
    real_at = np.arange(len(gaps)) + np.cumsum(n_esc)  # index of each real entry after its escapes
    out[real_at] = gaps - n_esc * escape
    return out.astype(dtype)


def _version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "0"


def _doc(ticket: Ticket) -> str:
    kind = ticket.encoding.kind
    return (f"slt-deploy spiking network, T={ticket.timesteps}, {kind} input. input: {_INPUT_NOTES[kind]}. "
            f"output: (T, batch, *out) float32. Exact float32 rounding needs graph optimizations disabled.")


__all__ = ["BuiltModel", "FORMAT_TAG", "INPUT_NAME", "META", "OPSET", "OUTPUT_NAME", "build_model", "export_onnx",
           "model_digest"]
