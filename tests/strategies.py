"""Hypothesis strategies for random *valid* tickets and matching inputs, shared by test files.

    from strategies import tickets, ticket_and_input

    @given(tickets())                       # any family, any weight kind
    @given(tickets(families=("conv",), kinds=("binary",)))
    @given(ticket_and_input())              # (ticket, x) with x shaped for the encoding

Families: ``mlp`` (Linear/neuron chains), ``conv`` (Conv2d with stride/padding/dilation/
groups, Sum/Avg/Max pools with padding, Flatten, Linear), ``residual`` (Add joins) and
``recurrent`` (Linear -> Add <- Linear <-recurrent- LIF), ``rlif`` (Linear -> RLIF <- Linear
<-recurrent- RLIF, one or two layers) and ``spiking-tail`` (the output is a LIF
layer seen through MaxPool and/or Flatten: Conv -> LIF -> [MaxPool] -> Flatten -> Output) and
``attention`` (a Spikformer SSA or spike-driven SDSA block on tokens, 1-2 heads, optional token
mask, residual, mean-over-tokens head: every kind of :mod:`slt_deploy.ir.tokens`; not in the
default families until every float32 target runs it: ``ALL_FAMILIES``).
Densities run from 0 (all-zero mask) to 1; weights are binary, int8 or float32; neurons cover every reset and charge
(leaky, decay_input, leaky_tau), IF (β = 1) and an LI readout; biases present or not;
encodings direct / rate / spikes. Sizes stay small: a reference run takes milliseconds.
Arrays come from a numpy generator seeded by hypothesis, so examples replay exactly (they
shrink by seed only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from slt_deploy.ir import (
    LI,
    LIF,
    Add,
    AvgPool2d,
    BinaryWeights,
    Conv2d,
    Edge,
    Encoding,
    Flatten,
    FloatWeights,
    Input,
    Int8Weights,
    Linear,
    MatMul,
    MaxPool2d,
    Mul,
    Node,
    Output,
    Reduce,
    Reshape,
    Select,
    SumPool2d,
    Ticket,
    Transpose,
    Weights,
)
from slt_deploy.ir.neurons import CHARGES, RESETS, RLIF, RLIF_RESETS
from slt_deploy.ir.nodes import window_out

FAMILIES = ("mlp", "conv", "residual", "recurrent", "rlif", "spiking-tail")
ALL_FAMILIES = (*FAMILIES, "attention")
KINDS = ("binary", "int8", "float32")
ENCODINGS = ("direct", "rate", "spikes")
TAU_CHARGES = tuple(c for c in CHARGES if c != "leaky")  # decay_input, leaky_tau (β stays 1)
Draw = Callable[[st.SearchStrategy[Any]], Any]

_sizes = st.integers(1, 6)
_seeds = st.integers(0, 2**32 - 1)
_densities = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0))
_name_styles = st.sampled_from(["{}{}", "blk.{}.{}", "{}-{}", "_{}{}"])


def _rng(draw: Draw) -> np.random.Generator:
    return np.random.default_rng(draw(_seeds))


class _Names:
    """Unique node names in a drawn style (exercises '.', '-', '_' in names)."""

    def __init__(self, style: str) -> None:
        self.style, self.count = style, 0

    def __call__(self, prefix: str) -> str:
        self.count += 1
        return self.style.format(prefix, self.count)


# ------------------------------------------------------------------ weights
def _scales(draw: Draw, rng: np.random.Generator, rows: int, magnitude: float) -> np.ndarray:
    """Per-channel scales; sometimes all equal (the format stores those once)."""
    if draw(st.booleans()):
        return np.full(rows, np.float32(rng.uniform(0.2, 1.0) * magnitude), np.float32)
    return (rng.uniform(0.2, 1.0, rows) * magnitude).astype(np.float32)


@st.composite
def weights(draw: Draw, shape: tuple[int, ...], kinds: tuple[str, ...] = KINDS) -> Weights:
    """Random weights of ``shape`` (first axis = output channels), any density in [0, 1]."""
    kind = draw(st.sampled_from(kinds))
    p = draw(_densities)
    rng = _rng(draw)
    fan_in = max(1, int(np.prod(shape[1:])))
    mask = rng.random(shape) < p
    if kind == "binary":
        return BinaryWeights(mask, rng.random(shape) < 0.5, _scales(draw, rng, shape[0], 1.5 / np.sqrt(fan_in)))
    if kind == "int8":
        q = rng.integers(-128, 128, shape).astype(np.int8)
        return Int8Weights(mask, q, _scales(draw, rng, shape[0], 0.02 / np.sqrt(fan_in)))
    values = (rng.normal(0.0, 1.5, shape) / np.sqrt(fan_in)).astype(np.float32)
    flat = values.reshape(-1)
    specials = np.array([-0.0, 1e-40, -1e-42, 0.5, 0.0], np.float32)  # signed zero, subnormals
    picks = rng.random(flat.size) < 0.15
    flat[picks] = rng.choice(specials, int(picks.sum()))
    return FloatWeights(mask, values)


def _bias(draw: Draw, rows: int) -> np.ndarray | None:
    if not draw(st.booleans()):
        return None
    return _rng(draw).uniform(-0.3, 0.3, rows).astype(np.float32)


# ------------------------------------------------------------------ neurons
def _param(draw: Draw, shape: tuple[int, ...], lo: float, hi: float) -> float | np.ndarray:
    """A scalar or a per-neuron float32 parameter in [lo, hi]."""
    if draw(st.booleans()):
        return draw(st.floats(float(np.float32(lo)), float(np.float32(hi)), width=32))
    return _rng(draw).uniform(lo, hi, shape).astype(np.float32)


@st.composite
def neurons(draw: Draw, name: str, shape: tuple[int, ...], readout: bool = False) -> LIF | LI:
    """A LIF / IF / decay_input layer with any reset, or (``readout``) possibly an LI readout."""
    bias = _param(draw, shape, -0.2, 0.2) if draw(st.booleans()) else None
    if readout and draw(st.booleans()):
        return LI(name, shape=shape, beta=_param(draw, shape, 0.0, 1.0), bias=bias)
    variant = draw(st.sampled_from(["lif", "if", *TAU_CHARGES]))
    threshold = _param(draw, shape, 0.05, 1.5)
    reset_amount = _param(draw, shape, 0.05, 1.5) if draw(st.booleans()) else None
    common = dict(shape=shape, threshold=threshold, bias=bias, reset=draw(st.sampled_from(RESETS)),
                  reset_amount=reset_amount)
    if variant == "lif":
        return LIF(name, beta=_param(draw, shape, 0.0, 1.0), **common)
    if variant == "if":
        return LIF(name, beta=1.0, **common)
    return LIF(name, charge=variant, tau=_param(draw, shape, 1.0, 4.0), **common)


# ------------------------------------------------------------------ families
def _linear(draw: Draw, name: str, n_out: int, n_in: int, kinds: tuple[str, ...]) -> Linear:
    return Linear(name, draw(weights((n_out, n_in), kinds)), _bias(draw, n_out))


def _chain(nodes: list[Node]) -> list[Edge]:
    return [Edge(a.name, b.name) for a, b in zip(nodes, nodes[1:], strict=False)]


def _mlp(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    sizes = [draw(_sizes) for _ in range(draw(st.integers(1, 3)) + 1)]
    nodes: list[Node] = [Input(names("in"), shape=(sizes[0],))]
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        nodes.append(_linear(draw, names("fc"), n_out, n_in, kinds))
        nodes.append(draw(neurons(names("lif"), (n_out,), readout=i == len(sizes) - 2)))
    nodes.append(Output(names("out")))
    return nodes, _chain(nodes)


def _pool(draw: Draw, name: str, h: int, w: int) -> SumPool2d | AvgPool2d | MaxPool2d:
    cls = draw(st.sampled_from([SumPool2d, AvgPool2d, MaxPool2d]))
    k = (draw(st.integers(1, min(2, h))), draw(st.integers(1, min(2, w))))
    pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return cls(name, kernel_size=k, stride=stride, padding=pad)


def _conv(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    h, w = draw(st.integers(5, 7)), draw(st.integers(5, 7))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    conv = Conv2d(names("conv"), draw(weights((c_out, c_in // groups, kh, kw), kinds)), _bias(draw, c_out),
                  stride=stride, padding=padding, dilation=dilation, groups=groups)
    ho = window_out(h, kh, stride[0], padding[0], dilation[0])
    wo = window_out(w, kw, stride[1], padding[1], dilation[1])
    nodes: list[Node] = [Input(names("in"), shape=(c_in, h, w)), conv]
    shape: tuple[int, ...] = (c_out, ho, wo)
    if draw(st.booleans()):  # pool before the neurons
        pool = _pool(draw, names("pool"), ho, wo)
        shape = pool.out_shape([shape])
        nodes.append(pool)
    nodes.append(draw(neurons(names("lif"), shape)))
    if draw(st.booleans()):  # pool after the neurons
        pool = _pool(draw, names("pool"), shape[1], shape[2])
        shape = pool.out_shape([shape])
        nodes.append(pool)
    nodes.append(Flatten(names("flat")))
    n_out = draw(_sizes)
    nodes.append(_linear(draw, names("fc"), n_out, int(np.prod(shape)), kinds))
    nodes.append(draw(neurons(names("lif"), (n_out,), readout=True)))
    nodes.append(Output(names("out")))
    return nodes, _chain(nodes)


def _residual(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    n, m, o = draw(_sizes), draw(_sizes), draw(_sizes)
    inp = Input(names("in"), shape=(n,))
    fa, la = _linear(draw, names("fc"), m, n, kinds), draw(neurons(names("lif"), (m,)))
    fb, lb = _linear(draw, names("fc"), m, m, kinds), draw(neurons(names("lif"), (m,)))
    add, fo = Add(names("add")), _linear(draw, names("fc"), o, m, kinds)
    lo, out = draw(neurons(names("lif"), (o,), readout=True)), Output(names("out"))
    joins = [Edge(la.name, add.name), Edge(lb.name, add.name)]
    if draw(st.booleans()):
        joins.append(Edge(fa.name, add.name))  # a third, non-spiking input to the join
    edges = _chain([inp, fa, la, fb, lb]) + draw(st.permutations(joins)) + _chain([add, fo, lo, out])
    return [inp, fa, la, fb, lb, add, fo, lo, out], edges


def _recurrent(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    n, m, o = draw(_sizes), draw(_sizes), draw(_sizes)
    inp, f_in = Input(names("in"), shape=(n,)), _linear(draw, names("fc"), m, n, kinds)
    f_rec, add = _linear(draw, names("rec"), m, m, kinds), Add(names("add"))
    lif, f_out = draw(neurons(names("lif"), (m,))), _linear(draw, names("fc"), o, m, kinds)
    lo, out = draw(neurons(names("lif"), (o,), readout=True)), Output(names("out"))
    edges = [Edge(inp.name, f_in.name), Edge(f_in.name, add.name), Edge(f_rec.name, add.name),
             Edge(add.name, lif.name), Edge(lif.name, f_rec.name, recurrent=True), Edge(lif.name, f_out.name),
             Edge(f_out.name, lo.name), Edge(lo.name, out.name)]
    return [inp, f_in, f_rec, add, lif, f_out, lo, out], edges


def _rlif(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    """Input -> fc -> RLIF(ff, rec) -> fc -> readout, ``rec`` a Linear fed by the RLIF through a recurrent
    edge; per-neuron β, θ, any RLIF reset (sometimes a second RLIF layer)."""
    n, m = draw(_sizes), draw(_sizes)
    inp = Input(names("in"), shape=(n,))
    nodes: list[Node] = [inp]
    edges: list[Edge] = []
    prev, width = inp.name, n
    for _ in range(draw(st.integers(1, 2))):
        ff, rec = _linear(draw, names("fc"), m, width, kinds), _linear(draw, names("rec"), m, m, kinds)
        bias = _param(draw, (m,), -0.2, 0.2) if draw(st.booleans()) else None
        lif = RLIF(names("rlif"), shape=(m,), beta=_param(draw, (m,), 0.0, 1.0),
                   threshold=_param(draw, (m,), 0.05, 1.5), bias=bias, reset=draw(st.sampled_from(RLIF_RESETS)))
        nodes += [ff, rec, lif]
        edges += [Edge(prev, ff.name), Edge(ff.name, lif.name), Edge(rec.name, lif.name),
                  Edge(lif.name, rec.name, recurrent=True)]
        prev, width = lif.name, m
    o = draw(_sizes)
    f_out, lo, out = _linear(draw, names("fc"), o, m, kinds), draw(neurons(names("lif"), (o,), readout=True)), \
        Output(names("out"))
    nodes += [f_out, lo, out]
    edges += [Edge(prev, f_out.name), Edge(f_out.name, lo.name), Edge(lo.name, out.name)]
    return nodes, edges


def _spiking_tail(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    """The output is spikes seen through MaxPool and/or Flatten (targets must still call it spiking)."""
    c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(3, 6)), draw(st.integers(3, 6))
    conv = Conv2d(names("conv"), draw(weights((c_out, c_in, 3, 3), kinds)), _bias(draw, c_out), padding=1)
    lif = draw(neurons(names("lif"), (c_out, h, w)))
    while not isinstance(lif, LIF):  # pragma: no cover - neurons() without readout is always LIF
        lif = draw(neurons(names("lif"), (c_out, h, w)))
    nodes: list[Node] = [Input(names("in"), shape=(c_in, h, w)), conv, lif]
    if draw(st.booleans()):
        nodes.append(MaxPool2d(names("pool"), kernel_size=2, stride=2 if min(h, w) >= 4 else 1))
    if draw(st.booleans()) or len(nodes) == 3:
        nodes.append(Flatten(names("flat")))
    nodes.append(Output(names("out")))
    return nodes, _chain(nodes)


def _spiking(draw: Draw, name: str, shape: tuple[int, ...]) -> LIF:
    lif = draw(neurons(name, shape))
    assert isinstance(lif, LIF)
    return lif


def _attention(draw: Draw, names: _Names, kinds: tuple[str, ...]) -> tuple[list[Node], list[Edge]]:
    """Tokens (N, D) -> [token mask] -> q, k, v = LIF(Conv1x1) -> SSA or SDSA -> proj LIF + residual -> mean -> fc."""
    heads, dh, n = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(2, 5))
    d = heads * dh
    inp = Input(names("in"), shape=(n, d))
    nodes: list[Node] = [inp]
    edges: list[Edge] = []

    def link(src: Node, dst: Node) -> Node:
        if dst not in nodes:
            nodes.append(dst)
        edges.append(Edge(src.name, dst.name))
        return dst

    x: Node = inp
    if draw(st.booleans()):
        keep = sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)))
        x, n = link(x, Select(names("mask"), axis=0, indices=tuple(keep))), len(keep)
    x = link(link(x, Transpose(names("tr"), perm=(1, 0))), Reshape(names("view"), shape=(d, n, 1)))

    def proj(src: Node, tag: str) -> Node:
        conv = Conv2d(names(tag), draw(weights((d, d, 1, 1), kinds)), _bias(draw, d))
        return link(link(src, conv), _spiking(draw, names("lif"), (d, n, 1)))

    q, k, v = (link(proj(x, t), Reshape(names("heads"), shape=(heads, dh, n))) for t in ("q", "k", "v"))
    q = link(q, Transpose(names("tr"), perm=(0, 2, 1)))
    v = link(v, Transpose(names("tr"), perm=(0, 2, 1)))
    if draw(st.booleans()):  # Spikformer SSA: LIF((Q Kᵀ · s) V)
        qk = MatMul(names("qk"), scale=draw(st.sampled_from([0.125, 0.25, 1.0])))
        link(q, qk), link(k, qk)
        qkv = MatMul(names("qkv"))
        link(qk, qkv), link(v, qkv)
        att = link(qkv, _spiking(draw, names("lif"), (heads, n, dh)))
    else:  # spike-driven SDSA: Q ⊙ LIF(Σ_tokens K ⊙ V)
        kt = link(k, Transpose(names("tr"), perm=(0, 2, 1)))
        kv = Mul(names("kv"))
        link(kt, kv), link(v, kv)
        red = link(kv, Reduce(names("sum"), axis=1, op="sum", keepdims=True))
        gate = link(red, _spiking(draw, names("lif"), (heads, 1, dh)))
        att = Mul(names("qkv"))
        link(q, att), link(gate, att)
    merged = link(link(att, Transpose(names("tr"), perm=(0, 2, 1))), Reshape(names("merge"), shape=(d, n, 1)))
    res = Add(names("add"))
    link(proj(merged, "proj"), res), link(x, res)
    pooled = link(link(res, Reduce(names("mean"), axis=1, op="mean")), Flatten(names("flat")))
    n_out = draw(_sizes)
    head = link(pooled, _linear(draw, names("fc"), n_out, d, kinds))
    link(link(head, draw(neurons(names("lif"), (n_out,), readout=True))), Output(names("out")))
    return nodes, edges


_BUILDERS = {"mlp": _mlp, "conv": _conv, "residual": _residual, "recurrent": _recurrent, "rlif": _rlif,
             "spiking-tail": _spiking_tail, "attention": _attention}
_metadata = st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3)


def _keep_input_order(original: list[Edge], shuffled: list[Edge], ordered: set[str]) -> list[Edge]:
    """``shuffled``, with the incoming edges of ``ordered`` nodes (MatMul: a, b) back in their original order."""
    queues: dict[str, list[Edge]] = {}
    for e in original:
        queues.setdefault(e.dst, []).append(e)
    return [queues[e.dst].pop(0) if e.dst in ordered else e for e in shuffled]


@st.composite
def tickets(draw: Draw, families: tuple[str, ...] = FAMILIES, kinds: tuple[str, ...] = KINDS,
            encodings: tuple[str, ...] = ENCODINGS, max_timesteps: int = 4, shuffle: bool = True) -> Ticket:
    """A random valid Ticket; ``shuffle`` also permutes node and edge declaration order."""
    names = _Names(draw(_name_styles))
    nodes, edges = _BUILDERS[draw(st.sampled_from(families))](draw, names, kinds)
    if shuffle:
        nodes = draw(st.permutations(nodes))
        ordered = {n.name for n in nodes if isinstance(n, MatMul)}
        edges = _keep_input_order(edges, draw(st.permutations(edges)), ordered)
    kind = draw(st.sampled_from(encodings))
    encoding = Encoding(kind, draw(st.integers(0, 2**63)) if kind == "rate" else None)
    return Ticket(tuple(nodes), tuple(edges), draw(st.integers(1, max_timesteps)), encoding, draw(_metadata))


@st.composite
def inputs(draw: Draw, ticket: Ticket, max_batch: int = 3) -> np.ndarray:
    """An input array for ``ticket``: (batch, *in) for direct/rate, (T, batch, *in) 0/1 for spikes."""
    rng = _rng(draw)
    batch = draw(st.integers(1, max_batch))
    shape, kind = ticket.input_shape, ticket.encoding.kind
    if kind == "spikes":
        return (rng.random((ticket.timesteps, batch, *shape)) < 0.5).astype(np.float32)
    if kind == "rate":
        return rng.random((batch, *shape)).astype(np.float32)
    return rng.uniform(-0.5, 1.5, (batch, *shape)).astype(np.float32)


@st.composite
def ticket_and_input(draw: Draw, **ticket_kw: Any) -> tuple[Ticket, np.ndarray]:
    """``(ticket, x)``: a random ticket (``tickets(**ticket_kw)``) and a matching input batch."""
    ticket = draw(tickets(**ticket_kw))
    return ticket, draw(inputs(ticket))
