"""The fused chain (numba) on ordinary float inputs: the analog first layer stays inside the chain.

Standardized features, images/255 and plain float32 values used to make the chain return
early whenever the whole-row lattice certificate failed. The first layer now runs in the
chain with the per-sum tests (error bound, else lattice: :func:`numba_checked.event_checked`);
a sum neither test accepts is recomputed exactly in the same compiled call (``numba_exact``)
and counted; the run never leaves the chain. Oracle: the reference simulator (spike for
spike, bit for bit) and ``math.fsum`` rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slt_deploy.targets import cpu

from slt_deploy import exact, reference
from slt_deploy.ir import LI, LIF, BinaryWeights, Encoding, FloatWeights, Int8Weights, Linear, Ticket, sequential

pytestmark = pytest.mark.skipif(not cpu.numba_available(), reason="the fused chain is a numba-backend path")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32)))


def _ticket(kind: str, rng: np.random.Generator, k: int = 64) -> Ticket:
    shape = (96, k)
    mask = rng.random(shape) < 0.2
    if kind == "binary":
        w1 = BinaryWeights(mask, rng.random(shape) < 0.5, np.float32(1 / np.sqrt(0.2 * k)))
    elif kind == "float32":
        w1 = FloatWeights(mask, (rng.normal(0, 1 / np.sqrt(0.2 * k), shape) * mask).astype(np.float32))
    else:
        w1 = Int8Weights(mask, rng.integers(-128, 128, shape).astype(np.int8), np.float32(0.002))
    m2 = rng.random((10, 96)) < 0.3
    w2 = FloatWeights(m2, (rng.normal(0, 0.3, (10, 96)) * m2).astype(np.float32)) if kind == "float32" else \
        BinaryWeights(m2, rng.random((10, 96)) < 0.5, np.float32(0.2))
    return sequential((k,), [Linear("fc1", w1, bias=rng.normal(0, 0.1, 96).astype(np.float32)),
                             LIF("l1", (96,), beta=0.9, threshold=0.4), Linear("fc2", w2),
                             LI("ro", (10,), beta=0.9)], 6, Encoding("direct"))


def _inputs(kind: str, n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    digits = load_digits().data.astype(np.float32)[:n]  # 0..16, 64 features
    if kind == "images255":
        return (np.round(digits * 255 / 16) / np.float32(255)).astype(np.float32)
    if kind == "standardized":
        mean, std = digits.mean(0), digits.std(0)
        return ((digits - mean) / np.where(std > 0, std, 1)).astype(np.float32)
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 64)).astype(np.float32)
    x[:, 5] *= np.float32(1e-9)  # far below the rest: the whole-row lattice certificate fails
    return x


class _Spy:
    """Records each fused run's slow-path sums (an int: the run finished in the chain)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from slt_deploy.targets.cpu import chain

        self.calls: list[bool] = []
        real = chain.ChainProgram.run

        def run(prog, x, binary):
            out = real(prog, x, binary)
            self.calls.append(out[2])
            return out
        monkeypatch.setattr(chain.ChainProgram, "run", run)


@pytest.mark.parametrize("kind", ["binary", "int8", "float32"])
@pytest.mark.parametrize("inputs", ["standardized", "images255", "float32-span"])
@pytest.mark.parametrize("batch", [1, 9, 150])  # one row at a time / all rows at once / blocks of 64 rows
def test_analog_first_layer_runs_in_the_chain_and_is_exact(monkeypatch, kind: str, inputs: str, batch: int) -> None:
    ticket = _ticket(kind, np.random.default_rng(3))
    x = _inputs(inputs, max(18, batch))
    if inputs == "float32-span":  # the per-sum tests run (not only the cheap whole-row certificate)
        from slt_deploy.targets.cpu import numba_certificate

        assert not numba_certificate.rows_certified(x[:1], 127.0, -30)
    spy = _Spy(monkeypatch)
    rt = cpu.load(ticket, backend="numba", threads=1)
    rt.run(x[:batch])  # the first run (graph executor) fixes the kernels
    for lo in range(0, len(x), batch):
        xb = x[lo:lo + batch]
        got, ref = rt.run(xb), reference.simulate(ticket, xb)
        assert _same_bits(got.output, ref.output)
        for name, counts in ref.spike_counts.items():
            np.testing.assert_array_equal(got.spike_counts[name], counts)
        assert got.diagnostics.slow_path_sums == 0
    assert spy.calls and all(c == 0 for c in spy.calls)


