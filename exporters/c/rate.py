"""The rate code in generated C (both modes): the helper functions, the header macros, the input block.

The arithmetic is :data:`slt_deploy.ratecode.C_SOURCE`, the C twin of the numpy code every
other target uses; a step's spikes depend on the ``x`` given to that step, the seed and the
step counter ``s->t`` only, so ``NAME_infer`` on one sample equals the reference on any batch.
"""

from __future__ import annotations

from slt_deploy import ratecode
from slt_deploy.ir.graph import Ticket

from .gen import Gen


def header_macros(ticket: Ticket, prefix: str) -> list[str]:
    """``NAME_RATE_SEED`` and ``NAME_RATE_CODE`` for a rate-coded ticket (refuses a retired code), else nothing."""
    enc = ticket.encoding
    if enc.kind != "rate":
        return []
    ratecode.require_current(enc.code, enc.seed)
    P = prefix.upper()  # noqa: N806 - the C prefix
    return [f"#define {P}_RATE_SEED 0x{int(enc.seed):016x}ull   /* rate code seed ({enc.seed}) */",
            f'#define {P}_RATE_CODE "{enc.code}"   /* slt_deploy/ratecode.py, docs/semantics.md */']


def input_block(gen: Gen, dest: str, n: int, nwords: int) -> list[str]:
    """This step's input spikes into the bit vector ``dest`` (``nwords`` words) from the probabilities ``x``."""
    enc = gen.ticket.encoding
    ratecode.require_current(enc.code, enc.seed)
    gen.helpers.add("rate_code")
    return [f"{{   /* input: rate code {enc.code}, keyed by this step's x, the seed and s->t */",
            f"    const uint64_t key = rate_key({gen.prefix.upper()}_RATE_SEED, x, {n}u);",
            "    uint32_t i;",
            f"    memset({dest}, 0, sizeof(W_T) * {nwords}u);",
            f"    for (i = 0; i < {n}u; ++i)",
            f"        if (rate_fire(key, s->t, i, x[i])) {dest}[i >> WSH] |= (W_T)1 << (i & WM);",
            "}"]
