"""Float mode, synapse layers (Linear, Conv2d): one row's sum exactly, rounded once, then scale and bias.

Per output element ``y = float32(sum_k code_k * x_k) * scale + bias`` (docs/semantics.md), where
the sum is formed in one of these ways, chosen at export from the weights and the input kind:

- spike input, binary/int8 codes: an integer count (int32, or int64 when a row's sum of
  |codes| could pass 2^31) converted once (popcounts for binary rows over dense/mask
  tables; event-driven columns ``csc`` for a Linear; tap-major for a Conv2d below 2^24);
- spike input, float32 weights: the kept weights' exact sum, in int64 on the weights'
  exponent grid when their span allows (certified at export), else the exact accumulator;
- analog input: the exact accumulator of :mod:`.runtime` (``xa_*``), with an int64 fast path
  taken at run time when the input's exponent span allows it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from slt_deploy.ir.nodes import Conv2d, Linear

from . import layers as L
from .buffers import Ref
from .gen import Gen


@dataclass
class _Layer:
    """A synapse layer being emitted: its input/output refs, flash tables and scale/bias expressions."""

    node: Linear | Conv2d
    conv: bool
    xin: Ref
    out: Ref
    wt: L.WeightTables
    scale: str | None
    per_row_scale: bool
    bias: str | None
    per_row_bias: bool

    @property
    def spikes(self) -> bool:
        return self.xin.kind == "bits"

    @property
    def kind(self) -> str:
        return self.node.weights.kind

    def scale_bias(self, pad: str) -> list[str]:
        """``y = y * scale`` then ``y = y + bias`` (float32, in this order), each line prefixed by ``pad``."""
        lines = []
        if self.scale is not None:
            lines.append(f"{pad}y = y * {self.scale + '[o]' if self.per_row_scale else self.scale};")
        if self.bias is not None:
            lines.append(f"{pad}y = y + {self.bias + '[o]' if self.per_row_bias else self.bias};")
        return lines


@dataclass
class _Sum:
    """How one row's sum is formed and rounded (see the module docstring)."""

    integer: bool              # an integer count of spike-gated codes
    acc_t: str                 # its C type
    limbs: int                 # exact accumulator limbs (0: none)
    e0: int                    # exponent of the accumulator's lowest bit
    emin: int                  # smallest weight exponent (fast_w)
    fast_w: bool               # int64 sum of float32 weights over spikes, certified at export
    fast_cx: bool              # int64 sum of code * x over analog input when the run-time span allows
    span_limit: int            # the span fast_cx allows


def linear_code(gen: Gen, node: Linear) -> list[str]:
    return synapse_code(gen, node, conv=False)


def conv_code(gen: Gen, node: Conv2d) -> list[str]:
    return synapse_code(gen, node, conv=True)


def synapse_code(gen: Gen, node: Linear | Conv2d, conv: bool) -> list[str]:
    """The C block of one synapse layer (see the module docstring for the sums it chooses)."""
    layer = _prepare(gen, node, conv)
    wt = layer.wt
    if wt.nnz == 0:
        return _empty_synapse(gen, layer)
    for t in wt.tables.values():
        gen.table(t)
    acc = _choose_sum(gen, layer)
    lines = _head(gen, layer, acc)
    if wt.layout == "csc":
        return _csc_linear(gen, layer)
    xi_lines: list[str] = []
    if conv:
        geom = _conv_geometry(gen, node)
        if acc.integer and L.row_code_bound(node.weights) < 2**24:
            return _conv_integer(gen, layer, geom, lines[:3])  # comment, xin, out
        lines += [f"    for (o = 0; o < {wt.rows}u; ++o) {{",
                  f"        const uint32_t gbase = (o / {geom['og']}u) * {geom['cin_g']}u;",
                  "        uint32_t oy, ox;",
                  f"        for (oy = 0; oy < {geom['ho']}u; ++oy) for (ox = 0; ox < {geom['wo']}u; ++ox) {{"]
        xi_lines = _conv_input_index(geom)
        indent = "            "
        out_idx = f"(o * {geom['ho'] * geom['wo']}u + oy * {geom['wo']}u + ox)"
    else:
        lines += [f"    for (o = 0; o < {wt.rows}u; ++o) {{"]
        indent = "        "
        out_idx = "o"
    lines += _row_sum(gen, layer, acc, xi_lines, indent)
    lines += layer.scale_bias(indent + "  ")
    lines.append(indent + f"  out[{out_idx}] = y; }}")
    lines += _close_rows(gen, layer)
    gen.layer_info.append({"node": node.name, "kind": node.kind, "weights": layer.kind, "layout": wt.layout,
                           "rows": wt.rows, "cols": wt.k, "kept": wt.nnz, "flash_bytes": wt.nbytes,
                           "input": "spikes" if layer.spikes else "analog", "sum": _sum_note(acc)})
    return lines


