"""The compiled exact slow path (``targets/cpu/numba_exact.py``) against ``math.fsum`` rounding.

:func:`numba_exact.sum32` must equal :func:`slt_deploy.exact.round_exact` bit for bit on any
finite float64 terms: huge exponent spans, exact float32 midpoints and the tiny terms that
break their ties, subnormals, cancellation, sums near the float32 overflow threshold. The
terms the runtime feeds it are products of two float32 values (exact in float64), which the
first strategy draws; the second draws arbitrary float64 values.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slt_deploy.targets import cpu

from slt_deploy import exact

pytestmark = pytest.mark.skipif(not cpu.numba_available(), reason="compiled slow path (numba)")

_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)
_F64 = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True, min_value=-1e300, max_value=1e300)


def _bits(v: np.floating) -> int:
    return int(np.asarray(v, np.float32).view(np.uint32))


def _check(terms: list[float]) -> None:
    from slt_deploy.targets.cpu import numba_exact

    t = np.asarray(terms, np.float64)
    assert _bits(numba_exact.sum32(t)) == _bits(exact.round_exact(t)), terms


@st.composite
def _products(draw):
    """Products of float32 pairs (what the kernels sum), with midpoint and cancellation patterns."""
    n = draw(st.integers(0, 12))
    a = np.asarray(draw(st.lists(_F32, min_size=n, max_size=n)), np.float64)
    b = np.asarray(draw(st.lists(_F32, min_size=n, max_size=n)), np.float64)
    t = list(a * b)
    pick = draw(st.sampled_from(["raw", "cancel", "midpoint", "midpoint-broken"]))
    if pick == "cancel" and n >= 1:
        t.append(-t[0])
    if pick.startswith("midpoint"):
        base = float(np.float32(draw(_F32)) or 1.0)
        ulp = float(np.spacing(np.float32(base)))
        if not np.isfinite(ulp):  # ±float32 max: the next value up is inf, its spacing too
            ulp = 2.0 ** 104
        t += [base, ulp / 2]  # base + half an ulp: a float32 midpoint when the rest cancels
        if pick == "midpoint-broken":
            t.append(draw(st.sampled_from([1.0, -1.0])) * ulp * 2.0 ** -draw(st.integers(20, 200)))
    return t


@settings(max_examples=400, deadline=None, database=None)
@given(_products())
def test_sum32_of_float32_products_matches_fsum_rounding(terms: list[float]) -> None:
    _check(terms)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_F64, max_size=10))
def test_sum32_of_arbitrary_doubles_matches_fsum_rounding(terms: list[float]) -> None:
    _check(terms)


@pytest.mark.parametrize("terms", [
    [],
    [0.0, -0.0],
    [1.0, 2.0 ** -24],                            # tie -> even: 1.0
    [1.0, 2.0 ** -24, 2.0 ** -90],                # just above the midpoint -> 1 + 2^-23
    [1.0, 2.0 ** -24, -(2.0 ** -90)],             # just below -> 1.0
    [1.0 + 2.0 ** -23, 2.0 ** -24],               # tie -> even: 1 + 2^-22
    [2.0 ** 24, 1.0],                             # integer midpoint 2^24 + 1 -> 2^24
    [1e30, 1.0, -1e30],                           # cancellation: exactly 1
    [2.0 ** -149, 2.0 ** -150],                   # float32 subnormals: 1.5 · 2^-149 -> tie -> even (2^-148)
    [2.0 ** -150],                                # half the smallest subnormal: tie -> 0
    [2.0 ** -150, 2.0 ** -300],                   # just above -> 2^-149
    [3.4028234663852886e38, 2.0 ** 103],          # float32 max + half an ulp: tie -> inf (even)
    [3.4028234663852886e38, 2.0 ** 103, -(2.0 ** -60)],  # just below the overflow midpoint -> max
    [-3.4028234663852886e38, -(2.0 ** 104)],      # beyond: -inf
    [1e300, -1e300, 2.0 ** -1074, 2.0 ** -1074],  # a 2,100-bit span
])
def test_sum32_adversarial_cases(terms: list[float]) -> None:
    _check(terms)


def test_sum32_equals_the_rounded_fraction() -> None:
    from slt_deploy.targets.cpu import numba_exact

    rng = np.random.default_rng(4)
    for _ in range(200):
        t = rng.normal(size=rng.integers(1, 30)) * 2.0 ** rng.integers(-80, 80, size=1)
        want = sum((Fraction(float(v)) for v in t), Fraction(0))
        got = numba_exact.sum32(t)
        lo, hi = np.nextafter(got, np.float32(-np.inf)), np.nextafter(got, np.float32(np.inf))
        err = abs(Fraction(float(got)) - want)
        assert err <= abs(Fraction(float(lo)) - want) and err <= abs(Fraction(float(hi)) - want)


# ----------------------------------------------------------------------------- the input tests of the runtime
@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 0.5, -1.0, 2.0, 1e-45, float("inf"), float("-inf"), float("nan")]),
                min_size=1, max_size=9000), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_input_tests_match_numpy(values: list[float], dtype: type, strided: bool) -> None:
    """``is_binary`` / ``finite_in`` (chunked, branch-free) against numpy, contiguous or not."""
    from slt_deploy.targets.cpu import numba_certificate as nc

    x = np.asarray(values, dtype)
    x = x[::2] if strided else x.reshape(1, -1)
    finite = bool(np.isfinite(x).all())
    with np.errstate(invalid="ignore"):
        assert nc.finite_in(x, False) == finite
        assert nc.finite_in(x, True) == (finite and bool(((x >= 0) & (x <= 1)).all()))
        if finite:
            assert nc.is_binary(x) == bool(((x == 0) | (x == 1)).all())


@pytest.mark.parametrize("at", [0, 4095, 4096, 9999])
def test_input_tests_find_one_bad_value_in_any_chunk(at: int) -> None:
    from slt_deploy.targets.cpu import numba_certificate as nc

    x = np.zeros((10, 1000), np.float32)
    assert nc.is_binary(x) and nc.finite_in(x, True)
    x.reshape(-1)[at] = 0.5
    assert not nc.is_binary(x) and nc.finite_in(x, True)
    x.reshape(-1)[at] = np.inf
    assert not nc.finite_in(x, False)
