"""Float mode, every node kind but the synapse layers: input encodings, pools, Add, LIF and LI.

Each function is the float emitter of one node kind in the exporter's handler table
(:data:`slt_deploy.exporters.c.plan.HANDLERS`): it returns the C block that computes the
node's value for one step, in the reference's float32 operations and order
(docs/semantics.md). Sum and average pools over analog input sum their windows exactly
(int64 on a common exponent grid when the input's span allows, else the exact accumulator)
and round once; AvgPool then divides by the window size in float32.
"""

from __future__ import annotations

import math

import numpy as np

from slt_deploy.ir.neurons import LI, LIF
from slt_deploy.ir.nodes import Add, AvgPool2d, Input, MaxPool2d, Node, SumPool2d

from . import layers as L
from . import rate
from .gen import Gen, flit


def no_code(gen: Gen, node: Node) -> list[str]:
    """An alias (Flatten, Output): its value is its input's buffer."""
    return []


def input_code(gen: Gen, node: Input) -> list[str]:
    """Fill the input buffer for this step, unless the caller's ``x`` is used in place."""
    assert gen.plan is not None
    name = node.name
    ref = gen.plan.refs[name]
    kind = gen.ticket.encoding.kind
    n = ref.size
    if kind == "direct" or ref.expr == "x":
        return []
    nw = gen.plan.nwords(n)
    if kind == "spikes":  # 64-bit words from the caller's 32-bit halves
        return [f"{{   /* input '{name}': spike frame, 32-bit halves -> 64-bit words */",
                "    uint32_t j;",
                f"    for (j = 0; j < {nw}u; ++j)",
                f"        {ref.expr}[j] = (uint64_t)x[2u * j] | ((uint64_t)x[2u * j + 1u] << 32);",
                "}"]
    return rate.input_block(gen, ref.expr, n, nw)


# ---------------------------------------------------------------------------- pools
def _pool_head(gen: Gen, node: SumPool2d | AvgPool2d | MaxPool2d) -> tuple[list[str], list[str], str, bool]:
    """(block head, the window loop's opening lines, the output index, spike input) of a pool."""
    assert gen.plan is not None
    name = node.name
    xin = gen.input_ref(name)
    out = gen.plan.refs[name]
    c, h, w = _pool_input_shape(gen, node)
    _, ho, wo = gen.ticket.shapes[name]
    (kh, kw), (sh, sw), (ph, pw) = node.kernel_size, node.stride, node.padding
    spikes = xin.kind == "bits"
    lines = [f"{{   /* {node.kind} '{name}': {kh}x{kw} stride {sh}x{sw} pad {ph}x{pw}, "
             f"{'spike' if spikes else 'analog'} input */",
             f"    const {'W_T' if spikes else 'float'} *const xin = {xin.expr};",
             f"    {'W_T' if out.kind == 'bits' else 'float'} *const out = {out.expr};",
             "    uint32_t c, oy, ox, ky, kx;"]
    if out.kind == "bits":
        lines.append(f"    memset(out, 0, sizeof(W_T) * {gen.plan.nwords(out.size)}u);")
    lines.append(f"    for (c = 0; c < {c}u; ++c) for (oy = 0; oy < {ho}u; ++oy) for (ox = 0; ox < {wo}u; ++ox) {{")
    loop = [f"for (ky = 0; ky < {kh}u; ++ky) for (kx = 0; kx < {kw}u; ++kx) {{",
            f"    const int32_t iy = (int32_t)(oy * {sh}u + ky) - {ph}, ix = (int32_t)(ox * {sw}u + kx) - {pw};",
            f"    if (iy >= 0 && iy < {h} && ix >= 0 && ix < {w}) {{",
            f"        const uint32_t xi = c * {h * w}u + (uint32_t)iy * {w}u + (uint32_t)ix;"]
    return lines, loop, f"c * {ho * wo}u + oy * {wo}u + ox", spikes


def _pool_block(lines: list[str], body: list[str]) -> list[str]:
    return lines + ["        " + ln for ln in body] + ["    }", "}"]