def _prepare(gen: Gen, node: Linear | Conv2d, conv: bool) -> _Layer:
    """Refs, the smallest weight layout, and the scale/bias literals or tables of ``node``."""
    assert gen.plan is not None
    ident = gen.plan.ident[node.name]
    w = node.weights
    xin = gen.input_ref(node.name)
    spikes = xin.kind == "bits"
    kind = w.kind
    wt = L.build_tables(w, f"{ident}", gen.word,
                        spike_columns=spikes and not conv and kind != "float32" and L.row_code_bound(w) < 2**24)
    scale = bias = None
    per_row_scale = per_row_bias = False
    if kind != "float32":
        scale, per_row_scale = gen.param(w.channel_scale(), f"{ident}_scale")
    if node.bias is not None:
        bias, per_row_bias = gen.param(node.bias, f"{ident}_bias")
    return _Layer(node, conv, xin, gen.plan.refs[node.name], wt, scale, per_row_scale, bias, per_row_bias)


def _choose_sum(gen: Gen, layer: _Layer) -> _Sum:
    """The accumulator: integer count, or exact float sum (int64 fast paths where exact)."""
    w, kind, spikes, terms = layer.node.weights, layer.kind, layer.spikes, layer.wt.k
    integer = spikes and kind != "float32"
    acc_t, emin, emax = "", 0, 0
    if integer:
        acc_t = "int32_t" if L.row_code_bound(w) < 2**31 else "int64_t"
        limbs, e0 = 0, 0
    elif kind == "float32":
        emin, emax = L.float_exponent_range(w)  # type: ignore[arg-type]
        if spikes:     # sum of kept weights: m * 2^(e - 150), shift e - 1
            top = (emax - 1) + 24 + math.ceil(math.log2(terms + 1)) + 1
            limbs, e0 = L.limbs(top, emax - 1), -149
        else:          # w * x: shift ew + ex - 2, 48-bit products in two halves
            smax = (emax - 1) + 253
            top = smax + 48 + math.ceil(math.log2(terms + 1)) + 1
            limbs, e0 = L.limbs(top, smax + 24), -298
    else:              # code * x, |code * m| < 2^31
        top = 253 + 31 + math.ceil(math.log2(terms + 1)) + 1
        limbs, e0 = L.limbs(top, 253), -149
    # int64 fast paths: exact whenever the terms' exponent span keeps every partial sum below 2^62
    fast_w = fast_cx = False
    span_limit = 0
    if kind == "float32" and spikes:
        fast_w = (emax - emin) + 24 + math.ceil(math.log2(terms + 1)) <= 62
    elif kind != "float32" and not spikes:
        span_limit = 62 - (24 + (0 if kind == "binary" else 7)) - math.ceil(math.log2(terms + 1))
        fast_cx = span_limit >= 0
    if fast_w:
        limbs = 0
        gen.helpers.update({"i64_round", "xa_split", "bit"})
    if fast_cx:
        gen.helpers.update({"i64_round", "xa_split", "xa_range", "fbits"})
    if limbs:
        gen.need_acc(limbs)
        gen.helpers.add("xa_round")
    return _Sum(integer, acc_t, limbs, e0, emin, fast_w, fast_cx, span_limit)


def _head(gen: Gen, layer: _Layer, acc: _Sum) -> list[str]:
    """The block's comment and declarations (run-time span test, popcount of the input row)."""
    node, wt, kind, spikes = layer.node, layer.wt, layer.kind, layer.spikes
    lines = [f"{{   /* {node.kind} '{node.name}': {wt.rows} x {wt.k}, {kind} weights, {wt.layout} layout, "
             f"{wt.nnz} kept, {'spike' if spikes else 'analog'} input */",
             f"    const {'W_T' if spikes else 'float'} *const xin = {layer.xin.expr};",
             f"    float *const out = {layer.out.expr};",
             "    uint32_t o;"]
    if wt.layout == "mask" and kind != "binary" and wt.nnz:
        lines.append("    uint32_t pbase = 0;")
    if acc.fast_cx:
        ticket = gen.ticket
        n_x = wt.k if not layer.conv else math.prod(ticket.shapes[ticket.inputs_of(node.name)[0].src])
        lines += ["    uint32_t elo, ehi;",
                  f"    int fast;  /* input exponent span <= {acc.span_limit}: exact int64 sums */",
                  f"    xa_range(xin, {n_x}u, &elo, &ehi);",
                  f"    fast = ehi - elo <= {acc.span_limit}u;"]
    if _popcount(layer) and wt.layout == "dense":
        gen.helpers.add("popc")
        full, rem = divmod(wt.k, gen.word)
        lines += ["    int32_t px = 0;  /* input spikes in the row's valid bits */"]
        if full:
            lines += ["    { uint32_t j;", f"      for (j = 0; j < {full}u; ++j) px += (int32_t)popc(xin[j]); }}"]
        if rem:
            lines += [f"    px += (int32_t)popc(xin[{full}] & (((W_T)1 << {rem}u) - 1u));"]
    return lines


