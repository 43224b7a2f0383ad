"""Fused execution of feed-forward chains (numba backend): the whole run in one compiled call.

For a ticket that is a plain chain ``Input -> (Linear | LIF | LI | Flatten)* -> Output``
with binary, int8 or float32 weights (float32: every output row's sums over spikes
certified exact, ``SynapseOp.float_rows_all_ok``), the per-node Python work of the graph
executor (dispatch, allocation, bookkeeping: several µs per node) dominates small batches. After the first
run has fixed every layer's kernel (:mod:`.costmodel`) the runtime compiles the chain into
a small program (one row of integers per layer, arrays in typed lists) that
:func:`_run_chain` interprets with the very kernels of :mod:`.kernels_numba`. Results are
identical by construction. An analog first layer (standardized features, images/255: any
float input) runs inside the chain too, event-driven with the per-sum exactness tests of
:func:`.numba_checked.event_checked` (error bound, else lattice); only when a sum passes
neither (rare: within ~2^-29 relative of a float32 rounding boundary and not on a lattice)
is it recomputed exactly, in the same compiled call (:mod:`.numba_exact`); every run reports
how many did.
"""

# Kernel code uses the math names O, K, R, W, T, B of the docstrings.
# ruff: noqa: E741
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numba import njit
from numba.core.errors import NumbaTypeSafetyWarning
from numba.typed import List

from slt_deploy import exact

from . import numba_base as nb
from . import numba_certificate as ncert
from . import numba_checked as nchk
from . import numba_linear as nlin
from . import numba_neurons as nneu
from .neurons import NeuronOp
from .stores import CscStore, CsrStore, PlaneStore
from .synapse import SynapseOp

# Opcodes (column 0 of a program row).
EV_ANALOG, EV_BIN, EV_CODED, POPCOUNT, GATHER_PLANES, GATHER_CODED, EV_CHECKED, LIF_OP, LI_OP = range(9)
# Row layout: op, O, K, a, b, c, d, scale, bias, e, f, g, h, charge, reset, flag, i, j, k, float codes
_W = 20


class _Arrays:
    """Every array of the program as a uint8 view in one typed list (one unboxing per call).

    The interpreter views entry ``i`` back as its dtype (and shape, from the program row);
    nothing is copied, memory-mapped planes included.
    """

    def __init__(self) -> None:
        self.items: list[np.ndarray] = [np.zeros(8, np.uint8)]  # index 0: placeholder

    def add(self, a: np.ndarray | None) -> int:
        if a is None:
            return 0
        arr = np.asarray(a)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        self.items.append(arr.reshape(-1).view(np.uint8))
        return len(self.items) - 1

    def typed(self) -> Any:
        with warnings.catch_warnings():  # read-only (memory-mapped) arrays: the interpreter never writes them
            warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
            return List(self.items)


