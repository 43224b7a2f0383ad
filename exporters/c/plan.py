"""The C exporter's handler table and the float mode's graph planner.

:data:`HANDLERS` says, per IR node kind, what the exporter does with it (a :class:`NodeRule`):

- ``role`` and ``value``: what the planner makes of it: where its value lives
  (:class:`~.buffers.Role`) and whether that value is a bit vector (``bits``) or float32
  values (``float``), fixed, given by the input encoding, or the same as its input's;
- ``emit_float``: the float emitter, ``(Gen, node) -> C lines`` for one step
  (:mod:`.float_synapse`, :mod:`.float_nodes`);
- ``fixed``: what fixed mode (``--arith fixed``) makes of it: :func:`slt_deploy.fixed_point.to_fixed`
  folds the ticket into integer neuron layers, which :mod:`.emit_fixed` writes; a kind fixed
  mode cannot express carries a refusal saying what to do instead.

A node kind with no rule is refused before any code is written, with one line naming the node.

The planner (:func:`make_plan`) decides every node's value kind and which nodes are *static*
(cached when ``cache_static``): a static node depends only on a direct-encoded input, so its
value is the same at every step of ``NAME_infer`` and it is computed at the first step only.
Buffers are then assigned by :func:`.buffers.assign_buffers`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slt_deploy.dispatch import HandlerTable, Refusal, refuse
from slt_deploy.errors import SltUnsupportedError
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.neurons import LI, LIF, RLIF
from slt_deploy.ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, SumPool2d
from slt_deploy.ir.tokens import TOKEN_KINDS

from . import float_nodes as F
from . import float_synapse as S
from .buffers import Plan, Ref, Role, assign_buffers, recurrent_ref
from .gen import Gen

__all__ = ["HANDLERS", "NodeRule", "Plan", "Ref", "Role", "c_ident", "check_fixed", "make_plan", "recurrent_ref"]

BITS, FLOAT = "bits", "float"
BY_ENCODING = "encoding"   # float for direct (analog) input, bits for spike trains (rate, spikes)
SAME = "same"              # the value kind of its (first) input


@dataclass(frozen=True)
class NodeRule:
    """What the C exporter does with one node kind (see the module docstring)."""

    role: Role
    value: str
    emit_float: Callable[[Gen, Any], list[str]]
    fixed: str | Refusal

    def own_kind(self, encoding: str) -> str | None:
        """``bits`` or ``float`` for input ``encoding``; None when the value kind is its input's (SAME)."""
        if self.value == BY_ENCODING:
            return FLOAT if encoding == "direct" else BITS
        return None if self.value == SAME else self.value


_FOLDED = "folded by slt_deploy.fixed_point into the integer synapses (int8 * 2^E) of the next neuron layer"

HANDLERS: HandlerTable[NodeRule] = HandlerTable("the C exporter (--to c)", {
    Input: NodeRule(Role.INPUT, BY_ENCODING, F.input_code,
                    "the input: spike bits, or direct values as integers round(x * 2^s)"),
    Linear: NodeRule(Role.COMPUTE, FLOAT, S.linear_code, _FOLDED),
    Conv2d: NodeRule(Role.COMPUTE, FLOAT, S.conv_code, _FOLDED + " (kept as a convolution when it is one)"),
    SumPool2d: NodeRule(Role.COMPUTE, FLOAT, F.sum_pool_code, _FOLDED),
    AvgPool2d: NodeRule(Role.COMPUTE, FLOAT, F.avg_pool_code, _FOLDED),
    MaxPool2d: NodeRule(Role.COMPUTE, SAME, F.max_pool_code,
                        "over spikes: an OR neuron layer; over currents or analog input slt_deploy.fixed_point "
                        "refuses it (use --arith float)"),
    Flatten: NodeRule(Role.ALIAS, SAME, F.no_code, "no code: a reshape of its input"),
    Add: NodeRule(Role.COMPUTE, FLOAT, F.add_code, "its inputs' synapses merged into the next neuron layer"),
    LIF: NodeRule(Role.NEURON, BITS, F.lif_code, "an integer LIF layer (Loihi's CUBA neuron, int32 membranes)"),
    LI: NodeRule(Role.NEURON, FLOAT, F.li_code,
                 "an integer LI readout (the output only; slt_deploy.fixed_point refuses it elsewhere)"),
    Output: NodeRule(Role.OUTPUT, SAME, F.no_code, "the output layer's spikes or LI membranes"),
    RLIF: NodeRule(Role.NEURON, BITS, F.lif_code, "an integer LIF layer fed by both currents (integer sums are "
                   "order-free); --arith fixed refuses its zero_delayed reset"),
    **dict.fromkeys(TOKEN_KINDS, refuse(
        "the C exporter has no kernels for token/attention nodes (matmul, product, reduction, views); "
        "export the spiking transformer to ONNX (--to onnx) or run it on the cpu target")),
})