def _popcount(layer: _Layer) -> bool:
    """A Linear over spikes with binary weights in dense/mask tables: the row sum is two popcounts a word."""
    return (not layer.conv) and layer.spikes and layer.kind == "binary" and layer.wt.layout in ("dense", "mask")


def _conv_geometry(gen: Gen, node: Conv2d) -> dict[str, int]:
    e_in = gen.ticket.inputs_of(node.name)[0]
    c_in, h, wdt = gen.ticket.node(e_in.src).shape if e_in.recurrent else gen.ticket.shapes[e_in.src]
    _, ho, wo = gen.ticket.shapes[node.name]
    kh, kw = node.kernel_size
    (sh, sw), (ph, pw), (dh, dw), g = node.stride, node.padding, node.dilation, node.groups
    rows = int(node.weights.mask.shape[0])
    return dict(rows=rows, c_in=c_in, h=h, w=wdt, ho=ho, wo=wo, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
                dh=dh, dw=dw, og=rows // g, cin_g=c_in // g)


def _conv_input_index(g: dict[str, int]) -> list[str]:
    """Lines that open the bounds check of tap ``kk`` and set ``xi``, its input element."""
    kh, kw, h, wdt = g["kh"], g["kw"], g["h"], g["w"]
    return [f"const uint32_t c = kk / {kh * kw}u, r = kk % {kh * kw}u;",
            f"const int32_t iy = (int32_t)(oy * {g['sh']}u + (r / {kw}u) * {g['dh']}u) - {g['ph']};",
            f"const int32_t ix = (int32_t)(ox * {g['sw']}u + (r % {kw}u) * {g['dw']}u) - {g['pw']};",
            f"if (iy >= 0 && iy < {h} && ix >= 0 && ix < {wdt}) {{",
            f"    const uint32_t xi = (gbase + c) * {h * wdt}u + (uint32_t)iy * {wdt}u + (uint32_t)ix;"]


def _inner(gen: Gen, layer: _Layer, acc: _Sum) -> Callable[[str, str], list[str]]:
    """What one kept synapse (input element ``xi``, code ``code``) adds to the row's sum."""
    kind, spikes = layer.kind, layer.spikes

    def inner(xi: str, code: str) -> list[str]:
        if acc.integer:
            gen.helpers.add("bit")
            return [f"n += ({acc.acc_t})BIT(xin, {xi}) * {code};"]  # branch-free: spikes are unpredictable
        if kind == "float32" and spikes:
            gen.helpers.update({"bit", "xa_w"})
            return [f"if (BIT(xin, {xi})) xa_w(acc, {code});"]
        if kind == "float32":
            gen.helpers.add("xa_wx")
            return [f"xa_wx(acc, {code}, xin[{xi}]);"]
        gen.helpers.add("xa_cx")
        return [f"xa_cx(acc, {code}, xin[{xi}]);"]

    return inner


def _inner_fast(acc: _Sum) -> Callable[[str, str], list[str]]:
    """What one kept synapse adds to the int64 sum of a fast path."""

    def inner_fast(xi: str, code: str) -> list[str]:
        if acc.fast_w:
            return [f"if (BIT(xin, {xi})) {{ uint32_t e; const int32_t m = xa_split({code}, &e);",
                    f"    if (m) n += (int64_t)m * ((int64_t)1 << (e - {acc.emin}u)); }}"]
        return [f"{{ uint32_t e; const int32_t m = xa_split(fbits(xin[{xi}]), &e);",
                f"  if (m) n += (int64_t)({code} * m) * ((int64_t)1 << (e - elo)); }}"]

    return inner_fast


def _row_sum(gen: Gen, layer: _Layer, acc: _Sum, xi_lines: list[str], indent: str) -> list[str]:
    """``{ float y;`` then the row's sum formed and rounded once into ``y``."""
    wt, conv = layer.wt, layer.conv
    inner, inner_fast = _inner(gen, layer, acc), _inner_fast(acc)
    code = [indent + "{ float y;"]
    if acc.integer:
        code.append(indent + f"{acc.acc_t} n = 0;")
    elif acc.fast_w:
        code.append(indent + "int64_t n = 0;")
    elif acc.fast_cx:
        code.append(indent + "if (fast) {")
        code.append(indent + "    int64_t n = 0;")
        code += [indent + "    " + ln for ln in gen.iterate(wt, conv, xi_lines, inner_fast)]
        code.append(indent + "    y = i64_round(n, (int32_t)elo - 150);")
        code.append(indent + "} else {")
        code.append(indent + f"    memset(acc, 0, sizeof(acc[0]) * {acc.limbs}u);")
    else:
        code.append(indent + f"memset(acc, 0, sizeof(acc[0]) * {acc.limbs}u);")

    if _popcount(layer):
        code += _popcount_sum(gen, layer, acc, indent)
    elif acc.fast_w:
        code += [indent + ln for ln in gen.iterate(wt, conv, xi_lines, inner_fast)]
    elif acc.fast_cx:
        code += [indent + "    " + ln for ln in gen.iterate(wt, conv, xi_lines, inner)]
    else:
        code += [indent + ln for ln in gen.iterate(wt, conv, xi_lines, inner)]

    # finish: round once
    if acc.integer:
        code.append(indent + "y = (float)n;")
    elif acc.fast_w:
        code.append(indent + f"y = i64_round(n, {acc.emin - 150});")
    elif acc.fast_cx:
        code.append(indent + f"    y = xa_round(acc, {acc.limbs}u, {acc.e0});")
        code.append(indent + "}")
    else:
        code.append(indent + f"y = xa_round(acc, {acc.limbs}u, {acc.e0});")
    return code


def _popcount_sum(gen: Gen, layer: _Layer, acc: _Sum, indent: str) -> list[str]:
    """Binary weights over spikes: ``n = #(x & keep) - 2 #(x & neg)`` a word at a time."""
    wt = layer.wt
    gen.helpers.add("popc")
    if wt.layout == "dense":
        neg = wt.tables["neg"].name
        return [indent + "{ uint32_t jj; int32_t nn = 0;",
                indent + f"  for (jj = 0; jj < {wt.wpr}u; ++jj)",
                indent + f"    nn += (int32_t)popc({neg}[o * {wt.wpr}u + jj] & xin[jj]);",
                indent + "  n = px - 2 * nn; }"]
    m, neg = wt.tables["mask"].name, wt.tables["neg"].name
    return [indent + "{ uint32_t jj;",
            indent + f"  for (jj = 0; jj < {wt.wpr}u; ++jj) {{",
            indent + "    const W_T xw = xin[jj];",
            indent + f"    n += ({acc.acc_t})popc({m}[o * {wt.wpr}u + jj] & xw)",
            indent + f"         - 2 * ({acc.acc_t})popc({neg}[o * {wt.wpr}u + jj] & xw);",
            indent + "  } }"]


def _close_rows(gen: Gen, layer: _Layer) -> list[str]:
    """Close the row (and output pixel) loops; a conv over a mask layout advances its value base per row."""
    wt, conv = layer.wt, layer.conv
    code: list[str] = []
    if wt.layout == "mask" and layer.kind != "binary" and wt.nnz:
        if conv:
            gen.helpers.add("popc")
            code.append("        }")
            code.append(f"        {{ uint32_t jj; for (jj = 0; jj < {wt.wpr}u; ++jj) "
                        f"pbase += popc({wt.tables['mask'].name}[o * {wt.wpr}u + jj]); }}")
            code.append("    }")
        else:
            code.append("    }")
    else:
        code.append("        }" if conv else "    }")
        if conv:
            code.append("    }")
    code.append("}")
    return code


def _sum_note(acc: _Sum) -> str:
    if acc.integer:
        return "int32"
    if acc.fast_w:
        return "int64 (exponent span certified at export)"
    if acc.fast_cx:
        return (f"int64 when the input's exponent span <= {acc.span_limit}, else exact "
                f"accumulator ({acc.limbs} limbs)")
    return f"exact accumulator, {acc.limbs} limbs"


def _conv_integer(gen: Gen, layer: _Layer, geom: dict[str, int], head: list[str]) -> list[str]:
    """Conv2d over spikes with integer codes, tap-major: partial sums are integers below 2^24, exact in float32."""
    gen.helpers.add("bit")
    code = list(head)
    code += gen.conv_tap_major(layer.wt, geom, "float", "out", "0.0f", "const float fc = (float)cc;",
                               lambda xi, dst: f"if (BIT(xin, {xi})) {dst} += fc;",
                               lambda dst: f"{dst} += fc;")
    code += [f"        {{ uint32_t j; for (j = 0; j < {geom['ho'] * geom['wo']}u; ++j) {{",
             "            float y = plane[j];"]
    code += layer.scale_bias("            ")
    code += ["            plane[j] = y;", "        } }", "    }", "}"]
    wt, node = layer.wt, layer.node
    gen.layer_info.append({"node": node.name, "kind": node.kind, "weights": layer.kind, "layout": wt.layout,
                           "rows": wt.rows, "cols": wt.k, "kept": wt.nnz, "flash_bytes": wt.nbytes,
                           "input": "spikes", "sum": "integer, tap-major (exact in float32 below 2^24)"})
    return code


def _csc_linear(gen: Gen, layer: _Layer) -> list[str]:
    """Linear over spikes, event-driven: each input spike adds its column's codes.

    Partial sums are integers below 2^24 (checked at export), so float32 accumulation
    is exact in any order and equals float32(n) of the row's integer count.
    """
    gen.helpers.add("ctz")
    wt, node = layer.wt, layer.node
    k, rows = wt.k, wt.rows
    cp, ridx = wt.tables["cp"].name, wt.tables["ridx"].name
    full, rem = divmod(k, gen.word)
    nw = full + (1 if rem else 0)
    lines = [f"{{   /* linear '{node.name}': {rows} x {k}, {wt.kind} weights, csc layout (event-driven), "
             f"{wt.nnz} kept, spike input */",
             f"    const W_T *const xin = {layer.xin.expr};",
             f"    float *const out = {layer.out.expr};",
             "    uint32_t o, j;",
             f"    for (o = 0; o < {rows}u; ++o) out[o] = 0.0f;",
             f"    for (j = 0; j < {nw}u; ++j) {{",
             "        W_T bw = xin[j];"]
    if rem:
        lines.append(f"        if (j == {full}u) bw &= ((W_T)1 << {rem}u) - 1u;")
    lines += ["        while (bw) {",
              "            const uint32_t kk = j * WB + ctz(bw);",
              "            uint32_t p;",
              "            bw &= bw - 1u;"]
    if wt.kind == "binary":
        cn = wt.tables["cn"].name
        lines += [f"            for (p = {cp}[kk]; p < {cn}[kk]; ++p) out[{ridx}[p]] += 1.0f;",
                  f"            for (p = {cn}[kk]; p < {cp}[kk + 1u]; ++p) out[{ridx}[p]] -= 1.0f;"]
    else:
        val = wt.tables["val"].name
        lines += [f"            for (p = {cp}[kk]; p < {cp}[kk + 1u]; ++p) out[{ridx}[p]] += (float){val}[p];"]
    lines += ["        }", "    }", f"    for (o = 0; o < {rows}u; ++o) {{", "        float y = out[o];"]
    lines += layer.scale_bias("        ")
    lines += ["        out[o] = y;", "    }", "}"]
    gen.layer_info.append({"node": node.name, "kind": node.kind, "weights": wt.kind, "layout": "csc",
                           "rows": rows, "cols": k, "kept": wt.nnz, "flash_bytes": wt.nbytes, "input": "spikes",
                           "sum": "integer, event-driven (exact in float32 below 2^24)"})
    return lines


def _empty_synapse(gen: Gen, layer: _Layer) -> list[str]:
    """No kept synapse: the sum is +0, then the same scale and bias operations."""
    node, out = layer.node, layer.out
    rows = node.weights.mask.shape[0]
    per = out.size // rows
    lines = [f"{{   /* {node.kind} '{node.name}': no kept synapse, output = (0 * scale) + bias */",
             f"    float *const out = {out.expr};", "    uint32_t o, j;",
             f"    for (o = 0; o < {rows}u; ++o) for (j = 0; j < {per}u; ++j) {{", "        float y = 0.0f;"]
    lines += layer.scale_bias("        ")
    lines += [f"        out[o * {per}u + j] = y;", "    }", "}"]
    gen.layer_info.append({"node": node.name, "kind": node.kind, "weights": node.weights.kind, "layout": "empty",
                           "rows": rows, "cols": int(node.weights.mask[0].size), "kept": 0, "flash_bytes": 0,
                           "input": "n/a", "sum": "none"})
    return lines
