"""C99 code generation, fixed mode: Loihi's integers from :mod:`slt_deploy.fixed_point`.

The network is converted by :func:`slt_deploy.fixed_point.to_fixed` (the same conversion
the Lava target and the netx exporter run) and the generated code performs exactly the
integer steps of :meth:`FixedNetwork.simulate` (``clamp_conv=False``), per neuron and step::

    a    = sum_syn 2^E * sum_i q[i] * x[i]        (only a mod 2^26 matters: kept in uint32)
    cur  = wrap32(a << 6), then Lava's one-step 24-bit wrap   (du = 4095: no current state)
    v    = clip24( sign(p) * (|p| >> 12) + cur + (bias_mant << 6) ),   p = v * (4096 - dv)
    v    = v - r * s_prev                          (subtract_delayed)
    s    = v > (vth << 6);  zero reset v = 0 / subtract reset v = v - r * s

All state is integer (int32 membranes, bit-packed spikes); no float operation runs except
the final class choice of an LI readout. Direct (analog) input is given as integers
``round(x * 2^s)`` with ``s = NAME_INPUT_FRAC_BITS`` (chosen by ``to_fixed`` from a calibration
input, as the Lava target does; 0 without one).

Node kinds are checked against the exporter's handler table (:data:`.plan.HANDLERS`, its
``fixed`` entries) before the conversion; the neuron update of each integer layer comes from
``_NEURON_UPDATES`` by the layer's kind (``lif``, ``or``: spiking; ``li``: readout).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slt_deploy.errors import SltUnsupportedError
from slt_deploy.fixed_point.chip import ChipSpec
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.weights import Int8Weights

from . import layers as L
from . import rate
from .gen import Gen, c_array, c_format, flit
from .plan import check_fixed
from .runtime import helper_source


def _int_table(gen: Gen, values: np.ndarray, name: str, ctype: str = "int32_t") -> tuple[str, bool]:
    """A per-neuron integer parameter: a literal when uniform, else a table."""
    flat = np.asarray(values).reshape(-1).astype(np.int64)
    if flat.size and np.all(flat == flat[0]):
        return f"{int(flat[0])}", False
    itemsize = {"int16_t": 2, "int32_t": 4}[ctype]
    gen.tables.append(L.Table(ctype, name, flat, itemsize))
    return name, True


def _readout_scale(layer: Any) -> np.ndarray:
    """LI value per unit of V, as float32 (the reference computes V * scale in float64)."""
    scale = np.asarray(layer.readout_scale, np.float64).reshape(-1)
    den = getattr(layer, "readout_den", 1)
    return (scale / den).astype(np.float32)


def readout_values(layer: Any, v: np.ndarray) -> np.ndarray:
    """The fixed-point reference's LI output values for integer membranes ``v`` (``(..., n)``)."""
    if hasattr(layer, "readout"):
        return np.asarray(layer.readout(np.asarray(v)), np.float64).astype(np.float32)
    return (np.asarray(v).astype(np.float64) * layer.readout_scale).astype(np.float32)


