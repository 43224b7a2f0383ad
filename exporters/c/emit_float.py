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

Layout: :mod:`.plan` (the handler table and the planner), :mod:`.buffers` (where values live),
:mod:`.gen` (tables, helpers, loop builders shared with fixed mode), :mod:`.float_synapse` and
:mod:`.float_nodes` (one emitter per node kind); this module assembles the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slt_deploy.ir.graph import Ticket

from . import rate
from .gen import Gen, c_array, c_format
from .plan import HANDLERS, Plan, make_plan
from .runtime import helper_source

HEADER_DOC = """\
/* {P}.h: spiking network exported by slt-deploy (C99, float mode).
 *
 * {summary}
 *
 * API (no malloc; all state lives in the caller's {P}_state, e.g. a static global):
 *   void {P}_reset({P}_state *s);      zero membranes, spikes and the step counter
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
 * reference on any IEEE-754 float32 target with round-to-nearest and no flush-to-zero.{rate_doc}
 */
"""



@dataclass(frozen=True)
class _Io:
    """One step's input and output: encoding, sizes, and lengths in ``NAME_input_t`` / ``NAME_output_t``."""

    enc: str
    n_in: int
    n_out: int
    timesteps: int
    spiking_out: bool
    in_len: int
    out_len: int


def generate_float(ticket: Ticket, prefix: str, word: int, cache_static: bool = True) -> tuple[str, str, dict]:
    """(header text, source text, info) of the float-mode C code for ``ticket``."""
    plan = make_plan(ticket, word, cache_static)
    g = Gen(ticket, prefix, word, plan)
    enc = ticket.encoding.kind
    n_in = math.prod(ticket.input_shape)
    n_out = math.prod(ticket.output_shape)
    spiking_out = plan.refs[ticket.output.name].kind == "bits"
    in_words32 = plan.nwords(n_in) * (word // 32)
    out_words32 = plan.nwords(n_out) * (word // 32)
    io = _Io(enc, n_in, n_out, ticket.timesteps, spiking_out, in_words32 if enc == "spikes" else n_in,
             out_words32 if spiking_out else n_out)
    body, uses_reuse = _step_body(g, plan)
    hdr = _header(ticket, plan, prefix, word, io)
    src = _source(g, ticket, plan, prefix, io, body, uses_reuse)
    info = {"tables_bytes": sum(t.nbytes for t in g.tables), "layers": g.layer_info,
            "state_fields": plan.state_fields, "float_arena": plan.float_arena, "word_arena": plan.word_arena,
            "acc_limbs": g.acc_limbs, "spiking_output": spiking_out, "in_len": io.in_len, "out_len": io.out_len,
            "n_in": n_in, "n_out": n_out, "encoding": enc, "timesteps": ticket.timesteps}
    return "\n".join(hdr), "\n".join(src), info


def _step_body(g: Gen, plan: Plan) -> tuple[list[str], bool]:
    """Every node's block in order (static ones once per inference), then the recurrent copies."""
    body: list[str] = []
    uses_reuse = False
    for name in plan.order:
        node = g.ticket.node(name)
        code = HANDLERS.handler(node).emit_float(g, node)
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
    return body, uses_reuse


def _state_fields(plan: Plan, word: int, enc: str) -> list[str]:
    """The members of ``NAME_state``, each with a comment naming its node."""
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
    fields.append("    uint32_t t;           /* steps since reset */")
    return fields


def _rate_doc(P: str, enc: str) -> str:  # noqa: N803 - the C prefix
    if enc != "rate":
        return ""
    return (f"\n * Rate-coded input: the rate code {P.upper()}_RATE_CODE (slt_deploy/ratecode.py), keyed by each"
            f"\n * step's x, {P.upper()}_RATE_SEED and the step counter: a sample's spikes are those the"
            "\n * reference draws for it in any batch.")


def _header(ticket: Ticket, plan: Plan, P: str, word: int, io: _Io) -> list[str]:  # noqa: N803 - the C prefix
    """``NAME.h``: the API documentation, sizes, types and the state struct."""
    enc, n_in, n_out, T, spiking_out, in_len, out_len = (io.enc, io.n_in, io.n_out, io.timesteps, io.spiking_out,
                                                         io.in_len, io.out_len)
    in_t = "uint32_t" if enc == "spikes" else "float"
    out_t = "uint32_t" if spiking_out else "float"
    count_t = "int32_t" if spiking_out else "float"
    fields = _state_fields(plan, word, enc)
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
    return [HEADER_DOC.format(P=P, summary=summary, in_doc=in_doc, out_doc=out_doc, infer_doc=infer_doc,
                              count_doc=count_doc, T=T, n_out=n_out, word=word, rate_doc=_rate_doc(P, enc)),
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
            f"#define {P.upper()}_FIXED_POINT 0", *rate.header_macros(ticket, P), "",
            f"typedef {in_t} {P}_input_t;", f"typedef {out_t} {P}_output_t;", f"typedef {count_t} {P}_count_t;", "",
            f"typedef struct {P}_state {{", *fields, f"}} {P}_state;", "",
            f"void {P}_reset({P}_state *s);",
            f"void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out);",
            f"int {P}_infer({P}_state *s, const {P}_input_t *x, {P}_count_t *counts);", "",
            "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P.upper()}_H */", ""]


def _api_functions(g: Gen, ticket: Ticket, plan: Plan, P: str, io: _Io, body: list[str],  # noqa: N803
                   uses_reuse: bool) -> list[str]:
    """``run_step`` and the public ``NAME_reset`` / ``NAME_step`` / ``NAME_infer``."""
    word, n_out, T, out_len = g.word, io.n_out, io.timesteps, io.out_len
    out_ref = plan.refs[ticket.output.name]
    step_lines = [f"static void run_step({P}_state *s, const {P}_input_t *x, int reuse)", "{"]
    if g.acc_limbs:
        step_lines.append(f"    int64_t acc[{g.acc_limbs}];")
    step_lines.append("    (void)x;")
    if not uses_reuse:
        step_lines.append("    (void)reuse;")
    step_lines += ["    " + ln for ln in body]
    step_lines += ["    s->t++;", "}", ""]

    if io.spiking_out:
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
    reset += ["}", ""]
    step = [f"void {P}_step({P}_state *s, const {P}_input_t *x, {P}_output_t *out)", "{",
            "    run_step(s, x, 0);", *copy_out, "}", ""]
    advance = f" + t * {io.in_len}u" if io.enc == "spikes" else ""
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
    return [*step_lines, *reset, *step, *infer]


def _source(g: Gen, ticket: Ticket, plan: Plan, P: str, io: _Io, body: list[str],  # noqa: N803
            uses_reuse: bool) -> list[str]:
    """``NAME.c``: build checks, word macros, runtime helpers, flash tables and the functions."""
    word = g.word
    functions = _api_functions(g, ticket, plan, P, io, body, uses_reuse)  # may add helpers: before helper_source
    tables = [c_array(t, c_format(t.ctype)) for t in g.tables]
    return [f"/* {P}.c: generated by slt-deploy; see {P}.h for the API, bit layout and build flags. */",
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
            *functions]
