"""Property tests of the exact-sum rule's fast test (error bound + lattice) against fsum rounding.

Every entry of :func:`slt_deploy.exact.exact_matmul` / :func:`exact_sum` must equal, bit for
bit, :func:`slt_deploy.exact.round_exact` of its terms (``math.fsum`` plus the midpoint
correction), on ordinary data and on adversarial sums: huge exponent spans, exact float32
midpoints (and a tiny term breaking the tie), subnormals, cancellation.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slt_deploy import exact


def _oracle_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = np.empty((x.shape[0], w.shape[0]), np.float32)
    for r in range(x.shape[0]):
        for o in range(w.shape[0]):
            out[r, o] = exact.round_exact(x[r].astype(np.float64) * w[o].astype(np.float64))
    return out


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32)))


def _check(x: np.ndarray, w: np.ndarray) -> None:
    got = exact.exact_matmul(x.astype(np.float64), w.astype(np.float64))
    assert _same_bits(got, _oracle_matmul(x, w))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("seed", range(3))
def test_standardized_inputs_float_weights(seed: int) -> None:
    rng = _rng(seed)
    raw = rng.normal(3.0, 2.0, size=(40, 64)).astype(np.float32)
    x = ((raw - raw.mean(0)) / raw.std(0)).astype(np.float32)
    w = (rng.normal(size=(24, 64)) * (rng.random((24, 64)) < 0.3)).astype(np.float32)
    _check(x, w)


def test_images_over_255() -> None:
    rng = _rng(5)
    x = (rng.integers(0, 256, size=(30, 49)).astype(np.float32) / np.float32(255))
    w = rng.normal(0, 0.2, size=(20, 49)).astype(np.float32)
    _check(x, w)


def test_huge_exponent_spans() -> None:
    rng = _rng(7)
    def spread(shape: tuple[int, int]) -> np.ndarray:
        return (rng.normal(size=shape) * 2.0 ** rng.integers(-60, 60, shape)).astype(np.float32)

    _check(spread((20, 16)), spread((12, 16)))


def test_exact_midpoints_and_tie_breakers() -> None:
    one, half_ulp = np.float32(1.0), np.float32(2.0 ** -24)
    cases = [
        [one, half_ulp, 0.0],                           # exactly 1 + 2^-24: tie -> even (1.0)
        [one, half_ulp, np.float32(2.0 ** -80)],       # just above the midpoint -> 1 + 2^-23
        [one, half_ulp, np.float32(-(2.0 ** -80))],    # just below -> 1.0
        [one + np.float32(2.0 ** -23), half_ulp, 0.0],  # tie -> even (1 + 2^-22)
        [np.float32(2.0 ** 24), one, 0.0],             # integer midpoint 2^24 + 1
    ]
    x = np.asarray(cases, np.float32)
    w = np.ones((3, 3), np.float32)
    _check(x, w)
    got = exact.exact_matmul(x.astype(np.float64), w.astype(np.float64))[:, 0]
    assert got[0] == np.float32(1.0) and got[1] == np.nextafter(one, np.float32(2))
    assert got[2] == np.float32(1.0) and got[4] == np.float32(2.0 ** 24)


def test_subnormals_and_cancellation() -> None:
    tiny = np.float32(1e-45)  # smallest float32 subnormal
    x = np.asarray([[tiny, tiny * 3, 0.0, 0.0],
                    [np.float32(1e30), np.float32(-1e30), tiny, 0.0],
                    [np.float32(0.1), np.float32(-0.1), 0.0, 0.0],
                    [np.float32(1e-40), np.float32(3e-39), np.float32(-2e-39), tiny]], np.float32)
    w = np.asarray([[1.0, 1.0, 1.0, 1.0], [0.5, 0.25, 1.0, -1.0], [1e-5, 2.0, 3.0, 1.0]], np.float32)
    _check(x, w)


def test_round_exact_agrees_with_fractions_at_midpoints() -> None:
    terms = np.asarray([1.0, 2.0 ** -24, 2.0 ** -90])
    want = Fraction(1) + Fraction(1, 2 ** 24) + Fraction(1, 2 ** 90)
    got = exact.round_exact(terms)
    lo, hi = np.float32(1.0), np.nextafter(np.float32(1.0), np.float32(2))
    assert got == (hi if abs(Fraction(float(hi)) - want) < abs(Fraction(float(lo)) - want) else lo)


def test_exact_sum_pool_windows_match_fsum() -> None:
    rng = _rng(11)
    t = (rng.normal(size=(4, 3, 5, 5)) * 2.0 ** rng.integers(-40, 40, (4, 3, 5, 5))).astype(np.float32)
    got = exact.exact_sum(t.astype(np.float64), (-2, -1))
    want = np.asarray([[exact.round_exact(t[a, b].astype(np.float64)) for b in range(3)] for a in range(4)])
    assert _same_bits(got, want)


def test_slow_path_is_rare_on_real_data() -> None:
    rng = _rng(3)
    raw = rng.normal(size=(64, 784)).astype(np.float32)
    x = ((raw - raw.mean(0)) / raw.std(0)).astype(np.float64)
    w = (rng.normal(size=(256, 784)) * (rng.random((256, 784)) < 0.2)).astype(np.float32).astype(np.float64)
    before = exact.fallback_count()
    exact.exact_matmul(x, w)
    assert exact.fallback_count() - before <= 0.001 * 64 * 256


def test_unambiguous_is_false_when_a_boundary_is_inside() -> None:
    mid = 1.0 + 2.0 ** -24  # float32 rounding boundary between 1 and 1 + 2^-23
    assert not exact.unambiguous(np.asarray([mid]), np.asarray([1.0]), 8)[0]
    assert exact.unambiguous(np.asarray([1.0 + 2.0 ** -26]), np.asarray([1.0]), 8)[0]
    assert not exact.unambiguous(np.asarray([1.0]), np.asarray([1.0]), 8, np.float64)[0]


# ----------------------------------------------------------------------------- runtimes on real data
def _real_tickets():
    from sklearn.datasets import load_digits

    from slt_deploy.ir import LI, LIF, Conv2d, Encoding, Flatten, FloatWeights, Linear, sequential

    rng = _rng(21)

    def fw(shape: tuple[int, ...], density: float) -> FloatWeights:
        mask = rng.random(shape) < density
        return FloatWeights(mask, (rng.normal(0, 1.0 / np.sqrt(np.prod(shape[1:]) * density), shape)
                                   * mask).astype(np.float32))

    raw = rng.normal(3.0, 2.0, (16, 64)).astype(np.float32)
    std = ((raw - raw.mean(0)) / raw.std(0)).astype(np.float32)
    mlp = sequential((64,), [Linear("fc1", fw((128, 64), 0.2), rng.normal(0, 0.1, 128).astype(np.float32)),
                             LIF("l1", (128,), beta=0.9, threshold=0.5), Linear("fc2", fw((10, 128), 0.2)),
                             LI("ro", (10,), beta=0.9)], 6, Encoding("direct"))
    images = (load_digits().images[:16].astype(np.float32) / np.float32(255))[:, None]
    conv = sequential((1, 8, 8), [Conv2d("c1", fw((8, 1, 3, 3), 0.6), padding=(1, 1)),
                                  LIF("l1", (8, 8, 8), beta=0.9, threshold=0.05),
                                  Conv2d("c2", fw((16, 8, 3, 3), 0.3), stride=(2, 2)),
                                  LIF("l2", (16, 3, 3), beta=0.9, threshold=0.2), Flatten("f"),
                                  Linear("fc", fw((10, 144), 0.3)), LI("ro", (10,), beta=0.9)], 5, Encoding("direct"))
    return [(mlp, std), (conv, images)]


@pytest.mark.parametrize("case", [0, 1], ids=["mlp-standardized", "conv-digits-255"])
def test_cpu_equals_reference_on_float_data_and_reports_slow_path(case: int) -> None:
    from slt_deploy.targets import cpu

    from slt_deploy import reference

    ticket, x = _real_tickets()[case]
    ref = reference.simulate(ticket, x, record=True)
    assert ref.diagnostics.slow_path_sums is not None
    backends = ["numpy"] + (["numba"] if cpu.numba_available() else [])
    for backend in backends:
        got = cpu.run(ticket, x, backend=backend, threads=1, record=True)
        assert got.diagnostics.slow_path_sums is not None
        for name, value in ref.layers.items():
            assert _same_bits(got.layers[name], value), (backend, name)


# ----------------------------------------------------------------------------- hypothesis
_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


def _mixed(draw, shape: tuple[int, int]) -> np.ndarray:
    """float32 values with huge exponent spans, zeros, exact cancellations and midpoint sums."""
    vals = np.asarray(draw(st.lists(_F32, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])), np.float32)
    vals = vals.reshape(shape)
    pick = draw(st.sampled_from(["raw", "cancel", "midpoint"]))
    if pick == "cancel" and shape[1] >= 2:
        vals[:, 1] = -vals[:, 0]
    if pick == "midpoint" and shape[1] >= 2:
        vals[:, 0], vals[:, 1] = np.float32(1.0), np.float32(2.0 ** -24)
    return vals


@st.composite
def _pairs(draw):
    k = draw(st.integers(1, 6))
    return _mixed(draw, (draw(st.integers(1, 3)), k)), _mixed(draw, (draw(st.integers(1, 3)), k))


@settings(max_examples=150, deadline=None, database=None)
@given(_pairs())
def test_hypothesis_exact_matmul_and_numba_checked_match_fsum(pair) -> None:
    x, w = pair
    with np.errstate(all="ignore"):
        want = _oracle_matmul(x, w)
        assert _same_bits(exact.exact_matmul(x.astype(np.float64), w.astype(np.float64)), want)
        from slt_deploy.targets import cpu

        if cpu.numba_available():
            from slt_deploy.targets.cpu import numba_checked
            from slt_deploy.targets.cpu.stores import Coo, CsrStore

            from slt_deploy.ir import FloatWeights

            csr = CsrStore.from_coo(Coo.from_weights(FloatWeights(w != 0, w)))
            for rows in (x, np.repeat(x, 5, axis=0)):  # few-rows and transposed kernels
                got, amb = numba_checked.lin_checked(rows.astype(np.float64), csr)
                ok = np.ones(got.shape, bool) if amb is None else ~amb
                ref = np.repeat(want, rows.shape[0] // x.shape[0], axis=0)
                assert _same_bits(np.where(ok, got, ref), ref)


def test_slow_path_count_adds_up_across_threads() -> None:
    """Runtimes count slow-path sums from their worker threads; no increment may be lost."""
    from concurrent.futures import ThreadPoolExecutor

    before = exact.fallback_count()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: [exact.count_slow_path(1) for _ in range(5000)], range(4)))
    assert exact.fallback_count() - before == 20000