@dataclass
class _Net:
    """The fixed network being emitted, with the C names of its layers and of the step's input."""

    fixed: Any                  # slt_deploy.fixed_point.FixedNetwork
    g: Gen
    word: int
    in_ref: str
    in_kind: str                # bits | graded
    index: dict[str, int] = field(default_factory=dict)
    ident: dict[str, str] = field(default_factory=dict)

    def nwords(self, n: int) -> int:
        return math.ceil(n / 64) * (64 // self.word)

    def src_ref(self, layer_name: str, syn: Any) -> tuple[str, str]:
        """(C pointer, bits | graded) of what synapse ``syn`` of layer ``layer_name`` reads this step."""
        if syn.src == self.fixed.plan.input_name:
            return self.in_ref, self.in_kind
        src = self.fixed.layer(syn.src)
        if src.kind == "li":
            raise SltUnsupportedError(f"C export (fixed): LI layer '{syn.src}' cannot feed another layer")
        if syn.lag and self.index[syn.src] < self.index[layer_name]:
            return f"s->p_{self.ident[syn.src]}", "bits"
        return f"s->s_{self.ident[syn.src]}", "bits"


def generate_fixed(ticket: Ticket, prefix: str, word: int, fixed_input: Any = None) -> tuple[str, str, dict]:
    """(header text, source text, info) of the fixed-mode C code for ``ticket``."""
    from slt_deploy.fixed_point import to_fixed

    check_fixed(ticket)
    fixed = to_fixed(ticket, fixed_input)
    enc = ticket.encoding.kind
    n_in = math.prod(ticket.input_shape)
    g = Gen(ticket, prefix, word, None)
    if enc == "direct":
        in_ref, in_kind = "x", "graded"
    elif enc == "spikes" and word == 32:
        in_ref, in_kind = "x", "bits"
    else:
        in_ref, in_kind = "s->in_bits", "bits"
    net = _Net(fixed, g, word, in_ref, in_kind, {layer.name: i for i, layer in enumerate(fixed.layers)},
               {layer.name: f"l{i}" for i, layer in enumerate(fixed.layers)})
    out_layer = fixed.layer(fixed.plan.output)
    spiking_out = out_layer.kind != "li"
    n_out = out_layer.size

    fields, copies = _state(net, enc, n_in)
    body = _input_code(net, enc, n_in)
    info_layers: list[dict[str, Any]] = []
    for layer in fixed.layers:
        body += _layer_code(net, layer, info_layers)
    for src, dst, expr, count in copies:
        body.append(f"memcpy({dst}, {expr}, sizeof(W_T) * {count}u);  /* '{src}' for next step's recurrent readers */")

    in_len = net.nwords(n_in) * (word // 32) if enc == "spikes" else n_in
    out_len = net.nwords(n_out) * (word // 32) if spiking_out else n_out
    io = _FixedIo(enc, n_in, n_out, ticket.timesteps, spiking_out, in_len, out_len, fixed.input_frac_bits)
    hdr = _header(ticket, net, prefix, io, fields)
    src = _source(net, prefix, io, body, out_layer)
    info = {"tables_bytes": sum(t.nbytes for t in g.tables), "layers": info_layers,
            "state_fields": _state_field_info(fields), "float_arena": 0, "word_arena": 0, "acc_limbs": 0,
            "spiking_output": spiking_out, "in_len": in_len, "out_len": out_len, "n_in": n_in, "n_out": n_out,
            "encoding": enc, "timesteps": ticket.timesteps, "fixed_report": fixed.report,
            "input_frac_bits": fixed.input_frac_bits, "fixed": fixed, "calibrated": fixed_input is not None}
    return "\n".join(hdr), "\n".join(src), info


def _state(net: _Net, enc: str, n_in: int) -> tuple[list[str], list[tuple[str, str, str, int]]]:
    """The members of ``NAME_state`` and the previous-step spike copies ``(src, dst, expr, words)``."""
    fields: list[str] = []
    wtype = "uint32_t" if net.word == 32 else "uint64_t"
    layers = net.fixed.layers
    if net.in_ref == "s->in_bits":
        fields.append(f"    {wtype} in_bits[{net.nwords(n_in)}];   /* input spikes of this step */")
    for layer in layers:
        i = net.ident[layer.name]
        r = np.abs(layer.reset_amount).max(initial=0)
        if int(r) + _v_max(net.fixed.chip) >= 2**31:
            raise SltUnsupportedError(f"C export (fixed): layer '{layer.name}' has a reset amount {int(r)} beyond the "
                                      "int32 membrane; use --arith float")
        fields.append(f"    int32_t v_{i}[{layer.size}];")
        if layer.kind != "li":
            fields.append(f"    {wtype} s_{i}[{net.nwords(layer.size)}];")
    copies: list[tuple[str, str, str, int]] = []
    for layer in layers:
        for syn in layer.synapses:
            if (syn.lag and net.index.get(syn.src, -1) < net.index[layer.name]
                    and syn.src not in [c[0] for c in copies]):
                src = net.fixed.layer(syn.src)
                p = net.ident[syn.src]
                fields.append(f"    {wtype} p_{p}[{net.nwords(src.size)}];")
                copies.append((syn.src, f"s->p_{p}", f"s->s_{p}", net.nwords(src.size)))
    n_max = max(layer.size for layer in layers)
    fields.append(f"    uint32_t a[{n_max}];   /* synaptic input of the layer being updated (mod 2^32) */")
    fields.append("    uint32_t t;           /* steps since reset */")
    return fields, copies


def _input_code(net: _Net, enc: str, n_in: int) -> list[str]:
    """This step's input spikes: drawn from the rate code, or 32-bit halves joined into 64-bit words."""
    if enc == "rate":
        return rate.input_block(net.g, "s->in_bits", n_in, net.nwords(n_in))
    if enc == "spikes" and net.word == 64:
        return ["{   /* input: 32-bit halves -> 64-bit words */", "    uint32_t j;",
                f"    for (j = 0; j < {net.nwords(n_in)}u; ++j) s->in_bits[j] = (uint64_t)x[2u * j] | "
                "((uint64_t)x[2u * j + 1u] << 32);", "}"]
    return []


# ------------------------------------------------------------------------------ one layer
def _layer_code(net: _Net, layer: Any, info_layers: list[dict[str, Any]]) -> list[str]:
    """One integer neuron layer: its synaptic input ``a`` (mod 2^32), then the neuron update."""
    update = _NEURON_UPDATES.get(layer.kind)
    if update is None:
        raise SltUnsupportedError(f"C export (fixed): layer '{layer.name}' is of kind {layer.kind!r}, which the "
                                  f"fixed-mode emitter has no update for (use --arith float)")
    code = [f"{{   /* layer '{layer.name}' ({layer.kind}): {layer.size} neurons, vth {layer.vth}, "
            f"reset {layer.reset} */",
            "    uint32_t *const a = s->a;", "    uint32_t o;",
            f"    memset(a, 0, sizeof(uint32_t) * {layer.size}u);"]
    for si, syn in enumerate(layer.synapses):
        code += _synapse_code(net, layer, si, syn, info_layers)
    return update(net, layer, code)


def _int8_weights(layer: Any, syn: Any) -> tuple[Int8Weights, np.ndarray | None]:
    """The synapse's integer weights as int8 codes ``q`` with ``W = q * 2^E`` (and the int64 kernel of a conv)."""
    E = int(syn.weight_exp)
    if syn.conv is not None:
        kern = np.asarray(syn.conv.kernel, np.int64)
        q = kern >> E
        wts = Int8Weights(q != 0, q.astype(np.int8), np.ones(kern.shape[0], np.float32))
    else:
        kern = None
        dense = np.zeros(syn.W.shape, np.int64)
        dense[syn.W.rows, syn.W.cols] = np.asarray(syn.W.vals, np.int64)
        q = dense >> E
        wts = Int8Weights(q != 0, q.astype(np.int8), np.ones(q.shape[0], np.float32))
    if np.any((q << E) != (kern if syn.conv is not None else dense)) or np.abs(q).max(initial=0) > 127:
        raise SltUnsupportedError(f"C export (fixed): weights of layer '{layer.name}' are not int8 · 2^E")
    return wts, kern


def _synapse_code(net: _Net, layer: Any, si: int, syn: Any, info_layers: list[dict[str, Any]]) -> list[str]:
    """``a += W x`` for one synapse, as uint32 sums of ``q << E`` (wrap-around is the intended mod 2^32)."""
    g = net.g
    i = net.ident[layer.name]
    xin, xkind = net.src_ref(layer.name, syn)
    E = int(syn.weight_exp)
    wts, kern = _int8_weights(layer, syn)
    wt = L.build_tables(wts, f"w{i}_{si}", net.word)
    info_layers.append({"node": layer.name, "kind": layer.kind, "source": syn.src, "lag": syn.lag,
                        "layout": wt.layout if wt.nnz else "empty", "kept": wt.nnz,
                        "flash_bytes": wt.nbytes if wt.nnz else 0, "conv": syn.conv is not None,
                        "weight_exp": E, "input": xkind})
    if wt.nnz == 0:
        return []
    for t in wt.tables.values():
        g.tables.append(t)
    ctype = "W_T" if xkind == "bits" else "int32_t"
    code = [f"    {{   /* synapse from '{syn.src}'{' (previous step)' if syn.lag else ''}: "
            f"{wt.rows} x {wt.k}, {wt.layout}, {wt.nnz} kept, weights q * 2^{E} */",
            f"        const {ctype} *const xin = {xin};"]
    if wt.layout == "mask":
        code.append("        uint32_t pbase = 0;")
    if syn.conv is not None:
        code += _conv_synapse(g, wt, syn.conv, kern, E, xkind)
    else:
        def inner(xi: str, cc: str) -> list[str]:
            if xkind == "bits":
                g.helpers.add("bit")
                return [f"acc += (uint32_t){cc} & (0u - BIT(xin, {xi}));"]
            return [f"acc += (uint32_t){cc} * (uint32_t)xin[{xi}];"]

        code += [f"        for (o = 0; o < {wt.rows}u; ++o) {{", "            uint32_t acc = 0;"]
        code += ["            " + ln for ln in g.iterate(wt, False, [], inner)]
        code += [f"            a[o] += acc << {E};", "        }"]
    code.append("    }")
    return code


def _conv_synapse(g: Gen, wt: L.WeightTables, cs: Any, kern: Any, E: int, xkind: str) -> list[str]:  # noqa: N803
    """A synapse that is one convolution, tap-major (event-driven over spike rows)."""
    c_in, h, wdt = cs.in_shape
    _, ho, wo = cs.out_shape
    kh, kw = kern.shape[2], kern.shape[3]
    (sh, sw), (ph, pw), (dh, dw), gr = cs.stride, cs.padding, cs.dilation, cs.groups
    cin_g, og = c_in // gr, kern.shape[0] // gr
    geom = dict(rows=wt.rows, c_in=c_in, h=h, w=wdt, ho=ho, wo=wo, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph,
                pw=pw, dh=dh, dw=dw, og=og, cin_g=cin_g)
    event: Callable[[str], str] | None = None
    if xkind == "bits":
        g.helpers.add("bit")
        add = lambda xi, dst: f"if (BIT(xin, {xi})) {dst} += cw;"  # noqa: E731
        event = lambda dst: f"{dst} += cw;"  # noqa: E731
    else:
        add = lambda xi, dst: f"{dst} += cw * (uint32_t)xin[{xi}];"  # noqa: E731
    tm = g.conv_tap_major(wt, geom, "uint32_t", "a", None, f"const uint32_t cw = (uint32_t)cc << {E};", add,
                          event)
    code = ["    " + ln for ln in tm if ln.strip() not in ("uint32_t pbase = 0;", "uint32_t o;")]
    code.append("        }")
    return code


# ------------------------------------------------------------------------------ neuron updates
def _v_max(chip: ChipSpec) -> int:
    """The membrane clip ``2^(state_bits − 1) − 1`` (Loihi 2: 2^23 − 1)."""
    return chip.max_uv - 1


def _membrane(net: _Net, layer: Any, i: str) -> list[str]:
    """``v = clip24(decay(v) + wrap24(wrap32(a << 6)) + bias)`` per neuron (the loop is left open).

    The numbers are the network's :class:`~slt_deploy.fixed_point.ChipSpec` (Loihi 2's shown).
    """
    g = net.g
    chip = net.fixed.chip
    act, unity, shift, m, v_max = chip.act_shift, chip.decay_unity, chip.decay_shift, chip.max_uv, _v_max(chip)
    bias_unit = 1 << chip.bias_exp
    dv, dv_arr = _int_table(g, layer.dv, f"{i}_dv", "int16_t")
    bias, b_arr = _int_table(g, np.asarray(layer.bias_mant, np.int64), f"{i}_bias", "int16_t")
    pe = lambda e, arr: f"(int64_t){e}[o]" if arr else f"(int64_t){e}"  # noqa: E731
    return [f"    for (o = 0; o < {layer.size}u; ++o) {{",
            f"        const uint32_t w = a[o] << {act};                          /* wrap32(a << {act}) */",
            "        const int64_t cur = (w & 0x80000000u) ? (int64_t)w - 4294967296 : (int64_t)w;",
            f"        int64_t wr = cur > {m} ? cur - {2 * m} : cur;       /* Lava's {chip.state_bits}-bit wrap */",
            f"        const int64_t p = (int64_t)s->v_{i}[o] * ({unity} - {pe(dv, dv_arr)});",
            "        int64_t v;",
            f"        if (wr <= -{m}) wr = cur + {2 * m};",
            f"        v = (p >= 0 ? (p >> {shift}) : -((-p) >> {shift})) + wr + {pe(bias, b_arr)} * {bias_unit};",
            f"        if (v > {v_max}) v = {v_max};",
            f"        if (v < -{v_max}) v = -{v_max};"]


def _readout_update(net: _Net, layer: Any, code: list[str]) -> list[str]:
    """An LI readout: the membrane only (no threshold, no spikes)."""
    i = net.ident[layer.name]
    return code + _membrane(net, layer, i) + [f"        s->v_{i}[o] = (int32_t)v;", "    }", "}"]


def _spiking_update(net: _Net, layer: Any, code: list[str]) -> list[str]:
    """A spiking layer (LIF, or the OR layer of a MaxPool over spikes): fire ``v > vth << 6``, then reset."""
    g = net.g
    i = net.ident[layer.name]
    code = code + _membrane(net, layer, i)
    g.helpers.add("bit")
    rr = ""
    if layer.reset in ("subtract", "subtract_delayed"):
        r, r_arr = _int_table(g, layer.reset_amount, f"{i}_reset", "int32_t")
        rr = f"(int64_t){r}[o]" if r_arr else f"(int64_t){r}"
    code.insert(3, "    W_T sw = 0;")
    if layer.reset == "subtract_delayed":
        code.append(f"        v = v - {rr} * (int64_t)BIT(s->s_{i}, o);")
    code.append(f"        {{ const uint32_t f = (uint32_t)(v > {int(layer.vth) << net.fixed.chip.vth_shift});")
    if layer.reset == "zero":
        code.append("          if (f) v = 0;")
    elif layer.reset == "subtract":
        code.append(f"          v = v - {rr} * (int64_t)f;")
    code += ["          sw |= (W_T)f << (o & WM); }",
             f"        s->v_{i}[o] = (int32_t)v;",
             f"        if ((o & WM) == WM || o == {layer.size - 1}u) {{ s->s_{i}[o >> WSH] = sw; sw = 0; }}",
             "    }", "}"]
    return code


# layer kind of slt_deploy.fixed_point (FixedLayer.kind) -> its neuron update
_NEURON_UPDATES: dict[str, Callable[[_Net, Any, list[str]], list[str]]] = {
    "lif": _spiking_update,
    "or": _spiking_update,
    "li": _readout_update,
}


# ------------------------------------------------------------------------------ files
@dataclass(frozen=True)
class _FixedIo:
    """One step's input and output: encoding, sizes, lengths, and the direct input's scale 2^s."""

    enc: str
    n_in: int
    n_out: int
    timesteps: int
    spiking_out: bool
    in_len: int
    out_len: int
    s_bits: int


def _header(ticket: Ticket, net: _Net, P: str, io: _FixedIo, fields: list[str]) -> list[str]:  # noqa: N803
    """``NAME.h``: the API documentation, sizes, types, the state struct and the readout scales."""
    enc, n_in, n_out, T, spiking_out = io.enc, io.n_in, io.n_out, io.timesteps, io.spiking_out
    in_len, out_len, s_bits, word = io.in_len, io.out_len, io.s_bits, net.word
    n_layers = len(net.fixed.layers)
    in_t = {"direct": "int32_t", "rate": "float", "spikes": "uint32_t"}[enc]
    out_t = "uint32_t" if spiking_out else "int32_t"
    in_doc = {"direct": f"{n_in} integer inputs round(x * 2^{s_bits}) (int32)",
              "rate": f"{n_in} firing probabilities in [0, 1] (float32), drawn each step",
              "spikes": f"one spike frame of {n_in} bits in {in_len} uint32_t words"}[enc]
    out_doc = (f"output spikes, {n_out} bits in {out_len} uint32_t words" if spiking_out
               else f"{n_out} integer membranes V of the LI readout (value = V * {P}_readout_scale[i])")
    readout_decl = []
    if not spiking_out:
        readout_decl = [f"extern const float {P}_readout_scale[{n_out}];  /* LI value = V * scale (float64 in slt) */"]
    return [f"""/* {P}.h: spiking network exported by slt-deploy (C99, fixed mode: Loihi integers).
 *
 * Ticket: {len(ticket.nodes)} nodes, T = {T} steps, {enc} input of {n_in} values; {n_layers} integer neuron
 * layers from slt_deploy.fixed_point.to_fixed (the conversion of the Lava target), stepped
 * exactly as its fixed-point reference FixedNetwork.simulate (clamp_conv=False).
 *
 * API (no malloc; all state lives in the caller's {P}_state):
 *   void {P}_reset({P}_state *s);
 *   void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out);
 *        x = {in_doc};
 *        out = {out_doc}
 *   int  {P}_infer({P}_state *s, const {P}_input_t *x, {P}_count_t *counts);
 *        reset, then {T} steps; counts[{n_out}] = {'spike counts' if spiking_out else 'sums of V over the steps'};
 *        returns the index of the first maximal count{'' if spiking_out else ' times its readout scale'}.
 *
 * Bit vectors: bit j is bit (j % 32) of uint32_t word j / 32, padded with zeros to a
 * multiple of 64 bits (slt_deploy/bits.py); weight bit tables use {word}-bit words.
 * Integer arithmetic only (int32 state, int64 intermediates); build with -std=c99.
 */""",
            f"#ifndef {P.upper()}_H", f"#define {P.upper()}_H", "", "#include <stdint.h>", "",
            "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
            f"#define {P.upper()}_T {T}u", f"#define {P.upper()}_N_IN {n_in}u", f"#define {P.upper()}_N_OUT {n_out}u",
            f"#define {P.upper()}_IN_LEN {in_len}u",
            f"#define {P.upper()}_INFER_IN_LEN {in_len * T if enc == 'spikes' else in_len}u",
            f"#define {P.upper()}_OUT_LEN {out_len}u", f"#define {P.upper()}_SPIKING_OUTPUT {int(spiking_out)}",
            f'#define {P.upper()}_ENCODING "{enc}"', f"#define {P.upper()}_WORD_BITS {word}",
            f"#define {P.upper()}_FIXED_POINT 1", *rate.header_macros(ticket, P),
            f"#define {P.upper()}_INPUT_FRAC_BITS {s_bits}   /* direct input: x_int = round(x * 2^{s_bits}) */", "",
            f"typedef {in_t} {P}_input_t;", f"typedef {out_t} {P}_output_t;", f"typedef int32_t {P}_count_t;", "",
            f"typedef struct {P}_state {{", *fields, f"}} {P}_state;", "", *readout_decl,
            f"void {P}_reset({P}_state *s);",
            f"void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out);",
            f"int {P}_infer({P}_state *s, const {P}_input_t *x, {P}_count_t *counts);", "",
            "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P.upper()}_H */", ""]


def _api_functions(net: _Net, P: str, io: _FixedIo, body: list[str], out_layer: Any) -> list[str]:  # noqa: N803
    """``run_step`` and the public ``NAME_reset`` / ``NAME_step`` / ``NAME_infer``."""
    g, word, n_out, T, out_len = net.g, net.word, io.n_out, io.timesteps, io.out_len
    oi = net.ident[out_layer.name]
    step_lines = [f"static void run_step({P}_state *s, const {P}_input_t *x)", "{", "    (void)x;"]
    step_lines += ["    " + ln for ln in body] + ["    s->t++;", "}", ""]
    if io.spiking_out:
        if word == 32:
            copy_out = [f"    memcpy(out, s->s_{oi}, sizeof(uint32_t) * {out_len}u);"]
        else:
            copy_out = ["    {", "        uint32_t j;", f"        for (j = 0; j < {out_len // 2}u; ++j) {{",
                        f"            out[2u * j] = (uint32_t)(s->s_{oi}[j] & 0xffffffffu);",
                        f"            out[2u * j + 1u] = (uint32_t)(s->s_{oi}[j] >> 32);", "        }", "    }"]
        g.helpers.add("bit")
        count_line = f"for (i = 0; i < {n_out}u; ++i) counts[i] += (int32_t)BIT(s->s_{oi}, i);"
        best = f"    for (i = 1; i < {n_out}u; ++i) if (counts[i] > counts[best]) best = (int)i;"
    else:
        copy_out = [f"    memcpy(out, s->v_{oi}, sizeof(int32_t) * {n_out}u);"]
        count_line = f"for (i = 0; i < {n_out}u; ++i) counts[i] += s->v_{oi}[i];"
        best = (f"    for (i = 1; i < {n_out}u; ++i) if ((float)counts[i] * {P}_readout_scale[i] > "
                f"(float)counts[best] * {P}_readout_scale[best]) best = (int)i;")
    reset = [f"void {P}_reset({P}_state *s)", "{", "    memset(s, 0, sizeof(*s));"]
    reset += ["}", ""]
    advance = f" + t * {io.in_len}u" if io.enc == "spikes" else ""
    step = [f"void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out)", "{",
            "    run_step(s, x);", *copy_out, "}", ""]
    infer = [f"int {P}_infer({P}_state *s, const {P}_input_t *in, {P}_count_t *counts)", "{",
             "    uint32_t t, i;", "    int best = 0;", f"    {P}_reset(s);",
             f"    for (i = 0; i < {n_out}u; ++i) counts[i] = 0;",
             f"    for (t = 0; t < {T}u; ++t) {{", f"        run_step(s, in{advance});", "        " + count_line,
             "    }",
             best, "    return best;", "}", ""]
    return [*step_lines, *reset, *step, *infer]


def _source(net: _Net, P: str, io: _FixedIo, body: list[str], out_layer: Any) -> list[str]:  # noqa: N803
    """``NAME.c``: word macros, runtime helpers, integer tables, readout scales and the functions."""
    g, word = net.g, net.word
    wtype = "uint32_t" if word == 32 else "uint64_t"
    functions = _api_functions(net, P, io, body, out_layer)  # may add helpers: before helper_source
    readout_def = []
    if not io.spiking_out:
        readout_def = [f"const float {P}_readout_scale[{io.n_out}] = {{",
                       "    " + ", ".join(flit(v) for v in _readout_scale(out_layer)),
                       "};", ""]
    return [f"/* {P}.c: generated by slt-deploy (fixed mode); see {P}.h for the API and bit layout. */",
            f'#include "{P}.h"', "#include <string.h>", "",
            "/* Lava's truncating decay uses >> of non-negative values only; a24 wrap uses unsigned ops. */",
            f"typedef {wtype} W_T;", f"#define WB {word}u", f"#define WSH {5 if word == 32 else 6}u",
            f"#define WM {word - 1}u", "", helper_source(g.helpers),
            "/* ---- integer weights and parameters (flash) ---- */",
            *[c_array(t, c_format(t.ctype) if t.ctype not in ("int16_t", "int32_t") else "{}") for t in g.tables],
            *readout_def, *functions]


def _state_field_info(fields: list[str]) -> list[tuple[str, str, int]]:
    """``(ctype, name, count)`` of the state members (``W`` for word arrays), as the size report wants them."""
    state_fields = []
    for f in fields:
        decl = f.strip().split("/*")[0].strip().rstrip(";")
        ctype, rest = decl.split(" ", 1)
        name, _, count = rest.rstrip("]").partition("[")
        state_fields.append(("W" if ctype in ("uint32_t", "uint64_t") and name.startswith(("s_", "p_", "in_bits"))
                             else ctype, name, int(count) if count else 1))
    return state_fields