def max_pool_code(gen: Gen, node: MaxPool2d) -> list[str]:
    """Over spikes: an OR of each window. Over values: the first maximum of the window's valid elements."""
    lines, loop, oi, spikes = _pool_head(gen, node)
    if spikes:
        gen.helpers.add("bit")
        body = ["uint32_t b = 0;", *loop, "        b |= BIT(xin, xi);", "    }", "}",
                f"{{ const uint32_t i = {oi}; out[i >> WSH] |= (W_T)b << (i & WM); }}"]
    else:
        body = ["float m = 0.0f;", "int first = 1;", *loop,
                "        const float v = xin[xi];",
                "        if (first || v > m) { m = v; first = 0; }", "    }", "}",
                f"out[{oi}] = m;"]
    return _pool_block(lines, body)


def sum_pool_code(gen: Gen, node: SumPool2d) -> list[str]:
    return _window_sum(gen, node, "")


def avg_pool_code(gen: Gen, node: AvgPool2d) -> list[str]:
    kh, kw = node.kernel_size
    return _window_sum(gen, node, f"y = y / {flit(kh * kw)};")


def _window_sum(gen: Gen, node: SumPool2d | AvgPool2d, div: str) -> list[str]:
    """Each window's exact sum rounded once to float32, then ``div`` (AvgPool's float32 division)."""
    lines, loop, oi, spikes = _pool_head(gen, node)
    if spikes:
        gen.helpers.add("bit")
        body = ["int32_t n = 0;", *loop, "        n += (int32_t)BIT(xin, xi);", "    }", "}",
                "{ float y = (float)n;" + (f" {div}" if div else "") + f" out[{oi}] = y; }}"]
        return _pool_block(lines, body)
    kh, kw = node.kernel_size
    c, h, w = _pool_input_shape(gen, node)
    limbs = L.limbs(253 + 24 + math.ceil(math.log2(kh * kw + 1)) + 1, 253)
    span_limit = 62 - 24 - math.ceil(math.log2(kh * kw + 1))
    gen.need_acc(limbs)
    gen.helpers.update({"xa_x", "xa_round", "i64_round", "xa_split", "xa_range", "fbits"})
    lines[-1:-1] = ["    uint32_t elo, ehi;",
                    f"    int fast;  /* input exponent span <= {span_limit}: exact int64 window sums */",
                    f"    xa_range(xin, {c * h * w}u, &elo, &ehi);",
                    f"    fast = ehi - elo <= {span_limit}u;"]
    body = ["float y;", "if (fast) {", "    int64_t n = 0;", *["    " + ln for ln in loop],
            "            uint32_t e;", "            const int32_t m = xa_split(fbits(xin[xi]), &e);",
            "            if (m) n += (int64_t)m * ((int64_t)1 << (e - elo));", "        }", "    }",
            "    y = i64_round(n, (int32_t)elo - 150);", "} else {",
            f"    memset(acc, 0, sizeof(acc[0]) * {limbs}u);", *["    " + ln for ln in loop],
            "            xa_x(acc, xin[xi]);", "        }", "    }",
            f"    y = xa_round(acc, {limbs}u, -149);", "}", (div if div else "") + f" out[{oi}] = y;"]
    return _pool_block(lines, body)


def _pool_input_shape(gen: Gen, node: Node) -> tuple[int, int, int]:
    e = gen.ticket.inputs_of(node.name)[0]
    c, h, w = gen.ticket.node(e.src).shape if e.recurrent else gen.ticket.shapes[e.src]
    return c, h, w


# ---------------------------------------------------------------------------- add
def add_code(gen: Gen, node: Add) -> list[str]:
    """The inputs summed in edge order in float32."""
    assert gen.plan is not None
    name = node.name
    refs = [gen.input_ref(name, i) for i in range(len(gen.ticket.inputs_of(name)))]
    out = gen.plan.refs[name]
    terms = [gen.elem(r, "i") for r in refs]
    lines = [f"{{   /* add '{name}': inputs summed in edge order in float32 */",
             "    uint32_t i;",
             f"    for (i = 0; i < {out.size}u; ++i) {{",
             f"        float y = {terms[0]};"]
    lines += [f"        y = y + {t};" for t in terms[1:]]
    lines += [f"        {out.expr}[i] = y;", "    }", "}"]
    return lines


