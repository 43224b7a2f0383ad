"""Graph planning for the C exporter: value kinds, buffers, liveness, static nodes.

Every node's per-step value lives in one of these places (``Ref``):

- the caller's input array ``x`` (a direct-encoded Input, or spike frames with 32-bit words),
- a persistent state buffer: a neuron layer's spikes (LIF, bits) or membrane (LI, float),
  a copy of a recurrent source's previous output, or a cached static value,
- a slot in one of two scratch arenas (``s->f`` floats, ``s->w`` words), shared by values
  whose lifetimes within a step do not overlap (first-fit over live intervals),
- or it aliases its input (Flatten, Output).

A *static* node (cached when ``cache_static``) depends only on a direct-encoded input, so its
value is the same at every step of ``NAME_infer``; it is computed at the first step only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from slt_deploy.errors import SltUnsupportedError
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.neurons import LI, LIF
from slt_deploy.ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d

SUPPORTED = (Input, Linear, Conv2d, SumPool2d, AvgPool2d, MaxPool2d, Flatten, Add, LIF, LI, Output)
ALIASES = (Flatten, Output)


@dataclass
class Ref:
    """Where a value lives: ``kind`` 'bits' or 'float', a C pointer expression, the element count."""

    kind: str
    expr: str
    size: int


@dataclass
class Plan:
    ticket: Ticket
    word: int
    order: list[str]
    pos: dict[str, int]
    ident: dict[str, str]
    kinds: dict[str, str]                      # node -> 'bits' | 'float'
    static: set[str]
    refs: dict[str, Ref] = field(default_factory=dict)
    state_fields: list[tuple[str, str, int]] = field(default_factory=list)  # (ctype, name, count)
    prev_copies: list[tuple[str, str, str, int]] = field(default_factory=list)  # (node, dst, src, bytes)
    float_arena: int = 0
    word_arena: int = 0

    def nwords(self, n: int) -> int:
        """Words of a bit vector of ``n`` bits, rows padded to 64 bits (bits.pack_rows)."""
        return math.ceil(n / 64) * (64 // self.word)


def check_supported(ticket: Ticket) -> None:
    for node in ticket.nodes:
        if not isinstance(node, SUPPORTED):
            raise SltUnsupportedError(
                f"C export: node '{node.name}' of kind '{node.kind}' is not supported "
                "(supported: Input, Linear, Conv2d, Sum/Avg/MaxPool2d, Flatten, Add, LIF, LI, Output)"
            )


def c_ident(name: str, index: int) -> str:
    """A C identifier fragment for node ``name`` (unique through its position)."""
    body = re.sub(r"[^A-Za-z0-9_]", "_", name)[:32]
    return f"n{index}_{body}".rstrip("_") if body.strip("_") else f"n{index}"


def make_plan(ticket: Ticket, word: int, cache_static: bool) -> Plan:
    check_supported(ticket)
    order = list(ticket.order)
    pos = {n: i for i, n in enumerate(order)}
    nodes = {n.name: n for n in ticket.nodes}
    ident = {n: c_ident(n, i) for i, n in enumerate(order)}
    kind = ticket.encoding.kind

    kinds: dict[str, str] = {}
    for name in order:
        node = nodes[name]
        ins = ticket.inputs_of(name)
        if isinstance(node, Input):
            kinds[name] = "float" if kind == "direct" else "bits"
        elif isinstance(node, LIF):
            kinds[name] = "bits"
        elif isinstance(node, (MaxPool2d, Flatten, Output)):
            src = ins[0].src
            kinds[name] = kinds[src] if not ins[0].recurrent else ("bits" if isinstance(nodes[src], LIF) else "float")
        else:
            kinds[name] = "float"
    # a recurrent edge's source is a neuron layer: its kind is known before the source's turn
    for name in order:
        for e in ticket.inputs_of(name):
            if e.recurrent:
                kinds.setdefault(e.src, "bits" if isinstance(nodes[e.src], LIF) else "float")

    static: set[str] = set()
    if cache_static and kind == "direct":
        for name in order:
            node = nodes[name]
            if isinstance(node, Input):
                static.add(name)
            elif not isinstance(node, (LIF, LI)):
                ins = ticket.inputs_of(name)
                if ins and all(not e.recurrent and e.src in static for e in ins):
                    static.add(name)

    plan = Plan(ticket, word, order, pos, ident, kinds, static)
    _assign_buffers(plan, nodes)
    return plan


def _root(plan: Plan, name: str, nodes: dict[str, Node]) -> str:
    """The node whose buffer ``name`` aliases (itself unless Flatten/Output)."""
    while isinstance(nodes[name], ALIASES):
        e = plan.ticket.inputs_of(name)[0]
        if e.recurrent:
            break
        name = e.src
    return name


def _assign_buffers(plan: Plan, nodes: dict[str, Node]) -> None:
    t = plan.ticket
    order, pos = plan.order, plan.pos
    end = len(order)
    n_el = {name: math.prod(t.shapes[name]) for name in order}

    # persistent neuron buffers
    for name in order:
        node, i = nodes[name], plan.ident[name]
        if isinstance(node, LIF):
            plan.state_fields.append(("float", f"v_{i}", n_el[name]))
            plan.state_fields.append(("W", f"s_{i}", plan.nwords(n_el[name])))
            plan.refs[name] = Ref("bits", f"s->s_{i}", n_el[name])
        elif isinstance(node, LI):
            plan.state_fields.append(("float", f"v_{i}", n_el[name]))
            plan.refs[name] = Ref("float", f"s->v_{i}", n_el[name])

    # last use of every root buffer within a step (feed-forward reads, through aliases)
    last: dict[str, int] = {}
    consumers_nonstatic: dict[str, bool] = {}
    for name in order:
        for e in t.inputs_of(name):
            if e.recurrent:
                continue
            root = _root(plan, e.src, nodes)
            p = end if isinstance(nodes[name], Output) else pos[name]
            last[root] = max(last.get(root, -1), p)
            if name not in plan.static and not isinstance(nodes[name], ALIASES):
                consumers_nonstatic[root] = True
            if isinstance(nodes[name], Output):
                consumers_nonstatic[root] = True

    # temporaries and static caches
    temps: list[tuple[str, str, int, int, int]] = []  # (name, kind, start, end, size)
    for name in order:
        node = nodes[name]
        if isinstance(node, (LIF, LI, ALIASES)):
            continue
        i = plan.ident[name]
        k = plan.kinds[name]
        size = n_el[name] if k == "float" else plan.nwords(n_el[name])
        if isinstance(node, Input):
            if t.encoding.kind == "direct" or (t.encoding.kind == "spikes" and plan.word == 32):
                plan.refs[name] = Ref(k, "x", n_el[name])
                continue
        if name in plan.static and consumers_nonstatic.get(name) and not isinstance(node, Input):
            plan.state_fields.append(("float" if k == "float" else "W", f"c_{i}", size))
            plan.refs[name] = Ref(k, f"s->c_{i}", n_el[name])
            continue
        temps.append((name, k, pos[name], last.get(name, pos[name]), size))

    for arena_kind, arena in (("float", "f"), ("bits", "w")):
        items = [x for x in temps if x[1] == arena_kind]
        offsets, total = _first_fit(items)
        for name, *_ in items:
            plan.refs[name] = Ref(arena_kind, f"(s->{arena} + {offsets[name]})", n_el[name])
        if arena_kind == "float":
            plan.float_arena = total
        else:
            plan.word_arena = total

    # previous-step copies for recurrent reads of a source already updated this step
    # (and always for an alias, whose readers may come after the source)
    for name in order:
        for e in t.inputs_of(name):
            if e.recurrent and (pos[name] > pos[e.src] or isinstance(nodes[name], ALIASES)):
                i = plan.ident[e.src]
                if any(c[0] == e.src for c in plan.prev_copies):
                    continue
                src = plan.refs[e.src]
                if src.kind == "bits":
                    count = plan.nwords(src.size)
                    plan.state_fields.append(("W", f"p_{i}", count))
                    plan.prev_copies.append((e.src, f"s->p_{i}", src.expr, count))
                else:
                    plan.state_fields.append(("float", f"p_{i}", src.size))
                    plan.prev_copies.append((e.src, f"s->p_{i}", src.expr, src.size))

    # aliases (in order, so a chain resolves front to back)
    for name in order:
        if isinstance(nodes[name], ALIASES):
            e = t.inputs_of(name)[0]
            plan.refs[name] = recurrent_ref(plan, name, e.src) if e.recurrent else plan.refs[e.src]


def recurrent_ref(plan: Plan, consumer: str, src: str) -> Ref:
    """The previous-step value of neuron layer ``src`` as read by ``consumer``."""
    ref = plan.refs[src]
    copy = [c for c in plan.prev_copies if c[0] == src]
    if copy and (plan.pos[consumer] > plan.pos[src] or isinstance(plan.ticket.node(consumer), ALIASES)):
        return Ref(ref.kind, copy[0][1], ref.size)
    return ref


def _first_fit(items: list[tuple[str, str, int, int, int]]) -> tuple[dict[str, int], int]:
    """Offsets for live intervals ``[start, end]`` so that overlapping ones never share memory."""
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, start, end)
    offsets: dict[str, int] = {}
    for name, _, start, stop, size in sorted(items, key=lambda x: (x[2], -x[4])):
        live = sorted((p for p in placed if p[2] <= stop and start <= p[3]), key=lambda p: p[0])
        off = 0
        for o, sz, _, _ in live:
            if off + size <= o:
                break
            off = max(off, o + sz)
        placed.append((off, size, start, stop))
        offsets[name] = off
    total = max((o + sz for o, sz, _, _ in placed), default=0)
    return offsets, total