def check_fixed(ticket: Ticket) -> None:
    """Refuse, before any conversion, a node kind the exporter or its fixed mode cannot express."""
    HANDLERS.check(ticket.nodes)
    for node in ticket.nodes:
        rule = HANDLERS.handler(node)
        if isinstance(rule.fixed, Refusal):
            raise SltUnsupportedError(f"node '{node.name}' ({node.kind}): --arith fixed: {rule.fixed.reason}")


def c_ident(name: str, index: int) -> str:
    """A C identifier fragment for node ``name`` (unique through its position)."""
    body = re.sub(r"[^A-Za-z0-9_]", "_", name)[:32]
    return f"n{index}_{body}".rstrip("_") if body.strip("_") else f"n{index}"


def make_plan(ticket: Ticket, word: int, cache_static: bool) -> Plan:
    """Value kinds, static nodes and buffers of every node of ``ticket`` (float mode)."""
    HANDLERS.check(ticket.nodes)
    order = list(ticket.order)
    rules = {n.name: HANDLERS.handler(n) for n in ticket.nodes}
    pos = {n: i for i, n in enumerate(order)}
    ident = {n: c_ident(n, i) for i, n in enumerate(order)}
    kinds = _value_kinds(ticket, order, rules)
    static = _static_nodes(ticket, order, rules) if cache_static and ticket.encoding.kind == "direct" else set()
    plan = Plan(ticket, word, order, pos, ident, kinds, static, roles={n: rules[n].role for n in order})
    assign_buffers(plan)
    return plan


def _value_kinds(ticket: Ticket, order: list[str], rules: dict[str, NodeRule]) -> dict[str, str]:
    """``bits`` or ``float`` per node; a recurrent input is its source neuron layer's own value."""
    enc = ticket.encoding.kind
    kinds: dict[str, str] = {}
    for name in order:
        kind = rules[name].own_kind(enc)
        if kind is None:
            ins = ticket.inputs_of(name)
            src = ins[0].src if ins else None
            kind = None if src is None else rules[src].own_kind(enc) if ins[0].recurrent else kinds[src]
            if kind is None:
                node = ticket.node(name)
                raise SltUnsupportedError(f"node '{name}' ({node.kind}): the C exporter takes its value kind "
                                          "from its input, which has none (a recurrent edge must start at a "
                                          "neuron layer)")
        kinds[name] = kind
    return kinds


def _static_nodes(ticket: Ticket, order: list[str], rules: dict[str, NodeRule]) -> set[str]:
    """Nodes that depend only on the direct input: the input, and non-neuron nodes fed only by static ones."""
    static: set[str] = set()
    for name in order:
        role = rules[name].role
        if role is Role.INPUT:
            static.add(name)
        elif role is not Role.NEURON:
            ins = ticket.inputs_of(name)
            if ins and all(not e.recurrent and e.src in static for e in ins):
                static.add(name)
    return static