# ---------------------------------------------------------------------------- neurons
def _param(gen: Gen, ident: str, values: np.ndarray, what: str) -> str:
    """Element ``i`` of a per-neuron float32 parameter (a literal when uniform)."""
    expr, is_array = gen.param(values, f"{ident}_{what}")
    return f"{expr}[i]" if is_array else expr


def li_code(gen: Gen, node: LI) -> list[str]:
    """Leaky integrator readout: ``v = (beta * v) + (I + bias)``."""
    assert gen.plan is not None
    ident = gen.plan.ident[node.name]
    xin = gen.input_ref(node.name)
    n = math.prod(node.shape)
    beta = _param(gen, ident, node.beta, "beta")
    bias = None if node.bias is None else _param(gen, ident, node.bias, "bias")
    lines = [f"{{   /* {node.kind} '{node.name}': {n} neurons, leaky integrator readout */", "    uint32_t i;",
             f"    for (i = 0; i < {n}u; ++i) {{",
             f"        float I = {gen.elem(xin, 'i')};"]
    if bias:
        lines.append(f"        I = I + {bias};")
    lines += [f"        s->v_{ident}[i] = ({beta} * s->v_{ident}[i]) + I;", "    }", "}"]
    return lines


def lif_code(gen: Gen, node: LIF) -> list[str]:
    """Charge (leaky / decay_input / leaky_tau), an RLIF's recurrent current (input 1, after the leak), delayed
    reset, fire ``v > theta``, reset; spikes packed in words."""
    assert gen.plan is not None
    ident = gen.plan.ident[node.name]
    xin = gen.input_ref(node.name)
    rec = gen.input_ref(node.name, 1) if len(gen.ticket.inputs_of(node.name)) > 1 else None
    n = math.prod(node.shape)
    beta = _param(gen, ident, node.beta, "beta")
    bias = None if node.bias is None else _param(gen, ident, node.bias, "bias")
    th = _param(gen, ident, node.threshold, "theta")
    r = _param(gen, ident, node.reset_amount, "reset") if node.reset in ("subtract", "subtract_delayed") else ""
    gen.helpers.add("bit")
    lines = [f"{{   /* {node.kind} '{node.name}': {n} neurons, charge {node.charge}, reset {node.reset} */",
             "    uint32_t i;", "    W_T sw = 0;",
             f"    for (i = 0; i < {n}u; ++i) {{",
             f"        float I = {gen.elem(xin, 'i')};",
             f"        float v = s->v_{ident}[i];",
             "        uint32_t f;"]
    if bias:
        lines.append(f"        I = I + {bias};")
    if node.charge == "leaky":
        lines.append(f"        v = ({beta} * v) + I;")
    else:
        tau = _param(gen, ident, node.tau, "tau")
        if node.charge == "decay_input":
            lines.append(f"        v = v + ((I - v) / {tau});")
        else:
            lines.append(f"        v = (v - (v / {tau})) + I;")
    if rec is not None:
        lines.append(f"        v = v + {gen.elem(rec, 'i')};")
    if node.reset == "subtract_delayed":
        lines.append(f"        v = v - ({r} * (float)BIT(s->s_{ident}, i));")
    elif node.reset == "zero_delayed":
        lines.append(f"        if (BIT(s->s_{ident}, i)) v = 0.0f;")
    lines.append(f"        f = (uint32_t)(v > {th});")
    if node.reset == "zero":
        lines.append("        if (f) v = 0.0f;")
    elif node.reset == "subtract":
        lines.append(f"        v = v - ({r} * (float)f);")
    lines += [f"        s->v_{ident}[i] = v;",
              "        sw |= (W_T)f << (i & WM);",
              f"        if ((i & WM) == WM || i == {n - 1}u) {{ s->s_{ident}[i >> WSH] = sw; sw = 0; }}",
              "    }", "}"]
    return lines
