"""Where every value of the C exporter's float mode lives: the plan's data and its buffer assignment.

Every node's per-step value lives in one of these places (``Ref``):

- the caller's input array ``x`` (a direct-encoded Input, or spike frames with 32-bit words),
- a persistent state buffer: a neuron layer's spikes (bits) or membrane (float),
  a copy of a recurrent source's previous output, or a cached static value,
- a slot in one of two scratch arenas (``s->f`` floats, ``s->w`` words), shared by values
  whose lifetimes within a step do not overlap (first-fit over live intervals),
- or it aliases its input (an alias node: Flatten, Output).

What a node kind is to this assignment (its :class:`Role` and value kind) comes from the
exporter's handler table (:data:`slt_deploy.exporters.c.plan.HANDLERS`), which fills
:attr:`Plan.roles` and :attr:`Plan.kinds`; nothing here looks at node classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from slt_deploy.ir.graph import Ticket


class Role(Enum):
    """What a node kind is to the planner."""

    INPUT = "input"        # the caller's x (or a buffer filled from it each step)
    NEURON = "neuron"      # persistent membranes (float) and, when its value is bits, spikes
    COMPUTE = "compute"    # computed every step into a scratch slot (or once, cached, when static)
    ALIAS = "alias"        # its single input's buffer; no code
    OUTPUT = "output"      # an alias that the caller reads after the step (live to the step's end)

    @property
    def is_alias(self) -> bool:
        return self in (Role.ALIAS, Role.OUTPUT)


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
    roles: dict[str, Role] = field(default_factory=dict)
    refs: dict[str, Ref] = field(default_factory=dict)
    state_fields: list[tuple[str, str, int]] = field(default_factory=list)  # (ctype, name, count)
    prev_copies: list[tuple[str, str, str, int]] = field(default_factory=list)  # (node, dst, src, bytes)
    float_arena: int = 0
    word_arena: int = 0

    def nwords(self, n: int) -> int:
        """Words of a bit vector of ``n`` bits, rows padded to 64 bits (bits.pack_rows)."""
        return math.ceil(n / 64) * (64 // self.word)

    def is_alias(self, name: str) -> bool:
        return self.roles[name].is_alias


def assign_buffers(plan: Plan) -> None:
    """Fill ``plan.refs``, its state fields, arenas and previous-step copies (see the module docstring)."""
    n_el = {name: math.prod(plan.ticket.shapes[name]) for name in plan.order}
    _neuron_buffers(plan, n_el)
    temps = _temporaries(plan, n_el)
    for arena_kind, arena in (("float", "f"), ("bits", "w")):
        items = [x for x in temps if x[1] == arena_kind]
        offsets, total = first_fit(items)
        for name, *_ in items:
            plan.refs[name] = Ref(arena_kind, f"(s->{arena} + {offsets[name]})", n_el[name])
        if arena_kind == "float":
            plan.float_arena = total
        else:
            plan.word_arena = total
    _previous_copies(plan)
    # aliases (in order, so a chain resolves front to back)
    for name in plan.order:
        if plan.is_alias(name):
            e = plan.ticket.inputs_of(name)[0]
            plan.refs[name] = recurrent_ref(plan, name, e.src) if e.recurrent else plan.refs[e.src]


def _neuron_buffers(plan: Plan, n_el: dict[str, int]) -> None:
    """Persistent membranes, and spikes for a neuron layer whose value is bits."""
    for name in plan.order:
        if plan.roles[name] is not Role.NEURON:
            continue
        i = plan.ident[name]
        plan.state_fields.append(("float", f"v_{i}", n_el[name]))
        if plan.kinds[name] == "bits":
            plan.state_fields.append(("W", f"s_{i}", plan.nwords(n_el[name])))
            plan.refs[name] = Ref("bits", f"s->s_{i}", n_el[name])
        else:
            plan.refs[name] = Ref("float", f"s->v_{i}", n_el[name])


def _root(plan: Plan, name: str) -> str:
    """The node whose buffer ``name`` aliases (itself unless an alias node)."""
    while plan.is_alias(name):
        e = plan.ticket.inputs_of(name)[0]
        if e.recurrent:
            break
        name = e.src
    return name


def _last_uses(plan: Plan) -> tuple[dict[str, int], dict[str, bool]]:
    """Last use of every root buffer within a step (feed-forward reads, through aliases), and
    whether a non-static consumer (or the caller, through the output) reads it."""
    end = len(plan.order)
    last: dict[str, int] = {}
    consumers_nonstatic: dict[str, bool] = {}
    for name in plan.order:
        role = plan.roles[name]
        for e in plan.ticket.inputs_of(name):
            if e.recurrent:
                continue
            root = _root(plan, e.src)
            p = end if role is Role.OUTPUT else plan.pos[name]
            last[root] = max(last.get(root, -1), p)
            if name not in plan.static and not role.is_alias:
                consumers_nonstatic[root] = True
            if role is Role.OUTPUT:
                consumers_nonstatic[root] = True
    return last, consumers_nonstatic


def _temporaries(plan: Plan, n_el: dict[str, int]) -> list[tuple[str, str, int, int, int]]:
    """Scratch values ``(name, kind, start, end, size)``; inputs read in place and static caches get refs here."""
    t = plan.ticket
    last, consumers_nonstatic = _last_uses(plan)
    temps: list[tuple[str, str, int, int, int]] = []
    for name in plan.order:
        role = plan.roles[name]
        if role is Role.NEURON or role.is_alias:
            continue
        i = plan.ident[name]
        k = plan.kinds[name]
        size = n_el[name] if k == "float" else plan.nwords(n_el[name])
        if role is Role.INPUT:
            if t.encoding.kind == "direct" or (t.encoding.kind == "spikes" and plan.word == 32):
                plan.refs[name] = Ref(k, "x", n_el[name])
                continue
        if name in plan.static and consumers_nonstatic.get(name) and role is not Role.INPUT:
            plan.state_fields.append(("float" if k == "float" else "W", f"c_{i}", size))
            plan.refs[name] = Ref(k, f"s->c_{i}", n_el[name])
            continue
        temps.append((name, k, plan.pos[name], last.get(name, plan.pos[name]), size))
    return temps


def _previous_copies(plan: Plan) -> None:
    """Previous-step copies for recurrent reads of a source already updated this step
    (and always for an alias, whose readers may come after the source)."""
    pos = plan.pos
    for name in plan.order:
        for e in plan.ticket.inputs_of(name):
            if e.recurrent and (pos[name] > pos[e.src] or plan.is_alias(name)):
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


def recurrent_ref(plan: Plan, consumer: str, src: str) -> Ref:
    """The previous-step value of neuron layer ``src`` as read by ``consumer``."""
    ref = plan.refs[src]
    copy = [c for c in plan.prev_copies if c[0] == src]
    if copy and (plan.pos[consumer] > plan.pos[src] or plan.is_alias(consumer)):
        return Ref(ref.kind, copy[0][1], ref.size)
    return ref


def first_fit(items: list[tuple[str, str, int, int, int]]) -> tuple[dict[str, int], int]:
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