def test_undecidable_sum_takes_the_compiled_slow_path_in_the_chain(monkeypatch) -> None:
    """1 + 2^-24 is a float32 midpoint; a 1e-40 input breaks the tie (round up) and the lattice."""
    w = BinaryWeights(np.ones((1, 3), bool), np.zeros((1, 3), bool), np.float32(1.0))
    ticket = sequential((3,), [Linear("fc", w), LIF("l", (1,), beta=0.5, threshold=0.5),
                               Linear("o", BinaryWeights(np.ones((1, 1), bool), np.zeros((1, 1), bool), 1.0)),
                               LI("ro", (1,), beta=1.0)], 2, Encoding("direct"))
    x = np.array([[1.0, 2.0**-24, 1e-40]], np.float32)
    spy = _Spy(monkeypatch)
    rt = cpu.load(ticket, backend="numba", threads=1)
    rt.run(x)  # first run: the graph executor fixes the kernels
    before = exact.fallback_count()
    got, ref = rt.run(x), reference.simulate(ticket, x)
    assert _same_bits(got.output, ref.output)
    assert spy.calls == [1] and got.diagnostics.slow_path_sums == 1  # one sum, in the chain
    assert exact.fallback_count() - before == 2  # the process-wide count: the chain's and the reference's
    assert ref.diagnostics.slow_path_sums == 1
    wide = cpu.load(ticket, backend="numba", threads=2)  # a batch split over threads: the counts add up
    xs = np.repeat(x, 8, axis=0)
    wide.run(xs)
    assert wide.run(xs).diagnostics.slow_path_sums == 8


# ----------------------------------------------------------------------------- kernel vs fsum
_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


@st.composite
def _case(draw):
    """Rows of float32 values (huge exponent spans, midpoint pairs, cancellation) and ±1 / int8 codes."""
    k, r = draw(st.integers(1, 8)), draw(st.sampled_from([1, 2, 6]))
    x = np.asarray(draw(st.lists(_F32, min_size=r * k, max_size=r * k)), np.float32).reshape(r, k)
    pick = draw(st.sampled_from(["raw", "cancel", "midpoint"]))
    if pick == "cancel" and k >= 2:
        x[:, 1] = -x[:, 0]
    if pick == "midpoint" and k >= 2:
        x[:, 0], x[:, 1] = np.float32(1.0), np.float32(2.0**-24)
    o = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    return x, o, seed, draw(st.booleans())


@settings(max_examples=150, deadline=None, database=None)
@given(_case())
def test_event_checked_matches_fsum_rounding(case) -> None:
    from slt_deploy.targets.cpu import numba_checked
    from slt_deploy.targets.cpu.stores import Coo, CscStore, CsrStore

    x, o, seed, binary = case
    rng = np.random.default_rng(seed)
    k = x.shape[1]
    mask = rng.random((o, k)) < 0.7
    if binary:
        w = BinaryWeights(mask, rng.random((o, k)) < 0.5, np.float32(1.0))
    else:
        w = Int8Weights(mask, rng.integers(-128, 128, (o, k)).astype(np.int8), np.float32(1.0))
    coo = Coo.from_weights(w)
    csc, csr = CscStore.from_coo(coo), CsrStore.from_coo(coo)
    dense = np.zeros((o, k))
    dense[coo.rows, coo.cols] = coo.codes
    want = np.array([[exact.round_exact(x[r].astype(np.float64) * dense[j]) for j in range(o)]
                     for r in range(x.shape[0])], np.float32).reshape(x.shape[0], o)
    out = np.empty((x.shape[0], o), np.float32)
    nnz = np.bincount(csc.rowidx, minlength=o).astype(np.float64)
    codes = np.zeros(1, np.int8) if csc.codes is None else csc.codes
    negstart = np.zeros(1, np.int64) if csc.negstart is None else csc.negstart
    cols = (csc.colptr, negstart, csc.rowidx.astype(np.int32), codes)
    rows = (csr.rowptr, csr.colidx, csr.codes.astype(np.int8))
    with np.errstate(all="ignore"):
        n = numba_checked.event_checked(x.astype(np.float64), cols, csc.codes is not None, rows, nnz, True,
                                        np.ones(o, np.float32), np.zeros(1, np.float32), False, out)
    assert _same_bits(out, want)  # accepted sums and slow-path sums alike: the exact sum rounded once
    assert 0 <= n <= out.size
