"""Per-layer kernel choice: predicted cost of a call, cheapest applicable kernel wins.

A synapse layer ``(O, K)`` with ``nnz`` kept synapses, ``W = ceil(K/64)`` words per row and
``planes`` bit planes (1 when every synapse is kept, else 2), called on ``R`` input rows
whose nonzero fraction is ``rate`` (spike rate, or nonzero analog inputs; measured on the
first batch the layer sees), costs about

    popcount   R · O · W · planes · c_word
    event      R · (rate·K · c_spike + rate·nnz · c_event)
    gather     O · K · c_unpack  +  R · (O · W · planes · c_row + nnz · c_gather)

(``c_unpack``: per-call expansion of the weights, numpy's dense BLAS blocks). Kernels whose
weight store would exceed ``MAX_BITS_PER_SYNAPSE`` bits per dense synapse (the two bit
planes' worst case) are skipped when another applicable kernel fits: the event store of a
binary layer takes about 16 bits per *kept* synapse, so it serves layers up to ~12% dense,
and a dense layer keeps its 1-bit plane. (Conv kernels are small next to the synapses they
unroll to, so the budget does not apply to them.) Conv layers
count output pixels for popcount and gather and input pixels for event. Constants are
nanoseconds measured on the reference machine (AMD EPYC Zen 3, 2 cores) with a 1024x1024
layer at densities 100 / 10 / 3 % and R = 8 and 512 rows; only their ratios matter. The
choice is made once per layer and input kind (spikes or analog), on the first call, so a
runtime serving one batch size gets the kernel for that size.

Conv layers on the numba backend have their own constants (:data:`CONV_NUMBA`, measured on
the VGG-style layers of ``benchmarks/runtime_matrix.py``: 3x32x32 analog input, 32-128
channels, 3% dense, spike rates 15-42%), per ``R`` rows of ``P_in`` / ``P_out`` pixels:

    popcount   R · P_out · O · taps·ceil(C/64) · planes · c_word
    event      R · (P_in · C · c_scan + P_out · O · c_out + P_out · rate · nnz · c_add)
    gather     R · P_out · nnz · c_term

(``c_add``: 0.15 ns with the SWAR lanes of binary weights over spikes, 0.5 ns for other
spikes, 2.4 ns for analog input).
"""

from __future__ import annotations

from dataclasses import dataclass

KERNELS = ("popcount", "event", "gather")
MAX_BITS_PER_SYNAPSE = 2.1


@dataclass(frozen=True)
class Constants:
    c_word: float
    c_spike: float
    c_event: float
    c_unpack_dense: float
    c_unpack_masked: float
    c_row: float
    c_gather: float


CONSTANTS = {
    "numba": Constants(c_word=0.4, c_spike=20.0, c_event=0.5, c_unpack_dense=0.0, c_unpack_masked=0.0,
                       c_row=0.5, c_gather=0.35),
    "numpy": Constants(c_word=2.0, c_spike=350.0, c_event=13.0, c_unpack_dense=7.5, c_unpack_masked=30.0,
                       c_row=0.0, c_gather=0.04),
}


@dataclass(frozen=True)
class ConvConstants:
    """numba conv kernels (:mod:`.numba_conv_event`, :mod:`.numba_conv`): ns per input value
    scanned, per output written, per scatter add (binary spikes: SWAR lanes over the steps;
    else one add per step), per gathered term, per popcount word."""

    c_scan: float
    c_out: float
    c_add_lanes: float
    c_add: float
    c_add_analog: float
    c_term: float
    c_word: float


CONV_NUMBA = ConvConstants(c_scan=0.45, c_out=0.5, c_add_lanes=0.15, c_add=0.5, c_add_analog=2.4,
                           c_term=0.7, c_word=1.2)


def applicable(binary_input: bool, weight_kind: str) -> tuple[str, ...]:
    """Kernels that can serve a layer: popcount needs spikes and binary weights."""
    if not binary_input:
        return ("event", "gather")
    if weight_kind == "binary":
        return ("popcount", "event", "gather")
    return ("event", "gather")


