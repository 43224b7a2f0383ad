"""Emitters of the neuron layers: one ONNX op per floating-point operation of ``slt_deploy.ir.neurons``.

With ``I = u + b`` (no ``Add`` without a bias) and the previous membrane ``v'``::

    leaky        v = β·v' + I                  (LI always)
    decay_input  v = v' + (I − v') / τ
    leaky_tau    v = (v' − v'/τ) + I
    RLIF:              v = v + c     (its recurrent current c, after the leak)
    subtract_delayed:  v = v − r·s'  (before the threshold; s' = previous spikes)
    zero_delayed:      v = where(s', 0, v)
    s = float32(v > θ);  zero: v = where(s, 0, v);  subtract: v = v − r·s

Run with graph optimizations disabled (the ONNX Runtime target does): level-1 fusions would
fold or reorder these and change the rounding.
"""

from __future__ import annotations

from ...ir.neurons import LI, LIF
from ._context import Emitter
from ._graph import Graph, State


def step_li(ctx: Emitter, g: Graph, node: LI, u: str, st: State) -> tuple[str, State]:
    """LI readout: ``v = β·v' + I``; its value is the membrane."""
    v = _charge(ctx, g, node, _current(ctx, g, node, u), st.v, "leaky")
    return v, State(v)


def step_lif(ctx: Emitter, g: Graph, node: LIF, u: str, st: State, rec: str | None = None) -> tuple[str, State]:
    """LIF (and RLIF, with its recurrent current ``rec``): charge, (delayed reset), fire, reset; the spikes."""
    v = _charge(ctx, g, node, _current(ctx, g, node, u), st.v, node.charge)
    if rec is not None:
        v = g.op("Add", [v, rec], "v")
    r = None
    if node.reset in ("subtract", "subtract_delayed"):
        r = ctx.param(node, "reset", node.reset_amount)
    if node.reset == "subtract_delayed":
        v = g.op("Sub", [v, g.op("Mul", [r, st.s], "rs")], "v")  # type: ignore[list-item]
    elif node.reset == "zero_delayed":
        v = g.op("Where", [g.op("Greater", [st.s, ctx.zero_f32()], "spiked"), ctx.zero_f32(), v], "v")  # type: ignore[list-item]
    fired = g.op("Greater", [v, ctx.param(node, "threshold", node.threshold)], "fired")
    s = g.op("Cast", [fired], "s", to=ctx.onnx.TensorProto.FLOAT)
    if node.reset == "zero":
        v = g.op("Where", [fired, ctx.zero_f32(), v], "v")
    elif node.reset == "subtract":
        v = g.op("Sub", [v, g.op("Mul", [r, s], "rs")], "v")  # type: ignore[list-item]
    return s, State(v, s)


def spike_state_needed(node: LIF) -> bool:
    """A LIF layer whose own update reads its previous spikes (``subtract_delayed``, ``zero_delayed``)."""
    return node.reset in ("subtract_delayed", "zero_delayed")


def _current(ctx: Emitter, g: Graph, node: LIF | LI, u: str) -> str:
    return u if node.bias is None else g.op("Add", [u, ctx.param(node, "bias", node.bias)], "I")


def _charge(ctx: Emitter, g: Graph, node: LIF | LI, cur: str, v_prev: str, charge: str) -> str:
    if charge == "leaky":
        return g.op("Add", [g.op("Mul", [ctx.param(node, "beta", node.beta), v_prev], "bv"), cur], "v")
    tau = ctx.param(node, "tau", node.tau)  # type: ignore[union-attr]
    if charge == "decay_input":
        return g.op("Add", [v_prev, g.op("Div", [g.op("Sub", [cur, v_prev], "d"), tau], "dt")], "v")
    return g.op("Add", [g.op("Sub", [v_prev, g.op("Div", [v_prev, tau], "vt")], "dv"), cur], "v")  # leaky_tau


__all__ = ["spike_state_needed", "step_li", "step_lif"]