class ChainProgram:
    """A compiled description of one chain for one input kind (spikes or analog)."""

    def __init__(self, prog: np.ndarray, arrays: tuple[Any, ...], out_li: bool, out_shape: tuple[int, ...],
                 lif_names: list[str], timesteps: int) -> None:
        self.prog, self.arrays, self.out_li = prog, arrays, out_li
        self.out_shape, self.lif_names, self.timesteps = out_shape, lif_names, timesteps
        self.n_out = 1
        for d in out_shape:
            self.n_out *= int(d)
        self.n_counts = max(1, len(lif_names))
        self.kernels: dict[str, str] = {}  # synapse layer -> kernel, as the chain runs it

    @classmethod
    def build(cls, rt: Any, input_binary: bool) -> ChainProgram | None:
        """The program for ``rt`` (a :class:`.runtime.Runtime`), or None if it is not a fusable chain."""
        if any(b.stepwise for b in rt.blocks):
            return None
        names = [n for b in rt.blocks for n in b.nodes]
        for name in names:
            edges = rt.in_edges[name]
            if name != rt.input_name and (len(edges) != 1 or edges[0].recurrent):
                return None
            if rt.kinds[name] not in ("input", "linear", "lif", "li", "flatten", "output"):
                return None
        # the chain must be linear: each node feeds the next one in block order
        for a, b in zip(names, names[1:], strict=False):
            if rt.in_edges[b][0].src != a:
                return None
        arrays = _Arrays()
        rows: list[list[int]] = []
        lif_names: list[str] = []
        checked: dict[str, str] = {}
        spikes_in = input_binary  # kind of the value flowing into the next node
        last_neuron_li = None
        for name in names[1:]:
            op = rt.ops.get(name)
            if isinstance(op, SynapseOp):
                if rows and not spikes_in:
                    return None  # only the first synapse layer may see analog input
                row = _synapse_row(op, spikes_in, arrays)
                if row is None:
                    return None
                if row[0] == EV_CHECKED:
                    checked[name] = "event"
                rows.append(row)
                spikes_in = False
            elif isinstance(op, NeuronOp):
                rows.append(_neuron_row(op, arrays))
                spikes_in = not op.params.li
                last_neuron_li = op.params.li
                if not op.params.li:
                    lif_names.append(name)
        if not rows or last_neuron_li is None or rows[-1][0] not in (LIF_OP, LI_OP):
            return None  # the output must come straight from a neuron layer
        chain = cls(np.asarray(rows, np.int64), arrays.typed(), bool(last_neuron_li), rt.shapes[rt.output_name],
                    lif_names, rt.timesteps)
        chain.kernels = rt.kernels_used() | checked  # fixed from here on: reported by every fused run
        return chain

    def run(self, x: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """``x``: input rows ``(steps, B, K)`` (steps 1 when static): uint8 spikes or float32 values.

        Returns (output ``(T, B, *out)``, spike counts ``(n_lif, T)``, slow-path sums).
        """
        T = self.timesteps
        b = x.shape[1]
        flat = x.reshape(x.shape[0] * b, -1)
        if self.out_li:
            out_f, out_s = np.empty((T, b, self.n_out), np.float32), _NO_U8_3
        else:
            out_f, out_s = _NO_F32_3, np.empty((T, b, self.n_out), np.uint8)
        counts = np.zeros((self.n_counts, T), np.int64)
        if binary:
            xa, xs = _NO_F64, np.ascontiguousarray(flat)
        else:
            xa, xs = np.ascontiguousarray(flat, dtype=np.float64), _NO_U8
        slow = int(_run_chain(self.prog, self.arrays, nlin._LANES, xa, xs, T, b, out_f, out_s, counts))
        if slow:
            exact.count_slow_path(slow)  # the process-wide count too (the run reports its own)
        out = out_f if self.out_li else out_s
        return out.reshape(T, b, *self.out_shape), counts, slow


def _synapse_row(op: SynapseOp, spikes_in: bool, arrays: _Arrays) -> list[int] | None:
    """The program row of a linear synapse layer, or None if its store has no chain kernel."""
    if op.conv or (op.kind == "float32" and spikes_in and not op.float_rows_all_ok):
        return None  # float weights over spikes: every row's sums must be certified exact
    plan = op._plans.get(spikes_in)
    if plan is None:
        return None
    _fn, store, takes_spikes = plan
    row = [0] * _W
    row[1], row[2] = op.o, op.k
    # float32 weights have no scale: I = float32(S) + b, and float32(S)·1 is float32(S)
    row[7] = arrays.add(op.scale if op.scale is not None else np.ones(op.o, np.float32))
    row[8] = arrays.add(op.bias)
    row[15] = 1 if op.bias is not None else 0
    row[19] = 1 if op.kind == "float32" else 0
    if not spikes_in:
        return _checked_row(op, row, arrays)
    row[12] = 1  # input rows are spikes (gather converts them)
    if isinstance(store, CscStore):
        row[3] = arrays.add(store.colptr)
        if store.codes is None:
            row[4] = arrays.add(store.negstart)
            row[11] = store.max_lane
            row[0] = EV_BIN if takes_spikes else EV_ANALOG
            row[13] = 0  # not coded
        else:
            row[6] = arrays.add(store.codes)
            row[0] = EV_CODED if takes_spikes else EV_ANALOG
            row[13] = 1  # coded
            if row[0] == EV_ANALOG and row[19] == 1:
                return None
        row[5], row[14] = arrays.add(store.rowidx), 0 if store.rowidx.dtype == np.uint16 else 1
    elif isinstance(store, PlaneStore):
        row[3] = arrays.add(store.neg)
        row[4] = arrays.add(store.mask)
        row[10] = store.neg.shape[1]
        row[0] = POPCOUNT if takes_spikes else GATHER_PLANES
    elif isinstance(store, CsrStore):
        row[0] = GATHER_CODED
        row[3] = arrays.add(store.rowptr)
        row[5] = arrays.add(store.colidx)
        row[6] = arrays.add(store.codes)
    else:
        return None
    if row[19] == 1 and row[0] in (POPCOUNT, GATHER_PLANES):
        return None  # bit planes hold binary weights only
    return row


def _checked_row(op: SynapseOp, row: list[int], arrays: _Arrays) -> list[int]:
    """The analog first layer: event-driven over CSC codes with the per-sum exactness tests
    (:func:`.numba_checked.event_checked`), on any float input, certified or not."""
    store = op._store("event")
    row[0] = EV_CHECKED
    row[3], row[4] = arrays.add(store.colptr), arrays.add(store.negstart)
    row[5], row[14] = arrays.add(store.rowidx), 0 if store.rowidx.dtype == np.uint16 else 1
    row[6], row[13] = arrays.add(store.codes), 0 if store.codes is None else 1
    row[9] = arrays.add(np.array([op.w_max_all, op.w_grid_min], np.float64))  # whole-row lattice certificate
    row[10] = arrays.add(np.bincount(store.rowidx, minlength=op.o).astype(np.float64))  # kept synapses per output
    csr = op._csr_store()  # the same weights by output: the lattice test of the rare sums the bound leaves
    row[16], row[17], row[18] = arrays.add(csr.rowptr), arrays.add(csr.colidx), arrays.add(csr.codes)
    return row


def _neuron_row(op: NeuronOp, arrays: _Arrays) -> list[int]:
    """The program row of a LIF or LI layer."""
    p = op.params
    row = [0] * _W
    row[0] = LI_OP if p.li else LIF_OP
    row[1] = op.n
    row[3], row[4] = arrays.add(p.beta), arrays.add(p.threshold)
    row[5], row[6] = arrays.add(p.bias), arrays.add(p.reset_amount)
    row[9] = arrays.add(p.tau)
    row[13], row[14] = p.charge, p.reset
    row[15] = 1 if p.bias is not None else 0
    return row


_NO_F64 = np.zeros((1, 1), np.float64)
_NO_U8 = np.zeros((1, 1), np.uint8)
_NO_U8_3 = np.zeros((1, 1, 1), np.uint8)
_NO_F32_3 = np.zeros((1, 1, 1), np.float32)


@njit(cache=True, nogil=True)
def _run_chain(prog, buf, lanes, xa, xs, T, B, out_f, out_s, counts):
    """Interpret a chain program (see :class:`ChainProgram`); returns the number of slow-path sums.

    ``buf[i]`` is array ``i`` as bytes (viewed back here); outputs go to ``out_f`` (LI
    readout) or ``out_s`` (spiking output), spike counts per LIF layer to ``counts``.
    """
    n_ops = prog.shape[0]
    spk = xs
    cur = np.zeros((1, 1), np.float32)
    cur_rows = 1  # steps held by ``cur``: 1 (static) or T
    lif_i = 0
    slow = 0
    for i in range(n_ops):
        op = prog[i, 0]
        if op == EV_CHECKED:
            cur = np.empty((xa.shape[0], prog[i, 1]), np.float32)
            slow += _checked_layer(prog[i], buf, xa, cur)  # sums neither test accepts: computed exactly
            cur_rows = xa.shape[0] // B
        elif op <= GATHER_CODED:
            if op == EV_ANALOG or op == GATHER_PLANES or op == GATHER_CODED:
                x = spk.astype(np.float64)  # gather over spike rows: exact integer sums in float64
                cur = _gather_layer(prog[i], buf, x)
                cur_rows = x.shape[0] // B
            else:
                cur = _spike_layer(prog[i], buf, lanes, spk, B)
                cur_rows = spk.shape[0] // B
        else:
            N = prog[i, 1]
            cur3 = cur.reshape((cur_rows, B, N))
            v = np.zeros((B, N), np.float32)
            s = np.zeros((B, N), np.float32)
            c = np.zeros(T, np.int64)
            li = op == LI_OP
            last = i == n_ops - 1
            if li:
                m = out_f if last else np.empty((T, B, N), np.float32)
                sp = out_s
            else:
                m = out_f
                sp = out_s if last else np.empty((T, B, N), np.uint8)
            no_rec = np.zeros((1, 1, 1), np.float32)  # a chain has no recurrent layer
            nneu._neuron(cur3, T, buf[prog[i, 3]].view(np.float32), buf[prog[i, 4]].view(np.float32),
                         buf[prog[i, 5]].view(np.float32), prog[i, 15] == 1, buf[prog[i, 6]].view(np.float32),
                         buf[prog[i, 9]].view(np.float32), prog[i, 13], prog[i, 14], li, v, s, sp, m, c,
                         no_rec, False)
            if li:
                cur = m.reshape((T * B, N))
                cur_rows = T
            else:
                spk = sp.reshape((T * B, N))
                counts[lif_i, :] = c
                lif_i += 1
    return slow


@njit(cache=True, nogil=True)
def _checked_layer(row, buf, x, out):
    """The analog first layer (:data:`EV_CHECKED`); returns the number of slow-path sums."""
    if row[19] == 1:  # float32 weights (CSC rows are int32)
        return _checked_with(row, buf, x, out, buf[row[5]].view(np.int32), buf[row[6]].view(np.float32),
                             buf[row[18]].view(np.float32))
    codes, csr_codes = buf[row[6]].view(np.int8), buf[row[18]].view(np.int8)
    if row[14] == 0:
        return _checked_with(row, buf, x, out, buf[row[5]].view(np.uint16), codes, csr_codes)
    return _checked_with(row, buf, x, out, buf[row[5]].view(np.int32), codes, csr_codes)


@njit(cache=True, nogil=True)
def _checked_with(row, buf, x, out, rowidx, codes, csr_codes):
    cert = buf[row[9]].view(np.float64)  # max |code| and lattice exponent of the weights
    check = not ncert._rows_certified(x, cert[0], int(cert[1]))
    csc = (buf[row[3]].view(np.int64), buf[row[4]].view(np.int64), rowidx, codes)
    csr = (buf[row[16]].view(np.int64), buf[row[17]].view(np.int32), csr_codes)
    return nchk.event_checked(x, csc, row[13] == 1, csr, buf[row[10]].view(np.float64), check,
                              buf[row[7]].view(np.float32), buf[row[8]].view(np.float32), row[15] == 1, out)


@njit(cache=True, nogil=True)
def _gather_layer(row, buf, x):
    """A synapse layer over float64 input rows ``x`` (analog values or spikes as 0/1): float32 currents."""
    op, O = row[0], row[1]
    scale = buf[row[7]].view(np.float32)
    bias = buf[row[8]].view(np.float32)
    has_bias = row[15] == 1
    rows = x.shape[0]
    out = np.empty((rows, O), np.float32)
    empty_u64 = np.zeros((1, 1), np.uint64)
    if op == EV_ANALOG:
        acc = np.zeros(O, np.float64)
        colptr = buf[row[3]].view(np.int64)
        negstart = buf[row[4]].view(np.int64)
        codes = buf[row[6]].view(np.int8)
        if row[14] == 0:
            nlin._lin_event_analog(x, colptr, negstart, buf[row[5]].view(np.uint16), codes,
                                   row[13] == 1, acc, scale, True, bias, has_bias, out)
        else:
            nlin._lin_event_analog(x, colptr, negstart, buf[row[5]].view(np.int32), codes,
                                   row[13] == 1, acc, scale, True, bias, has_bias, out)
    elif op == GATHER_PLANES:
        W = row[10]
        xt = np.ascontiguousarray(x.T)
        neg = buf[row[3]].view(np.uint64).reshape((O, W))
        if row[4] > 0:
            mask = buf[row[4]].view(np.uint64).reshape((O, W))
            nlin._lin_gather_planes(xt, neg, mask, True, scale, True, bias, has_bias, out)
        elif rows <= nb._FEW_ROWS:
            nlin._lin_gather_planes_rows(x, neg, empty_u64, False, scale, True, bias, has_bias, out)
        else:
            nlin._lin_gather_planes(xt, neg, empty_u64, False, scale, True, bias, has_bias, out)
    elif row[19] == 1:
        nlin._lin_gather_coded(np.ascontiguousarray(x.T), buf[row[3]].view(np.int64), buf[row[5]].view(np.int32),
                               buf[row[6]].view(np.float32), scale, True, bias, has_bias, out)
    else:
        nlin._lin_gather_coded(np.ascontiguousarray(x.T), buf[row[3]].view(np.int64), buf[row[5]].view(np.int32),
                               buf[row[6]].view(np.int8), scale, True, bias, has_bias, out)
    return out


@njit(cache=True, nogil=True)
def _spike_layer(row, buf, lanes, spk, B):
    """A synapse layer over uint8 spike rows ``spk`` (bit-packed here): popcount or event kernels."""
    op, O, K = row[0], row[1], row[2]
    scale = buf[row[7]].view(np.float32)
    bias = buf[row[8]].view(np.float32)
    has_bias = row[15] == 1
    R = spk.shape[0]
    xw = np.empty((R, (K + 63) // 64), np.uint64)
    nb._pack(spk, xw)
    out = np.empty((R, O), np.float32)
    if op == POPCOUNT:
        W = row[10]
        neg = buf[row[3]].view(np.uint64).reshape((O, W))
        if row[4] > 0:
            mask = buf[row[4]].view(np.uint64).reshape((O, W))
            nlin._lin_popcount(xw, neg, mask, True, scale, True, bias, has_bias, out)
        else:
            nlin._lin_popcount(xw, neg, np.zeros((1, 1), np.uint64), False, scale, True, bias, has_bias, out)
    elif op == EV_BIN:
        colptr = buf[row[3]].view(np.int64)
        negstart = buf[row[4]].view(np.int64)
        steps = R // B
        if steps > 1 and row[11] <= 255:
            if row[14] == 0:
                nlin._lin_event_binary_steps(xw, steps, colptr, negstart, buf[row[5]].view(np.uint16),
                                             lanes, scale, True, bias, has_bias, out)
            else:
                nlin._lin_event_binary_steps(xw, steps, colptr, negstart, buf[row[5]].view(np.int32),
                                             lanes, scale, True, bias, has_bias, out)
        elif row[14] == 0:
            nlin._lin_event_binary(xw, colptr, negstart, buf[row[5]].view(np.uint16), scale, True,
                                   bias, has_bias, out)
        else:
            nlin._lin_event_binary(xw, colptr, negstart, buf[row[5]].view(np.int32), scale, True,
                                   bias, has_bias, out)
    elif row[19] == 1:  # float32 weights, rows certified exact (float64 sums; CSC rows are int32)
        nlin._lin_event_coded(xw, buf[row[3]].view(np.int64), buf[row[5]].view(np.int32), buf[row[6]].view(np.float32),
                              np.zeros(O, np.float64), scale, True, bias, has_bias, out)
    else:
        acc = np.zeros(O, np.int64)
        colptr = buf[row[3]].view(np.int64)
        codes = buf[row[6]].view(np.int8)
        if row[14] == 0:
            nlin._lin_event_coded(xw, colptr, buf[row[5]].view(np.uint16), codes, acc, scale, True,
                                  bias, has_bias, out)
        else:
            nlin._lin_event_coded(xw, colptr, buf[row[5]].view(np.int32), codes, acc, scale, True,
                                  bias, has_bias, out)
    return out
