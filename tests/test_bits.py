"""Tests of slt_deploy.bits: bit layout, Golomb-Rice index code, entropy helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slt_deploy.bits import (
    MAX_RICE_K,
    WORD_BITS,
    binary_entropy,
    entropy_bound_bits_per_synapse,
    pack_bits,
    pack_rows,
    popcount_words,
    rice_decode_positions,
    rice_encode_positions,
    rice_parameter,
    unpack_bits,
    unpack_rows,
    words_per_row,
)

FAST = settings(max_examples=200, deadline=2000)


def _mask(seed: int, n: int, p: float) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < p


# --- bit layout ----------------------------------------------------------------------


def test_bit_order_hand_checked() -> None:
    assert pack_bits(np.array([1, 0, 1], dtype=bool)).tolist() == [5]
    bit64 = np.zeros(65, dtype=bool)
    bit64[64] = True
    assert pack_bits(bit64).tolist() == [0, 1]
    bit63 = np.zeros(64, dtype=bool)
    bit63[63] = True
    assert pack_bits(bit63).tolist() == [1 << 63]
    words = pack_rows(np.array([[1, 1], [0, 1]], dtype=bool))
    assert words.tolist() == [[3], [2]]
    assert words.dtype == np.dtype("<u8")
    assert words.tobytes() == bytes([3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])


def test_words_per_row() -> None:
    assert [words_per_row(n) for n in (0, 1, 63, 64, 65, 128, 129)] == [0, 1, 1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        words_per_row(-1)


@FAST
@given(rows=st.integers(0, 5), n=st.integers(0, 200), seed=st.integers(0, 2**32 - 1))
def test_pack_rows_round_trip(rows: int, n: int, seed: int) -> None:
    bits = np.random.default_rng(seed).random((rows, n)) < 0.5
    words = pack_rows(bits)
    assert words.shape == (rows, words_per_row(n)) and words.dtype == np.dtype("<u8")
    assert np.array_equal(unpack_rows(words, n), bits)
    assert np.array_equal(popcount_words(words), bits.sum(axis=1))
    # The C reading rule (w[j >> 6] >> (j & 63)) & 1 gives the same bits.
    j = np.arange(n)
    if rows:
        assert np.array_equal((words[:, j >> 6] >> (j & 63).astype(np.uint64)) & 1, bits)
    flat = bits.reshape(-1)
    assert np.array_equal(unpack_bits(pack_bits(flat), flat.size), flat)


def test_big_endian_words_are_read_by_value() -> None:
    words = pack_rows(np.array([[1, 0, 1]], dtype=bool)).astype(">u8")
    assert unpack_rows(words, 3).tolist() == [[True, False, True]]
    assert popcount_words(words).tolist() == [2]


@given(n=st.integers(1, 190), extra=st.integers(0, 63))
def test_padding_bits_detected(n: int, extra: int) -> None:
    words = pack_bits(np.ones(n, dtype=bool))
    pad = words.size * WORD_BITS - n
    if pad == 0:
        return
    words[-1] |= np.uint64(1) << np.uint64(WORD_BITS - 1 - extra % pad)
    with pytest.raises(ValueError, match="padding"):
        unpack_bits(words, n)
    assert unpack_bits(words, n, strict=False).all()


def test_unpack_rejects_wrong_word_count_and_dtype() -> None:
    with pytest.raises(ValueError):
        unpack_rows(np.zeros((2, 2), dtype=np.uint64), 64)
    with pytest.raises(ValueError):
        unpack_rows(np.zeros((2, 1), dtype=np.int64), 64)


# --- Golomb-Rice index code ------------------------------------------------------------


def test_rice_hand_checked() -> None:
    # positions 0, 3, 4 -> gaps 0, 2, 0; k = 1, codes in stream order (unary, remainder):
    # gap 0 -> 0|0, gap 2 (q=1, r=0) -> 10|0, gap 0 -> 0|0  => bits 0,0,1,0,0,0,0 = word 4
    words, n_bits = rice_encode_positions(np.array([0, 3, 4]), 1)
    assert n_bits == 7 and words.tolist() == [0b0000100]
    assert rice_decode_positions(words, 7, 3, 1, 5).tolist() == [0, 3, 4]
    # k = 0, gap 3 -> 1110
    words, n_bits = rice_encode_positions(np.array([3]), 0)
    assert (n_bits, words.tolist()) == (4, [0b0111])
    # remainder is LSB first: k = 3, gap 6 = 0b110 -> 0 then 0,1,1
    words, n_bits = rice_encode_positions(np.array([6]), 3)
    assert (n_bits, words.tolist()) == (4, [0b1100])


@FAST
@given(n=st.integers(0, 3000), p=st.floats(0, 1), seed=st.integers(0, 2**32 - 1),
       dk=st.integers(-3, 3))
def test_rice_round_trip(n: int, p: float, seed: int, dk: int) -> None:
    pos = np.flatnonzero(_mask(seed, n, p))
    k = min(max(0, rice_parameter(n, pos.size) + dk), MAX_RICE_K)
    words, n_bits = rice_encode_positions(pos, k)
    assert words.dtype == np.dtype("<u8") and words.size == words_per_row(n_bits)
    out = rice_decode_positions(words, n_bits, pos.size, k, n)
    assert out.dtype == np.int64 and np.array_equal(out, pos)


def _expected_rice_bits(theta: float, k: int) -> float:
    t = theta ** (2**k)
    return k + 1 + t / (1 - t)


@pytest.mark.parametrize("p", [1e-5, 1e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.9])
def test_rice_parameter_is_optimal_for_geometric_gaps(p: float) -> None:
    n = 10**7
    k = rice_parameter(n, round(p * n))
    theta = 1 - round(p * n) / n
    best = min(_expected_rice_bits(theta, j) for j in range(0, 40))
    assert _expected_rice_bits(theta, k) <= best + 1e-12


def test_rice_parameter_edges() -> None:
    assert rice_parameter(0, 0) == 0 and rice_parameter(10, 0) == 0 and rice_parameter(10, 10) == 0
    with pytest.raises(ValueError):
        rice_parameter(10, 11)


@pytest.mark.parametrize("p", [0.001, 0.01, 0.03, 0.1])
def test_rice_code_length_near_entropy(p: float) -> None:
    # Measured on this seed (n = 65536), n_bits / (n * H(empirical density)):
    # p=0.001: 1.006, p=0.01: 1.004, p=0.03: 1.019, p=0.1: 1.015.
    n = 65536
    pos = np.flatnonzero(_mask(0, n, p))
    _, n_bits = rice_encode_positions(pos, rice_parameter(n, pos.size))
    assert n_bits <= 1.1 * n * binary_entropy(pos.size / n)


def test_rice_round_trip_1024x1024_at_1_percent() -> None:
    # Speed is measured in benchmarks/, never asserted here (about 5 ms on the dev machine).
    n = 1024 * 1024
    pos = np.flatnonzero(_mask(1, n, 0.01))
    k = rice_parameter(n, pos.size)
    words, n_bits = rice_encode_positions(pos, k)
    out = rice_decode_positions(words, n_bits, pos.size, k, n)
    assert np.array_equal(out, pos)


def test_rice_decode_rejects_bad_headers() -> None:
    pos = np.array([1, 5, 9])
    words, n_bits = rice_encode_positions(pos, 2)
    cases = {
        "ran out": dict(count=4), "wrong count": dict(count=2), "position": dict(n_total=9),
        "exceeds n_total": dict(count=4, n_total=3), "do not match": dict(n_bits=n_bits + 64),
        "Rice parameter": dict(k=-1),
    }
    for reason, kw in cases.items():
        args = dict(words=words, n_bits=n_bits, count=3, k=2, n_total=10) | kw
        with pytest.raises(ValueError, match=reason):
            rice_decode_positions(**args)
    # A long unary run: 100 one-bits then a zero, k = 0, n_total 50.
    bits = np.ones(101, dtype=bool)
    bits[100] = False
    with pytest.raises(ValueError, match="unary run"):
        rice_decode_positions(pack_bits(bits), 101, 1, 0, 50)
    # An unterminated unary run.
    with pytest.raises(ValueError, match="ran out"):
        rice_decode_positions(pack_bits(np.ones(64, dtype=bool)), 64, 1, 0, 1000)
    # A huge count in the header is refused before anything is sized by it.
    with pytest.raises(ValueError, match="ran out"):
        rice_decode_positions(words, n_bits, 10**15, 0, 10**16)


@settings(max_examples=300, deadline=1000)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 2000), p=st.floats(0, 1),
       k=st.integers(0, 8), cut=st.integers(0, 10**6), flips=st.lists(st.integers(0, 10**6),
       max_size=4), dcount=st.integers(-2, 2), dn=st.integers(-3, 3))
def test_rice_decode_corrupt_streams_only_raise_value_error(
        seed: int, n: int, p: float, k: int, cut: int, flips: list[int], dcount: int,
        dn: int) -> None:
    pos = np.flatnonzero(_mask(seed, n, p))
    words, n_bits = rice_encode_positions(pos, k)
    bits = unpack_bits(words, n_bits)
    bits = bits[: cut % (n_bits + 1)] if cut % 3 == 0 else bits
    for f in flips:
        if bits.size:
            bits[f % bits.size] ^= True
    count = max(0, pos.size + dcount)
    try:
        out = rice_decode_positions(pack_bits(bits), bits.size, count, k, max(0, n + dn))
    except ValueError:
        return
    assert out.size == count and np.all(np.diff(out) > 0)
    assert out.size == 0 or (out[0] >= 0 and out[-1] < max(0, n + dn))


@settings(max_examples=300, deadline=1000)
@given(words=st.lists(st.integers(0, 2**64 - 1), max_size=8), n_bits=st.integers(0, 600),
       count=st.integers(0, 600), k=st.integers(0, MAX_RICE_K),
       n_total=st.one_of(st.integers(0, 5000), st.integers(0, 2**61)))
def test_rice_decode_garbage_only_raises_value_error(
        words: list[int], n_bits: int, count: int, k: int, n_total: int) -> None:
    try:
        out = rice_decode_positions(np.array(words, dtype=np.uint64), n_bits, count, k, n_total)
    except ValueError:
        return
    assert out.size == count and np.all(np.diff(out) > 0)
    assert out.size == 0 or (out[0] >= 0 and out[-1] < n_total)


# --- entropy -------------------------------------------------------------------------


def test_entropy_helpers() -> None:
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0
    assert binary_entropy(0.5) == pytest.approx(1.0)
    p = 0.01
    h = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    assert binary_entropy(p) == pytest.approx(h)
    assert entropy_bound_bits_per_synapse(p) == pytest.approx(h + p)
    assert entropy_bound_bits_per_synapse(0.0) == 0.0
    assert entropy_bound_bits_per_synapse(1.0) == 1.0
    arr = binary_entropy(np.array([0.0, 0.5, 1.0]))
    assert np.allclose(arr, [0.0, 1.0, 0.0])
    with pytest.raises(ValueError):
        binary_entropy(1.5)
    with pytest.raises(ValueError):
        binary_entropy(float("nan"))
