"""C99 code generation, float mode: the float32 reference, operation for operation.

Exactness (docs/semantics.md, docs/edge.md):

- Synaptic sums over spike inputs with binary/int8 weights are integer counts (int32, or
  int64 when a row's sum of |codes| could pass 2^31), converted once to float32.
- Every other synaptic or Sum/Avg-pool sum (analog inputs, float32 weights) goes through
  the exact integer accumulator of :mod:`.runtime` and is rounded once to float32, so it
  equals the exactly rounded sum the reference defines, whatever the order of terms.
- Scale, bias, Add, AvgPool's division and the neuron updates are single float32
  operations in the reference's order; the code must be compiled without FMA contraction
  (``-ffp-contract=off``, which the file also requests from GCC and Clang) and without
  ``-ffast-math`` (refused with ``#error``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from slt_deploy.errors import SltUnsupportedError
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.neurons import LI, LIF
from slt_deploy.ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, SumPool2d

from . import layers as L
from .plan import Plan, Ref, make_plan, recurrent_ref
from .runtime import helper_source


def flit(x: float | np.floating) -> str:
    """An exact C float literal (hexadecimal) for a float32 value."""
    v = float(np.float32(x))
    if v == 0.0:
        return "-0.0f" if math.copysign(1.0, v) < 0 else "0.0f"
    mant, _, exp = v.hex().partition("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def c_array(table: L.Table, fmt: str, per_line: int = 12) -> str:
    vals = [fmt.format(int(v)) if table.ctype != "float" else flit(v) for v in table.values.reshape(-1)]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {table.ctype} {table.name}[{max(1, table.values.size)}] = {{\n    {body}\n}};\n"


def _fmt(ctype: str) -> str:
    return {"uint8_t": "{}u", "uint16_t": "{}u", "uint32_t": "0x{:08x}u", "uint64_t": "0x{:016x}ull",
            "int8_t": "{}", "float": "{}"}[ctype]


@dataclass
class Gen:
    ticket: Ticket
    prefix: str
    word: int
    plan: Plan
    tables: list[L.Table] = field(default_factory=list)
    helpers: set[str] = field(default_factory=set)
    acc_limbs: int = 0
    layer_info: list[dict] = field(default_factory=list)

    # ------------------------------------------------------------------ helpers
    @property
    def wt(self) -> str:
        return "uint32_t" if self.word == 32 else "uint64_t"

    def table(self, t: L.Table) -> str:
        self.tables.append(t)
        return t.name

    def param(self, values: np.ndarray, name: str) -> tuple[str, bool]:
        """A per-element float32 parameter: a literal when all elements share one bit pattern."""
        flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        u = flat.view("<u4")
        if flat.size and np.all(u == u[0]):
            return flit(flat[0]), False
        self.tables.append(L.Table("float", name, flat, 4))
        return name, True

    def elem(self, ref: Ref, idx: str) -> str:
        """C expression of element ``idx`` of ``ref`` as float32."""
        if ref.kind == "bits":
            self.helpers.add("bit")
            return f"(float)BIT({ref.expr}, {idx})"
        return f"{ref.expr}[{idx}]"

    def input_ref(self, name: str, edge_index: int = 0) -> Ref:
        e = self.ticket.inputs_of(name)[edge_index]
        return recurrent_ref(self.plan, name, e.src) if e.recurrent else self.plan.refs[e.src]

    def need_acc(self, n: int) -> None:
        self.acc_limbs = max(self.acc_limbs, n)

    # ------------------------------------------------------------------ nodes
    def node_code(self, name: str) -> list[str]:
        node = self.ticket.node(name)
        if isinstance(node, Input):
            return self.input_code(name)
        if isinstance(node, (Linear, Conv2d)):
            return self.synapse_code(node)
        if isinstance(node, (SumPool2d, AvgPool2d, MaxPool2d)):
            return self.pool_code(node)
        if isinstance(node, Add):
            return self.add_code(node)
        if isinstance(node, (LIF, LI)):
            return self.neuron_code(node)
        if isinstance(node, (Flatten, Output)):
            return []
        raise SltUnsupportedError(f"C export: node '{name}' of kind '{node.kind}' is not supported")

    def input_code(self, name: str) -> list[str]:
        ref = self.plan.refs[name]
        kind = self.ticket.encoding.kind
        n = ref.size
        if kind == "direct" or ref.expr == "x":
            return []
        nw = self.plan.nwords(n)
        if kind == "spikes":  # 64-bit words from the caller's 32-bit halves
            return [f"{{   /* input '{name}': spike frame, 32-bit halves -> 64-bit words */",
                    "    uint32_t j;",
                    f"    for (j = 0; j < {nw}u; ++j)",
                    f"        {ref.expr}[j] = (uint64_t)x[2u * j] | ((uint64_t)x[2u * j + 1u] << 32);",
                    "}"]
        self.helpers.update({"pcg64", "rate_fire"})
        return [f"{{   /* input '{name}': rate code, u < p with u from numpy's PCG64 stream */",
                "    uint32_t i;",
                f"    memset({ref.expr}, 0, sizeof(W_T) * {nw}u);",
                f"    for (i = 0; i < {n}u; ++i)",
                f"        if (rate_fire(pcg64_next(s->rng), x[i])) {ref.expr}[i >> WSH] |= (W_T)1 << (i & WM);",
                "}"]

    # ------------------------------------------------------------------ synapses
    def synapse_code(self, node: Linear | Conv2d) -> list[str]:
        name = node.name
        ident = self.plan.ident[name]
        w = node.weights
        xin = self.input_ref(name)
        out = self.plan.refs[name]
        conv = isinstance(node, Conv2d)
        spikes = xin.kind == "bits"
        kind = w.kind
        wt = L.build_tables(w, f"{ident}", self.word,
                            spike_columns=spikes and not conv and kind != "float32" and L.row_code_bound(w) < 2**24)
        rows, k = wt.rows, wt.k
        scale = bias = None
        per_row_scale = per_row_bias = False
        if kind != "float32":
            scale, per_row_scale = self.param(w.channel_scale(), f"{ident}_scale")
        if node.bias is not None:
            bias, per_row_bias = self.param(node.bias, f"{ident}_bias")
        if wt.nnz == 0:
            return self._empty_synapse(node, out, scale, per_row_scale, bias, per_row_bias)
        for t in wt.tables.values():
            self.table(t)

        # the accumulator: integer count, or exact float sum
        integer = spikes and kind != "float32"
        terms = k
        if integer:
            acc_t = "int32_t" if L.row_code_bound(w) < 2**31 else "int64_t"
            limbs, e0 = 0, 0
        elif kind == "float32":
            emin, emax = L.float_exponent_range(w)
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
            self.helpers.update({"i64_round", "xa_split", "bit"})
        if fast_cx:
            self.helpers.update({"i64_round", "xa_split", "xa_range", "fbits"})
        if limbs:
            self.need_acc(limbs)
            self.helpers.add("xa_round")

        def inner_fast(xi: str, code: str) -> list[str]:
            if fast_w:
                return [f"if (BIT(xin, {xi})) {{ uint32_t e; const int32_t m = xa_split({code}, &e);",
                        f"    if (m) n += (int64_t)m * ((int64_t)1 << (e - {emin}u)); }}"]
            return [f"{{ uint32_t e; const int32_t m = xa_split(fbits(xin[{xi}]), &e);",
                    f"  if (m) n += (int64_t)({code} * m) * ((int64_t)1 << (e - elo)); }}"]

        # what one kept synapse (column k, code c) adds
        def inner(xi: str, code: str) -> list[str]:
            if integer:
                self.helpers.add("bit")
                return [f"n += ({acc_t})BIT(xin, {xi}) * {code};"]  # branch-free: spikes are unpredictable
            if kind == "float32" and spikes:
                self.helpers.update({"bit", "xa_w"})
                return [f"if (BIT(xin, {xi})) xa_w(acc, {code});"]
            if kind == "float32":
                self.helpers.add("xa_wx")
                return [f"xa_wx(acc, {code}, xin[{xi}]);"]
            self.helpers.add("xa_cx")
            return [f"xa_cx(acc, {code}, xin[{xi}]);"]

        lines = [f"{{   /* {node.kind} '{name}': {rows} x {k}, {kind} weights, {wt.layout} layout, "
                 f"{wt.nnz} kept, {'spike' if spikes else 'analog'} input */",
                 f"    const {'W_T' if spikes else 'float'} *const xin = {xin.expr};",
                 f"    float *const out = {out.expr};",
                 "    uint32_t o;"]
        if wt.layout == "mask" and kind != "binary" and wt.nnz:
            lines.append("    uint32_t pbase = 0;")
        if fast_cx:
            n_x = k if not conv else math.prod(self.ticket.shapes[self.ticket.inputs_of(name)[0].src])
            lines += ["    uint32_t elo, ehi;",
                      f"    int fast;  /* input exponent span <= {span_limit}: exact int64 sums */",
                      f"    xa_range(xin, {n_x}u, &elo, &ehi);",
                      f"    fast = ehi - elo <= {span_limit}u;"]
        popcount = (not conv) and spikes and kind == "binary" and wt.layout in ("dense", "mask")
        if popcount and wt.layout == "dense":
            self.helpers.add("popc")
            full, rem = divmod(k, self.word)
            lines += ["    int32_t px = 0;  /* input spikes in the row's valid bits */"]
            if full:
                lines += ["    { uint32_t j;", f"      for (j = 0; j < {full}u; ++j) px += (int32_t)popc(xin[j]); }}"]
            if rem:
                lines += [f"    px += (int32_t)popc(xin[{full}] & (((W_T)1 << {rem}u) - 1u));"]
        if conv:
            e_in = self.ticket.inputs_of(name)[0]
            c_in, h, wdt = self.ticket.node(e_in.src).shape if e_in.recurrent else self.ticket.shapes[e_in.src]
            _, ho, wo = self.ticket.shapes[name]
            kh, kw = node.kernel_size
            (sh, sw), (ph, pw), (dh, dw), g = node.stride, node.padding, node.dilation, node.groups
            cin_g = c_in // g
            og = rows // g
            lines += [f"    for (o = 0; o < {rows}u; ++o) {{",
                      f"        const uint32_t gbase = (o / {og}u) * {cin_g}u;",
                      "        uint32_t oy, ox;",
                      f"        for (oy = 0; oy < {ho}u; ++oy) for (ox = 0; ox < {wo}u; ++ox) {{"]
            body_pre = []
            xi_lines = [f"const uint32_t c = kk / {kh * kw}u, r = kk % {kh * kw}u;",
                        f"const int32_t iy = (int32_t)(oy * {sh}u + (r / {kw}u) * {dh}u) - {ph};",
                        f"const int32_t ix = (int32_t)(ox * {sw}u + (r % {kw}u) * {dw}u) - {pw};",
                        f"if (iy >= 0 && iy < {h} && ix >= 0 && ix < {wdt}) {{",
                        f"    const uint32_t xi = (gbase + c) * {h * wdt}u + (uint32_t)iy * {wdt}u + (uint32_t)ix;"]
            indent = "            "
            out_idx = f"(o * {ho * wo}u + oy * {wo}u + ox)"
        else:
            lines += [f"    for (o = 0; o < {rows}u; ++o) {{"]
            body_pre, xi_lines = [], []
            indent = "        "
            out_idx = "o"
        if wt.layout == "csc":
            return self._csc_linear(node, wt, xin, out, scale, per_row_scale, bias, per_row_bias)
        if conv and integer and L.row_code_bound(w) < 2**24:
            geom = dict(rows=rows, c_in=c_in, h=h, w=wdt, ho=ho, wo=wo, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
                        dh=dh, dw=dw, og=og, cin_g=cin_g)
            self.helpers.add("bit")
            code = lines[:3]  # comment, xin, out
            code += self.conv_tap_major(wt, geom, "float", "out", "0.0f", "const float fc = (float)cc;",
                                        lambda xi, dst: f"if (BIT(xin, {xi})) {dst} += fc;",
                                        lambda dst: f"{dst} += fc;")
            code += [f"        {{ uint32_t j; for (j = 0; j < {ho * wo}u; ++j) {{",
                     "            float y = plane[j];"]
            if scale is not None:
                code.append(f"            y = y * {scale + '[o]' if per_row_scale else scale};")
            if bias is not None:
                code.append(f"            y = y + {bias + '[o]' if per_row_bias else bias};")
            code += ["            plane[j] = y;", "        } }", "    }", "}"]
            self.layer_info.append({"node": name, "kind": node.kind, "weights": kind, "layout": wt.layout,
                                    "rows": rows, "cols": k, "kept": wt.nnz, "flash_bytes": wt.nbytes,
                                    "input": "spikes", "sum": "integer, tap-major (exact in float32 below 2^24)"})
            return code
        code = lines
        code += [indent + ln for ln in body_pre]
        code.append(indent + "{ float y;")
        if integer:
            code.append(indent + f"{acc_t} n = 0;")
        elif fast_w:
            code.append(indent + "int64_t n = 0;")
        elif fast_cx:
            code.append(indent + "if (fast) {")
            code.append(indent + "    int64_t n = 0;")
            code += [indent + "    " + ln for ln in self._iterate(wt, conv, xi_lines, inner_fast)]
            code.append(indent + "    y = i64_round(n, (int32_t)elo - 150);")
            code.append(indent + "} else {")
            code.append(indent + f"    memset(acc, 0, sizeof(acc[0]) * {limbs}u);")
        else:
            code.append(indent + f"memset(acc, 0, sizeof(acc[0]) * {limbs}u);")

        if popcount:
            self.helpers.add("popc")
            if wt.layout == "dense":
                neg = wt.tables["neg"].name
                code += [indent + "{ uint32_t jj; int32_t nn = 0;",
                         indent + f"  for (jj = 0; jj < {wt.wpr}u; ++jj)",
                         indent + f"    nn += (int32_t)popc({neg}[o * {wt.wpr}u + jj] & xin[jj]);",
                         indent + "  n = px - 2 * nn; }"]
            else:
                m, neg = wt.tables["mask"].name, wt.tables["neg"].name
                code += [indent + "{ uint32_t jj;",
                         indent + f"  for (jj = 0; jj < {wt.wpr}u; ++jj) {{",
                         indent + "    const W_T xw = xin[jj];",
                         indent + f"    n += ({acc_t})popc({m}[o * {wt.wpr}u + jj] & xw)",
                         indent + f"         - 2 * ({acc_t})popc({neg}[o * {wt.wpr}u + jj] & xw);",
                         indent + "  } }"]
        elif fast_w:
            code += [indent + ln for ln in self._iterate(wt, conv, xi_lines, inner_fast)]
        elif fast_cx:
            code += [indent + "    " + ln for ln in self._iterate(wt, conv, xi_lines, inner)]
        else:
            code += [indent + ln for ln in self._iterate(wt, conv, xi_lines, inner)]

        # finish: round once, scale, bias
        if integer:
            code.append(indent + "y = (float)n;")
        elif fast_w:
            code.append(indent + f"y = i64_round(n, {emin - 150});")
        elif fast_cx:
            code.append(indent + f"    y = xa_round(acc, {limbs}u, {e0});")
            code.append(indent + "}")
        else:
            code.append(indent + f"y = xa_round(acc, {limbs}u, {e0});")
        if scale is not None:
            code.append(indent + f"  y = y * {scale + '[o]' if per_row_scale else scale};")
        if bias is not None:
            code.append(indent + f"  y = y + {bias + '[o]' if per_row_bias else bias};")
        code.append(indent + f"  out[{out_idx}] = y; }}")
        if wt.layout == "mask" and kind != "binary" and wt.nnz:
            if conv:
                self.helpers.add("popc")
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
        self.layer_info.append({"node": name, "kind": node.kind, "weights": kind, "layout": wt.layout,
                                "rows": rows, "cols": k, "kept": wt.nnz, "flash_bytes": wt.nbytes,
                                "input": "spikes" if spikes else "analog",
                                "sum": "int32" if integer else "int64 (exponent span certified at export)" if fast_w
                                else f"int64 when the input's exponent span <= {span_limit}, else exact "
                                     f"accumulator ({limbs} limbs)" if fast_cx
                                else f"exact accumulator, {limbs} limbs"})
        return code

    def _csc_linear(self, node: Linear, wt: L.WeightTables, xin: Ref, out: Ref, scale: str | None,
                    per_row_scale: bool, bias: str | None, per_row_bias: bool) -> list[str]:
        """Linear over spikes, event-driven: each input spike adds its column's codes.

        Partial sums are integers below 2^24 (checked at export), so float32 accumulation
        is exact in any order and equals float32(n) of the row's integer count.
        """
        self.helpers.add("ctz")
        k, rows = wt.k, wt.rows
        cp, ridx = wt.tables["cp"].name, wt.tables["ridx"].name
        full, rem = divmod(k, self.word)
        nw = full + (1 if rem else 0)
        lines = [f"{{   /* linear '{node.name}': {rows} x {k}, {wt.kind} weights, csc layout (event-driven), "
                 f"{wt.nnz} kept, spike input */",
                 f"    const W_T *const xin = {xin.expr};",
                 f"    float *const out = {out.expr};",
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
        if scale is not None:
            lines.append(f"        y = y * {scale + '[o]' if per_row_scale else scale};")
        if bias is not None:
            lines.append(f"        y = y + {bias + '[o]' if per_row_bias else bias};")
        lines += ["        out[o] = y;", "    }", "}"]
        self.layer_info.append({"node": node.name, "kind": node.kind, "weights": wt.kind, "layout": "csc",
                                "rows": rows, "cols": k, "kept": wt.nnz, "flash_bytes": wt.nbytes, "input": "spikes",
                                "sum": "integer, event-driven (exact in float32 below 2^24)"})
        return lines

    def conv_tap_major(self, wt: L.WeightTables, g: dict, ctype: str, out: str, zero: str | None, per_tap: str,
                       add, event=None) -> list[str]:
        """Conv over spike (or integer) input, one kept tap at a time over whole output rows.

        For output channel ``o`` and kept tap (c, ky, kx) with code ``cc`` the valid output
        rows/columns are computed once, so the inner loop has no bounds checks. The caller's
        ``add(xi, dst)`` adds input element ``xi`` into ``dst``; partial sums must be exact in
        any order (integers below 2^24 in float32, or modular uint32).
        Leaves ``plane`` (the channel's outputs) open for the caller's finishing loop.
        """
        khw, sw = g["kh"] * g["kw"], g["sw"]
        lines = ["    uint32_t o;"]
        if wt.layout == "mask" and wt.kind != "binary":
            lines.append("    uint32_t pbase = 0;")
        lines += [f"    for (o = 0; o < {g['rows']}u; ++o) {{",
                  f"        {ctype} *const plane = {out} + o * {g['ho'] * g['wo']}u;",
                  f"        const uint32_t gbase = (o / {g['og']}u) * {g['cin_g']}u;",
                  ]
        if zero is not None:
            lines.append(f"        {{ uint32_t j; for (j = 0; j < {g['ho'] * g['wo']}u; ++j) plane[j] = {zero}; }}")
        tap = [f"const uint32_t c = kk / {khw}u, r = kk % {khw}u;",
               f"const int32_t dy = (int32_t)((r / {g['kw']}u) * {g['dh']}u) - {g['ph']};",
               f"const int32_t dx = (int32_t)((r % {g['kw']}u) * {g['dw']}u) - {g['pw']};",
               f"const int32_t y0 = dy >= 0 ? 0 : (-dy + {g['sh'] - 1}) / {g['sh']};",
               f"const int32_t x0 = dx >= 0 ? 0 : (-dx + {g['sw'] - 1}) / {g['sw']};",
               f"int32_t y1 = {g['h'] - 1} - dy < 0 ? 0 : ({g['h'] - 1} - dy) / {g['sh']} + 1;",
               f"int32_t x1 = {g['w'] - 1} - dx < 0 ? 0 : ({g['w'] - 1} - dx) / {g['sw']} + 1;",
               "int32_t oy, ox;",
               per_tap,
               f"if (y1 > {g['ho']}) y1 = {g['ho']};",
               f"if (x1 > {g['wo']}) x1 = {g['wo']};",
               "for (oy = y0; oy < y1; ++oy) {",
               f"    const uint32_t rowi = (gbase + c) * {g['h'] * g['w']}u"
               f" + (uint32_t)(oy * {g['sh']} + dy) * {g['w']}u;",
               f"    {ctype} *const prow = plane + (uint32_t)oy * {g['wo']}u;"]
        if event is not None and sw == 1:  # spikes, stride 1: visit the set bits of the row only
            self.helpers.update({"bits_at", "ctz"})
            nw = -(-g["c_in"] * g["h"] * g["w"] // 64) * (64 // self.word)
            tap += ["    for (ox = x0; ox < x1; ox += (int32_t)WB) {",
                    "        W_T bw = bits_at(xin, rowi + (uint32_t)(ox + dx), " + f"{nw}u);",
                    "        if ((uint32_t)(x1 - ox) < WB) bw &= ((W_T)1 << (uint32_t)(x1 - ox)) - 1u;",
                    f"        while (bw) {{ {event('prow[ox + (int32_t)ctz(bw)]')} bw &= bw - 1u; }}",
                    "    }", "}"]
        else:
            tap += [f"    for (ox = x0; ox < x1; ++ox) {add(f'rowi + (uint32_t)(ox * {sw} + dx)', 'prow[ox]')}", "}"]
        lines += ["        " + ln for ln in self._iterate(wt, False, [], lambda xi, cc: tap)]
        return lines

    def _empty_synapse(self, node: Linear | Conv2d, out: Ref, scale: str | None, per_row_scale: bool,
                       bias: str | None, per_row_bias: bool) -> list[str]:
        """No kept synapse: the sum is +0, then the same scale and bias operations."""
        rows = node.weights.mask.shape[0]
        per = out.size // rows
        lines = [f"{{   /* {node.kind} '{node.name}': no kept synapse, output = (0 * scale) + bias */",
                 f"    float *const out = {out.expr};", "    uint32_t o, j;",
                 f"    for (o = 0; o < {rows}u; ++o) for (j = 0; j < {per}u; ++j) {{", "        float y = 0.0f;"]
        if scale is not None:
            lines.append(f"        y = y * {scale + '[o]' if per_row_scale else scale};")
        if bias is not None:
            lines.append(f"        y = y + {bias + '[o]' if per_row_bias else bias};")
        lines += [f"        out[o * {per}u + j] = y;", "    }", "}"]
        self.layer_info.append({"node": node.name, "kind": node.kind, "weights": node.weights.kind, "layout": "empty",
                                "rows": rows, "cols": int(node.weights.mask[0].size), "kept": 0, "flash_bytes": 0,
                                "input": "n/a", "sum": "none"})
        return lines

    def _iterate(self, wt: L.WeightTables, conv: bool, xi_lines: list[str], inner) -> list[str]:
        """Loop over the kept synapses of row ``o``: ``kk`` column, a code expression."""
        kind = wt.kind
        out: list[str] = []

        def body(code_expr: str) -> list[str]:
            if conv:
                res = list(xi_lines)
                res += ["    " + ln for ln in inner("xi", code_expr)]
                res.append("}")
                return res
            return inner("kk", code_expr)

        if wt.layout == "dense":
            out.append(f"{{ uint32_t kk; for (kk = 0; kk < {wt.k}u; ++kk) {{")
            if kind == "binary":
                neg = wt.tables["neg"].name
                out.append(f"    const int32_t cc = BIT({neg} + o * {wt.wpr}u, kk) ? -1 : 1;")
                self.helpers.add("bit")
            else:
                val = wt.tables["val"].name
                ct = "int32_t" if kind == "int8" else "uint32_t"
                out.append(f"    const {ct} cc = ({ct}){val}[o * {wt.k}u + kk];")
            out += ["    " + ln for ln in body("cc")]
            out.append("} }")
        elif wt.layout == "mask":
            if wt.nnz == 0:
                return []
            self.helpers.add("ctz")
            m = wt.tables["mask"].name
            out.append("{ uint32_t j;" + (" uint32_t p = pbase;" if kind != "binary" else ""))
            out.append(f"  for (j = 0; j < {wt.wpr}u; ++j) {{")
            out.append(f"    W_T mw = {m}[o * {wt.wpr}u + j];")
            out.append("    while (mw) {")
            out.append("      const uint32_t kk = j * WB + ctz(mw);")
            out.append("      mw &= mw - 1u;")
            if kind == "binary":
                neg = wt.tables["neg"].name
                self.helpers.add("bit")
                out.append(f"      {{ const int32_t cc = BIT({neg} + o * {wt.wpr}u, kk) ? -1 : 1;")
            else:
                val = wt.tables["val"].name
                ct = "int32_t" if kind == "int8" else "uint32_t"
                out.append(f"      {{ const {ct} cc = ({ct}){val}[p++];")
            out += ["        " + ln for ln in body("cc")]
            out.append("      }")
            out.append("    }")
            out.append("  } }" if conv or kind == "binary" else "  } pbase = p; }")
        else:
            if wt.nnz == 0:
                return []
            rp, idx = wt.tables["rp"].name, wt.tables["idx"].name
            out.append("{ uint32_t p;")
            out.append(f"  for (p = {rp}[o]; p < {rp}[o + 1u]; ++p) {{")
            out.append(f"    const uint32_t kk = {idx}[p];")
            if kind == "binary":
                sg = wt.tables["sgn"].name
                self.helpers.add("bit")
                out.append(f"    const int32_t cc = BIT({sg}, p) ? -1 : 1;")
            else:
                val = wt.tables["val"].name
                ct = "int32_t" if kind == "int8" else "uint32_t"
                out.append(f"    const {ct} cc = ({ct}){val}[p];")
            out += ["    " + ln for ln in body("cc")]
            out.append("} }")
        return out

    # ------------------------------------------------------------------ pools, add
    def pool_code(self, node: SumPool2d | AvgPool2d | MaxPool2d) -> list[str]:
        name = node.name
        xin = self.input_ref(name)
        out = self.plan.refs[name]
        e = self.ticket.inputs_of(name)[0]
        c, h, w = self.ticket.node(e.src).shape if e.recurrent else self.ticket.shapes[e.src]
        _, ho, wo = self.ticket.shapes[name]
        (kh, kw), (sh, sw), (ph, pw) = node.kernel_size, node.stride, node.padding
        spikes = xin.kind == "bits"
        lines = [f"{{   /* {node.kind} '{name}': {kh}x{kw} stride {sh}x{sw} pad {ph}x{pw}, "
                 f"{'spike' if spikes else 'analog'} input */",
                 f"    const {'W_T' if spikes else 'float'} *const xin = {xin.expr};",
                 f"    {'W_T' if out.kind == 'bits' else 'float'} *const out = {out.expr};",
                 "    uint32_t c, oy, ox, ky, kx;"]
        if out.kind == "bits":
            lines.append(f"    memset(out, 0, sizeof(W_T) * {self.plan.nwords(out.size)}u);")
        lines.append(f"    for (c = 0; c < {c}u; ++c) for (oy = 0; oy < {ho}u; ++oy) for (ox = 0; ox < {wo}u; ++ox) {{")
        loop = [f"for (ky = 0; ky < {kh}u; ++ky) for (kx = 0; kx < {kw}u; ++kx) {{",
                f"    const int32_t iy = (int32_t)(oy * {sh}u + ky) - {ph}, ix = (int32_t)(ox * {sw}u + kx) - {pw};",
                f"    if (iy >= 0 && iy < {h} && ix >= 0 && ix < {w}) {{",
                f"        const uint32_t xi = c * {h * w}u + (uint32_t)iy * {w}u + (uint32_t)ix;"]
        oi = f"c * {ho * wo}u + oy * {wo}u + ox"
        body: list[str]
        if isinstance(node, MaxPool2d):
            if spikes:
                self.helpers.add("bit")
                body = ["uint32_t b = 0;", *loop, "        b |= BIT(xin, xi);", "    }", "}",
                        f"{{ const uint32_t i = {oi}; out[i >> WSH] |= (W_T)b << (i & WM); }}"]
            else:
                body = ["float m = 0.0f;", "int first = 1;", *loop,
                        "        const float v = xin[xi];",
                        "        if (first || v > m) { m = v; first = 0; }", "    }", "}",
                        f"out[{oi}] = m;"]
        else:
            div = f"y = y / {flit(kh * kw)};" if isinstance(node, AvgPool2d) else ""
            if spikes:
                self.helpers.add("bit")
                body = ["int32_t n = 0;", *loop, "        n += (int32_t)BIT(xin, xi);", "    }", "}",
                        "{ float y = (float)n;" + (f" {div}" if div else "") + f" out[{oi}] = y; }}"]
            else:
                limbs = L.limbs(253 + 24 + math.ceil(math.log2(kh * kw + 1)) + 1, 253)
                span_limit = 62 - 24 - math.ceil(math.log2(kh * kw + 1))
                self.need_acc(limbs)
                self.helpers.update({"xa_x", "xa_round", "i64_round", "xa_split", "xa_range", "fbits"})
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
        lines += ["        " + ln for ln in body]
        lines += ["    }", "}"]
        return lines

    def add_code(self, node: Add) -> list[str]:
        name = node.name
        refs = [self.input_ref(name, i) for i in range(len(self.ticket.inputs_of(name)))]
        out = self.plan.refs[name]
        terms = [self.elem(r, "i") for r in refs]
        lines = [f"{{   /* add '{name}': inputs summed in edge order in float32 */",
                 "    uint32_t i;",
                 f"    for (i = 0; i < {out.size}u; ++i) {{",
                 f"        float y = {terms[0]};"]
        lines += [f"        y = y + {t};" for t in terms[1:]]
        lines += [f"        {out.expr}[i] = y;", "    }", "}"]
        return lines

    # ------------------------------------------------------------------ neurons
    def neuron_code(self, node: LIF | LI) -> list[str]:
        name = node.name
        ident = self.plan.ident[name]
        xin = self.input_ref(name)
        n = math.prod(node.shape)
        def pe(values: np.ndarray, what: str) -> str:
            expr, is_array = self.param(values, f"{ident}_{what}")
            return f"{expr}[i]" if is_array else expr

        beta = pe(node.beta, "beta")
        bias = None if node.bias is None else pe(node.bias, "bias")
        head = f"{{   /* {node.kind} '{name}': {n} neurons"
        lines: list[str] = []
        if isinstance(node, LI):
            lines = [head + ", leaky integrator readout */", "    uint32_t i;",
                     f"    for (i = 0; i < {n}u; ++i) {{",
                     f"        float I = {self.elem(xin, 'i')};"]
            if bias:
                lines.append(f"        I = I + {bias};")
            lines += [f"        s->v_{ident}[i] = ({beta} * s->v_{ident}[i]) + I;", "    }", "}"]
            return lines
        th = pe(node.threshold, "theta")
        r = pe(node.reset_amount, "reset") if node.reset in ("subtract", "subtract_delayed") else ""
        self.helpers.add("bit")
        lines = [head + f", charge {node.charge}, reset {node.reset} */", "    uint32_t i;", "    W_T sw = 0;",
                 f"    for (i = 0; i < {n}u; ++i) {{",
                 f"        float I = {self.elem(xin, 'i')};",
                 f"        float v = s->v_{ident}[i];",
                 "        uint32_t f;"]
        if bias:
            lines.append(f"        I = I + {bias};")
        if node.charge == "leaky":
            lines.append(f"        v = ({beta} * v) + I;")
        else:
            tau = pe(node.tau, "tau")
            if node.charge == "decay_input":
                lines.append(f"        v = v + ((I - v) / {tau});")
            else:
                lines.append(f"        v = (v - (v / {tau})) + I;")
        if node.reset == "subtract_delayed":
            lines.append(f"        v = v - ({r} * (float)BIT(s->s_{ident}, i));")
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


# ---------------------------------------------------------------------- files
HEADER_DOC = """\
/* {P}.h: spiking network exported by slt-deploy (C99, float mode).
 *
 * {summary}
 *
 * API (no malloc; all state lives in the caller's {P}_state, e.g. a static global):
 *   void {P}_reset({P}_state *s);      zero membranes and spikes (and reseed the rate code)
 *   void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out);
 *        one time step: x = {in_doc};
 *        out = {out_doc}
 *   int  {P}_infer({P}_state *s, const {P}_input_t *x, {P}_count_t *counts);
 *        reset, then {T} steps on x = {infer_doc};
 *        counts[{n_out}] = {count_doc}; returns the index of the first maximal count.
 *
 * Bit vectors (spike frames) follow slt_deploy/bits.py: bit j is bit (j % 32) of uint32_t
 * word j / 32 (little-endian bit order; a 64-bit word is two 32-bit halves, low half
 * first), and every vector is padded to a multiple of 64 bits with zeros. Weight bit
 * tables use {word}-bit words in the same order.
 *
 * Arithmetic: float32 exactly as the slt-deploy reference. Compile with
 *   -std=c99 -ffp-contract=off    (no fused multiply-add: every operation rounds once)
 * and without -ffast-math (refused). Synaptic and pool sums are computed exactly with
 * integers (spike counts; int64 sums on a common exponent grid when the span allows, else a
 * multi-word exact accumulator) and rounded once, so outputs are bit-identical to the
 * reference on any IEEE-754 float32 target with round-to-nearest and no flush-to-zero.
 * Rate-coded input draws numpy's PCG64 stream of a batch-1 reference run.
 */
"""


def generate_float(ticket: Ticket, prefix: str, word: int, cache_static: bool = True) -> tuple[str, str, dict]:
    """(header text, source text, info) of the float-mode C code for ``ticket``."""
    plan = make_plan(ticket, word, cache_static)
    g = Gen(ticket, prefix, word, plan)
    P = prefix
    enc = ticket.encoding.kind
    n_in = math.prod(ticket.input_shape)
    n_out = math.prod(ticket.output_shape)
    T = ticket.timesteps
    spiking_out = plan.refs[ticket.output.name].kind == "bits"
    in_words32 = plan.nwords(n_in) * (word // 32)
    out_words32 = plan.nwords(n_out) * (word // 32)
    in_len = in_words32 if enc == "spikes" else n_in
    out_len = out_words32 if spiking_out else n_out

    body: list[str] = []
    uses_reuse = False
    for name in plan.order:
        code = g.node_code(name)
        if not code:
            continue
        if name in plan.static:
            uses_reuse = True
            body.append("if (!reuse) {  /* static: depends on the direct input only */")
            body += ["    " + ln for ln in code]
            body.append("}")
        else:
            body += code
    for src, dst, expr, count in plan.prev_copies:
        kind = plan.refs[src].kind
        body.append(f"memcpy({dst}, {expr}, sizeof({'W_T' if kind == 'bits' else 'float'}) * {count}u);"
                    f"  /* '{src}' for next step's recurrent readers */")

    # ---------------- header
    in_t = "uint32_t" if enc == "spikes" else "float"
    out_t = "uint32_t" if spiking_out else "float"
    count_t = "int32_t" if spiking_out else "float"
    fields = []
    by_ident = {v: k for k, v in plan.ident.items()}
    what = {"v": "membranes", "s": "spikes (bits)", "p": "previous step's output (recurrent readers)",
            "c": "cached value (direct input only)"}
    for ctype, fname, count in plan.state_fields:
        kind, _, ident = fname.partition("_")
        ct = "uint32_t" if ctype == "W" and word == 32 else "uint64_t" if ctype == "W" else ctype
        fields.append(f"    {ct} {fname}[{max(1, count)}];  /* '{by_ident.get(ident, ident)}': {what.get(kind, '')} */")
    if plan.float_arena:
        fields.append(f"    float f[{plan.float_arena}];   /* scratch, shared by values with disjoint lifetimes */")
    if plan.word_arena:
        wtype = "uint32_t" if word == 32 else "uint64_t"
        fields.append(f"    {wtype} w[{plan.word_arena}];   /* scratch bit vectors */")
    if enc == "rate":
        fields.append("    uint64_t rng[4];      /* PCG64 state (hi, lo), increment (hi, lo) */")
    fields.append("    uint32_t t;           /* steps since reset */")

    summary = (f"Ticket: {len(ticket.nodes)} nodes, T = {T} steps, {enc} input of {n_in} values, "
               f"{'spiking' if spiking_out else 'analog'} output of {n_out} values.")
    in_doc = {"direct": f"{n_in} analog input values (float32)",
              "rate": f"{n_in} firing probabilities in [0, 1] (float32), drawn each step",
              "spikes": f"one spike frame of {n_in} bits in {in_len} uint32_t words"}[enc]
    infer_doc = {"direct": f"the same {n_in} values every step", "rate": f"{n_in} probabilities",
                 "spikes": f"{T} frames of {in_len} words, back to back"}[enc]
    out_doc = (f"output spikes, {n_out} bits in {out_len} uint32_t words" if spiking_out
               else f"{n_out} output values (float32)")
    count_doc = ("spike counts over the steps" if spiking_out
                 else "output values summed over the steps in float32, in step order")
    hdr = [HEADER_DOC.format(P=P, summary=summary, in_doc=in_doc, out_doc=out_doc, infer_doc=infer_doc,
                             count_doc=count_doc, T=T, n_out=n_out, word=word),
           f"#ifndef {P.upper()}_H", f"#define {P.upper()}_H", "", "#include <stdint.h>", "",
           "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
           f"#define {P.upper()}_T {T}u                 /* time steps of {P}_infer */",
           f"#define {P.upper()}_N_IN {n_in}u           /* input neurons / features */",
           f"#define {P.upper()}_N_OUT {n_out}u          /* output neurons */",
           f"#define {P.upper()}_IN_LEN {in_len}u       /* {P}_input_t elements per step */",
           f"#define {P.upper()}_INFER_IN_LEN {in_len * T if enc == 'spikes' else in_len}u",
           f"#define {P.upper()}_OUT_LEN {out_len}u      /* {P}_output_t elements per step */",
           f"#define {P.upper()}_SPIKING_OUTPUT {int(spiking_out)}",
           f'#define {P.upper()}_ENCODING "{enc}"',
           f"#define {P.upper()}_WORD_BITS {word}",
           f"#define {P.upper()}_FIXED_POINT 0", "",
           f"typedef {in_t} {P}_input_t;", f"typedef {out_t} {P}_output_t;", f"typedef {count_t} {P}_count_t;", "",
           f"typedef struct {P}_state {{", *fields, f"}} {P}_state;", "",
           f"void {P}_reset({P}_state *s);",
           f"void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out);",
           f"int {P}_infer({P}_state *s, const {P}_input_t *x, {P}_count_t *counts);", "",
           "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P.upper()}_H */", ""]

    # ---------------- source
    out_ref = plan.refs[ticket.output.name]
    step_lines = [f"static void run_step({P}_state *s, const {P}_input_t *x, int reuse)", "{"]
    if g.acc_limbs:
        step_lines.append(f"    int64_t acc[{g.acc_limbs}];")
    step_lines.append("    (void)x;")
    if not uses_reuse:
        step_lines.append("    (void)reuse;")
    step_lines += ["    " + ln for ln in body]
    step_lines += ["    s->t++;", "}", ""]

    if spiking_out:
        g.helpers.add("bit")
        if word == 32:
            copy_out = [f"    memcpy(out, {out_ref.expr}, sizeof(uint32_t) * {out_len}u);"]
        else:
            copy_out = ["    {", "        uint32_t j;",
                        f"        for (j = 0; j < {out_len // 2}u; ++j) {{",
                        f"            out[2u * j] = (uint32_t)({out_ref.expr}[j] & 0xffffffffu);",
                        f"            out[2u * j + 1u] = (uint32_t)({out_ref.expr}[j] >> 32);",
                        "        }", "    }"]
        count_line = f"for (i = 0; i < {n_out}u; ++i) counts[i] += (int32_t)BIT({out_ref.expr}, i);"
    else:
        copy_out = [f"    memcpy(out, {out_ref.expr}, sizeof(float) * {n_out}u);"]
        count_line = f"for (i = 0; i < {n_out}u; ++i) counts[i] = counts[i] + {out_ref.expr}[i];"

    reset = [f"void {P}_reset({P}_state *s)", "{", "    memset(s, 0, sizeof(*s));"]
    if enc == "rate":
        st = np.random.PCG64(ticket.encoding.seed).state["state"]
        sv, inc = int(st["state"]), int(st["inc"])
        m64 = (1 << 64) - 1
        reset += [f"    s->rng[0] = 0x{sv >> 64:016x}ull; s->rng[1] = 0x{sv & m64:016x}ull;",
                  f"    s->rng[2] = 0x{inc >> 64:016x}ull; s->rng[3] = 0x{inc & m64:016x}ull;"
                  f"  /* numpy PCG64(seed={ticket.encoding.seed}) */"]
    reset += ["}", ""]
    step = [f"void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out)", "{",
            "    run_step(s, x, 0);", *copy_out, "}", ""]
    advance = f" + t * {in_len}u" if enc == "spikes" else ""
    infer = [f"int {P}_infer({P}_state *s, const {P}_input_t *in, {P}_count_t *counts)", "{",
             "    uint32_t t, i;", "    int best = 0;", f"    {P}_reset(s);",
             f"    for (i = 0; i < {n_out}u; ++i) counts[i] = 0;",
             f"    for (t = 0; t < {T}u; ++t) {{",
             f"        const {P}_input_t *x = in{advance};",
             "        run_step(s, x, t > 0u);",
             "        " + count_line,
             "        (void)x;",
             "    }",
             f"    for (i = 1; i < {n_out}u; ++i) if (counts[i] > counts[best]) best = (int)i;",
             "    return best;", "}", ""]

    tables = []
    for t in g.tables:
        tables.append(c_array(t, _fmt(t.ctype)))

    src = [f"/* {P}.c: generated by slt-deploy; see {P}.h for the API, bit layout and build flags. */",
           f'#include "{P}.h"', "#include <string.h>", "",
           "#if defined(__FAST_MATH__)",
           '#error "compile without -ffast-math: the network is reproduced bit for bit in IEEE float32"',
           "#endif",
           "#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0",
           '#error "float expressions must evaluate in float32 (FLT_EVAL_METHOD 0, e.g. SSE or an FPU, not x87)"',
           "#endif",
           "#if defined(__GNUC__) && !defined(__clang__)",
           '#pragma GCC optimize ("fp-contract=off")',
           "#else",
           "#pragma STDC FP_CONTRACT OFF",
           "#endif",
           "/* the exact accumulator relies on >> of negative values being arithmetic */",
           "typedef char slt_arithmetic_shift_check[((-8 >> 1) == -4) ? 1 : -1];", "",
           f"typedef {'uint32_t' if word == 32 else 'uint64_t'} W_T;",
           f"#define WB {word}u", f"#define WSH {5 if word == 32 else 6}u", f"#define WM {word - 1}u", "",
           helper_source(g.helpers),
           "/* ---- weights and parameters (flash) ---- */", *tables,
           *step_lines, *reset, *step, *infer]
    info = {"tables_bytes": sum(t.nbytes for t in g.tables), "layers": g.layer_info,
            "state_fields": plan.state_fields, "float_arena": plan.float_arena, "word_arena": plan.word_arena,
            "acc_limbs": g.acc_limbs, "spiking_output": spiking_out, "in_len": in_len, "out_len": out_len,
            "n_in": n_in, "n_out": n_out, "encoding": enc, "timesteps": T}
    return "\n".join(hdr), "\n".join(src), info
