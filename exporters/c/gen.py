"""What both C emitters share: exact literals, flash tables, and the generator state with its loop builders.

:class:`Gen` collects the flash tables and runtime helpers a generated file needs and writes
the two loop shapes both modes use: the kept synapses of one weight row (:meth:`Gen.iterate`,
per layout) and a convolution over spike or integer input one kept tap at a time
(:meth:`Gen.conv_tap_major`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slt_deploy.ir.graph import Ticket

from . import layers as L
from .buffers import Plan, Ref, recurrent_ref


def flit(x: float | np.floating) -> str:
    """An exact C float literal (hexadecimal) for a float32 value."""
    v = float(np.float32(x))
    if v == 0.0:
        return "-0.0f" if math.copysign(1.0, v) < 0 else "0.0f"
    mant, _, exp = v.hex().partition("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def c_array(table: L.Table, fmt: str, per_line: int = 12) -> str:
    """``table`` as a static const C array in flash, ``per_line`` literals a line."""
    vals = [fmt.format(int(v)) if table.ctype != "float" else flit(v) for v in table.values.reshape(-1)]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {table.ctype} {table.name}[{max(1, table.values.size)}] = {{\n    {body}\n}};\n"


def c_format(ctype: str) -> str:
    """The literal format of one element of a table of C type ``ctype``."""
    return {"uint8_t": "{}u", "uint16_t": "{}u", "uint32_t": "0x{:08x}u", "uint64_t": "0x{:016x}ull",
            "int8_t": "{}", "float": "{}"}[ctype]


@dataclass
class Gen:
    """One generated file in the making: its flash tables, runtime helpers, accumulator size and layer notes.

    ``plan`` is the float mode's buffer plan (None in fixed mode, which reads no ``Ref``).
    """

    ticket: Ticket
    prefix: str
    word: int
    plan: Plan | None
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

    # ------------------------------------------------------------------ loops over kept synapses
    def iterate(self, wt: L.WeightTables, conv: bool, xi_lines: list[str],
                inner: Callable[[str, str], list[str]]) -> list[str]:
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


    def conv_tap_major(self, wt: L.WeightTables, g: dict, ctype: str, out: str, zero: str | None, per_tap: str,
                       add: Callable[[str, str], str],
                       event: Callable[[str], str] | None = None) -> list[str]:
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
        lines += ["        " + ln for ln in self.iterate(wt, False, [], lambda xi, cc: tap)]
        return lines
