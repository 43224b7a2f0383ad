"""The model builder: plan the ticket, build one time step, wrap it in a Loop (or unroll it).

Everything that depends on the node kind comes from the handler table
(:data:`._kinds.HANDLERS`); this module only walks the graph. Values that do not change over
time (a directly encoded input and the stateless nodes fed only by it) are computed once, in
the outer graph, before the time loop: the same operations on the same values, so the same
result, T times cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...ir.graph import Edge, Ticket
from ._context import Emitter
from ._graph import Graph, State, ident
from ._kinds import HANDLERS, KindRule
from ._meta import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, doc_string, metadata, producer_version, stamp_digest


@dataclass
class Plan:
    """Static facts per node: integer bound of its values (None: not integer) and time invariance."""

    bound: dict[str, float | None] = field(default_factory=dict)
    invariant: dict[str, bool] = field(default_factory=dict)


@dataclass
class _Carried:
    """One loop-carried state tensor of the Loop body."""

    node: str
    which: str  # "v" (membrane) or "s" (previous spikes)
    body_input: str
    initial: str
    shape: list[Any]


class ModelBuilder(Emitter):
    """Builds the ONNX model of one ticket (``build_model`` checks the arguments first)."""

    def __init__(self, onnx: Any, ticket: Ticket, mode: str, weights: str, record: str) -> None:
        HANDLERS.check(ticket.nodes)
        super().__init__(onnx, ticket, weights)
        self.mode = mode
        self.record = record
        self.rules: dict[str, KindRule] = {n.name: HANDLERS.handler(n) for n in ticket.nodes}
        self.nodes = {n.name: n for n in ticket.nodes}
        self.input_name = ticket.input.name
        self.per_step_input = ticket.encoding.kind != "direct"
        self.plan = self._plan()
        self.bound = self.plan.bound
        self.record_info: list[dict[str, Any]] = []
        self.invariant_values: dict[str, str] = {}
        T, inp = ticket.timesteps, list(ticket.input_shape)
        self.input_dims: list[Any] = ([T, "batch"] if self.per_step_input else ["batch"]) + inp
        self.output_dims: list[Any] = [T, "batch", *ticket.output_shape]
        self.recorded = [name for name in ticket.order if record in self.rules[name].records]

    # ---------------------------------------------------------------- analysis
    def _plan(self) -> Plan:
        """Integer bounds and time invariance, in topological order.

        The input node's one "input" is the model input: integers in [0, 1] for rate coding,
        invariant for direct encoding.
        """
        plan = Plan()
        enc = self.ticket.encoding.kind
        for name in self.ticket.order:
            rule = self.rules[name]
            if name == self.input_name:
                in_bounds, in_inv = [1.0 if enc == "rate" else None], [enc == "direct"]
            else:
                ins = self.incoming[name]
                in_bounds = [self._source_bound(plan, e) for e in ins]
                in_inv = [not e.recurrent and plan.invariant[e.src] for e in ins]
            plan.invariant[name] = not rule.stateful and all(in_inv)
            plan.bound[name] = rule.bound(self.nodes[name], in_bounds)
        return plan

    def _source_bound(self, plan: Plan, edge: Edge) -> float | None:
        if edge.recurrent:
            return 1.0 if self.rules[edge.src].spiking else None
        return plan.bound[edge.src]

    def _needs_spike_state(self) -> set[str]:
        """Spiking layers whose previous spikes are needed: by their own update, or on a recurrent edge."""
        need = {n.name for n in self.ticket.nodes if self.rules[n.name].own_spikes(n)}
        need |= {e.src for e in self.ticket.edges if e.recurrent and self.rules[e.src].spiking}
        return need

    # ---------------------------------------------------------------- model
    def build(self) -> Any:
        g = self.outer
        batch_axis = 1 if self.per_step_input else 0
        self.batch = g.op("Shape", [INPUT_NAME], "batch", start=batch_axis, end=batch_axis + 1)
        neurons = [n for n in self.ticket.order if self.rules[n].stateful]
        needs_s = self._needs_spike_state()
        init_state = {}
        for name in neurons:
            zeros = self._zeros(g, self.ticket.shapes[name], f"v0_{ident(name)}")
            init_state[name] = State(zeros, zeros if name in needs_s else None)
        stacked_names = [self._out_name(n) for n in self.recorded]
        if self.mode == "unrolled":
            self._build_unrolled(g, init_state, stacked_names)
        else:
            self._build_loop(g, init_state, neurons, needs_s, stacked_names)
        return self._model(g, stacked_names)

    def _model(self, g: Graph, stacked_names: list[str]) -> Any:
        """The outer graph as a model with its inputs, outputs, metadata and digest."""
        helper, TP = self.onnx.helper, self.onnx.TensorProto
        out_shapes = {OUTPUT_NAME: self.output_dims}
        for n, out in zip(self.recorded, stacked_names, strict=True):
            out_shapes[out] = [self.ticket.timesteps, "batch", *self.ticket.shapes[n]]
            self.record_info.append({"output": out, "node": n, "kind": self.nodes[n].kind,
                                     "shape": list(self.ticket.shapes[n])})
        graph = helper.make_graph(
            g.nodes, f"slt_{ident(self.ticket.output.name)}",
            [helper.make_tensor_value_info(INPUT_NAME, TP.FLOAT, self.input_dims)],
            [helper.make_tensor_value_info(k, TP.FLOAT, v) for k, v in out_shapes.items()],
            initializer=g.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                  producer_name="slt-deploy", producer_version=producer_version(),
                                  doc_string=doc_string(self.ticket))
        helper.set_model_props(model, metadata(self.ticket, self.record_info))
        stamp_digest(model)
        return model

    def _out_name(self, node: str) -> str:
        return f"rec_{self.ticket.order.index(node)}_{ident(node)}"

    def _zeros(self, g: Graph, shape: tuple[int, ...], hint: str) -> str:
        full = g.op("Concat", [self.batch, g.i64(list(shape))], "zshape", axis=0)
        value = self.onnx.helper.make_tensor("zero", self.onnx.TensorProto.FLOAT, [1], [0.0])
        return g.op("ConstantOfShape", [full], hint, value=value)

    def _build_unrolled(self, g: Graph, init_state: dict[str, State], stacked_names: list[str]) -> None:
        """T copies of the step in the outer graph; per-step values stacked along a new axis 0."""
        per_step: dict[str, list[str]] = {n: [] for n in [OUTPUT_NAME, *self.recorded]}
        state = init_state
        for t in range(self.ticket.timesteps):
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

    def _build_loop(self, g: Graph, init_state: dict[str, State], neurons: list[str], needs_s: set[str],
                    stacked_names: list[str]) -> None:
        """One ONNX Loop: the body is one step, states loop-carried, per-step values as scan outputs."""
        helper, TP = self.onnx.helper, self.onnx.TensorProto
        body = Graph(self.onnx, self.counter)
        it, cond_in = body.fresh("iter"), body.fresh("cond_in")
        carried, state = self._carried_state(body, init_state, neurons, needs_s)
        x_t = INPUT_NAME if not self.per_step_input else body.op("Gather", [INPUT_NAME, it], "x_t", axis=0)
        values, new_state = self._step(body, x_t, state)
        cond_out = body.op("Identity", [cond_in], "cond_out")
        outs = [cond_out]
        for c in carried:
            outs.append(body.op("Identity", [getattr(new_state[c.node], c.which)], f"{c.which}_next"))
        scans = [self.ticket.output.name, *self.recorded]
        for n in scans:
            outs.append(body.op("Identity", [values[n]], "scan"))
        scan_shapes = [["batch", *self.ticket.shapes[n]] for n in scans]
        b_inputs = [helper.make_tensor_value_info(it, TP.INT64, []),
                    helper.make_tensor_value_info(cond_in, TP.BOOL, [])]
        b_inputs += [helper.make_tensor_value_info(c.body_input, TP.FLOAT, c.shape) for c in carried]
        b_outputs = [helper.make_tensor_value_info(cond_out, TP.BOOL, [])]
        b_outputs += [helper.make_tensor_value_info(o, TP.FLOAT, c.shape)
                      for o, c in zip(outs[1:], carried, strict=False)]
        b_outputs += [helper.make_tensor_value_info(o, TP.FLOAT, s) for o, s in
                      zip(outs[1 + len(carried):], scan_shapes, strict=True)]
        body_graph = helper.make_graph(body.nodes, "step", b_inputs, b_outputs, initializer=body.inits)
        trip = g.scalar(self.ticket.timesteps, np.int64, "T")
        cond = g.const(np.asarray(True), "cond")
        finals = [g.fresh("final") for _ in carried]
        g.named_op("Loop", [trip, cond, *[c.initial for c in carried]], [*finals, OUTPUT_NAME, *stacked_names],
                   body=body_graph)

    def _carried_state(self, body: Graph, init_state: dict[str, State], neurons: list[str],
                       needs_s: set[str]) -> tuple[list[_Carried], dict[str, State]]:
        """The Loop's carried tensors (membranes, and previous spikes where needed) as body inputs."""
        carried: list[_Carried] = []
        state: dict[str, State] = {}
        for name in neurons:
            shape = ["batch", *self.ticket.shapes[name]]
            v_in = body.fresh(f"v_{ident(name)}")
            carried.append(_Carried(name, "v", v_in, init_state[name].v, shape))
            s_in = None
            if name in needs_s:
                s_in = body.fresh(f"s_{ident(name)}")
                carried.append(_Carried(name, "s", s_in, init_state[name].s, shape))  # type: ignore[arg-type]
            state[name] = State(v_in, s_in)
        return carried, state

    # ---------------------------------------------------------------- one step
    def _step(self, g: Graph, x_t: str, state: dict[str, State]) -> tuple[dict[str, str], dict[str, State]]:
        """Every node's value at one step: ``values[name]``, and the neurons' new state."""
        values: dict[str, str] = {}
        new_state: dict[str, State] = {}
        for name in self.ticket.order:
            node, rule = self.nodes[name], self.rules[name]
            ins = self._inputs(name, x_t, values, state)
            if rule.step is not None:
                values[name], new_state[name] = rule.step(self, g, node, ins[0], state[name], *ins[1:])
            elif not self.plan.invariant[name]:
                values[name] = rule.emit(self, g, node, ins)  # type: ignore[misc]
            else:  # computed once, in the outer graph
                if name not in self.invariant_values:
                    self.invariant_values[name] = rule.emit(self, self.outer, node, ins)  # type: ignore[misc]
                values[name] = self.invariant_values[name]
        return values, new_state

    def _inputs(self, name: str, x_t: str, values: dict[str, str], state: dict[str, State]) -> list[str]:
        """The input tensors of ``name`` at this step; a recurrent edge reads the previous step's value."""
        if name == self.input_name:
            return [x_t]
        ins = []
        for e in self.incoming[name]:
            if e.recurrent:
                st = state[e.src]
                ins.append(st.s if self.rules[e.src].spiking else st.v)
            else:
                ins.append(values[e.src])
        return ins  # type: ignore[return-value]


__all__ = ["ModelBuilder", "Plan"]