def predicted_costs(o: int, k: int, nnz: int, rate: float, dense: bool, backend: str, rows: int = 1,
                    pixels_out: int = 1, pixels_in: int = 1, taps: int = 1, analog: bool = False,
                    conv: bool = False, lanes: bool = False) -> dict[str, float]:
    """Predicted cost (ns) of one call on ``rows`` input rows; conv passes pixel counts and taps
    (``lanes``: binary weights over spikes, the event kernel's SWAR pass)."""
    c = CONSTANTS[backend]
    words = -(-k // 64) if taps == 1 else taps * -(-(k // taps) // 64)
    planes = 1 if dense else 2
    per_in = k / taps  # inputs per pixel
    if conv and backend == "numba":
        return _conv_numba(o, nnz, rate, rows, pixels_out, pixels_in, per_in, words, planes, lanes, analog)
    gather_dense = c.c_gather if backend == "numpy" else c.c_gather * nnz / max(1, o * k)
    return {
        "popcount": rows * pixels_out * o * words * planes * c.c_word,
        "event": rows * (pixels_in * rate * per_in * c.c_spike + pixels_out * rate * nnz * c.c_event),
        "gather": o * k * (c.c_unpack_dense if dense else c.c_unpack_masked)
        + rows * pixels_out * (o * words * planes * c.c_row + o * k * gather_dense),
    }


def _conv_numba(o: int, nnz: int, rate: float, rows: int, pixels_out: int, pixels_in: int, per_in: float,
                words: int, planes: int, lanes: bool, analog: bool) -> dict[str, float]:
    """numba conv: popcount per output word; event = scan every input + finish every output +
    one add per (spike, kept tap); gather = one vectorized term per (output pixel, kept tap)."""
    c = CONV_NUMBA
    add = c.c_add_analog if analog else (c.c_add_lanes if lanes else c.c_add)
    return {
        "popcount": rows * pixels_out * o * words * planes * c.c_word,
        "event": rows * (pixels_in * per_in * c.c_scan + pixels_out * o * c.c_out + pixels_out * rate * nnz * add),
        "gather": rows * pixels_out * nnz * c.c_term,
    }


def store_bits(kernel: str, weight_kind: str, o: int, k: int, nnz: int, dense: bool, conv: bool) -> float:
    """Bits per dense synapse of the store a kernel needs (see :mod:`.stores`)."""
    n = max(1, o * k)
    index_bits = 16 if (weight_kind == "binary" and not conv and o <= 65536) else 32
    code_bits = 0 if (weight_kind == "binary" and not conv) else (32 if weight_kind == "float32" else 8)
    if kernel == "popcount" or (kernel == "gather" and weight_kind == "binary" and not conv):
        return 1.0 if dense else 2.0
    if kernel == "event":
        return (nnz * (index_bits + code_bits) + 64 * (k + 1) + (64 * k if code_bits == 0 else 0)) / n
    return (nnz * (32 + code_bits) + 64 * (o + 1)) / n  # gather over CSR rows


def choose(binary_input: bool, weight_kind: str, forced: str | None, conv: bool = False, **shape) -> str:
    """The kernel for a layer: ``forced`` when it applies, else the cheapest applicable one whose
    store fits :data:`MAX_BITS_PER_SYNAPSE` (the cheapest of all when none fits; conv: no budget)."""
    options = applicable(binary_input, weight_kind)
    if forced in options:
        return forced
    if len(options) == 1:
        return options[0]
    fits = [name for name in options
            if conv or store_bits(name, weight_kind, shape["o"], shape["k"], shape["nnz"], shape["dense"], conv)
            <= MAX_BITS_PER_SYNAPSE]
    costs = predicted_costs(**shape, conv=conv, lanes=binary_input and weight_kind == "binary")
    return min(fits or options, key=lambda name: costs[name])
