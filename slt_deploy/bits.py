"""Bit layout shared by the .slt format, the CPU runtime kernels and the C exporter.

The rules, stated once:

* **Words.** Bits live in 64-bit unsigned words stored little-endian (dtype ``'<u8'``)
  whatever the host byte order.
* **Bit order.** Bit ``j`` of a row is bit ``j % 64`` (value ``1 << (j % 64)``) of word
  ``j // 64``. So bits ``[1, 0, 1]`` are the word ``5`` and bit 64 is the value ``1`` in
  the second word. This is the order of ``np.packbits(..., bitorder='little')`` read as
  little-endian words, and of ``(w[j >> 6] >> (j & 63)) & 1`` in C.
* **Rows.** Every row of a 2-D bit matrix starts on a fresh word: a row of ``n`` bits takes
  ``ceil(n / 64)`` words; padding bits past ``n`` are 0, and strict readers reject set ones.
* **Index code** (very sparse layers). Positions ``p_0 < p_1 < ...`` of the set bits of a
  flat mask of ``n_total`` bits are coded as gaps ``g_i = p_i - p_{i-1} - 1`` (``p_{-1} = -1``).
  Each gap is Golomb-Rice coded with parameter ``k``: quotient ``q = g >> k`` in unary as
  ``q`` one-bits then one zero-bit, then the remainder ``g & (2**k - 1)`` in ``k`` bits,
  least significant first. Codes are concatenated into one bit stream of ``n_bits`` bits,
  packed into words by the rules above (so ``ceil(n_bits / 64)`` words, zero padding).
"""

from __future__ import annotations

import math

import numpy as np

WORD_BITS = 64
WORD_DTYPE = np.dtype("<u8")
MAX_RICE_K = 56  # keeps (q << k) | r far from int64 overflow
MAX_N_TOTAL = 1 << 60  # likewise for the running sum of gaps

__all__ = [
    "WORD_BITS", "WORD_DTYPE", "MAX_RICE_K", "MAX_N_TOTAL", "words_per_row", "pack_rows",
    "unpack_rows", "pack_bits", "unpack_bits", "popcount_words", "rice_parameter",
    "rice_encode_positions", "rice_decode_positions", "binary_entropy",
    "entropy_bound_bits_per_synapse",
]


def words_per_row(n: int) -> int:
    """Number of 64-bit words holding ``n`` bits."""
    if n < 0:
        raise ValueError(f"bit count must be >= 0, got {n}")
    return (int(n) + WORD_BITS - 1) // WORD_BITS


def pack_rows(bits: np.ndarray) -> np.ndarray:
    """Pack a (rows, n) boolean array into (rows, ceil(n/64)) ``'<u8'`` words."""
    b = np.asarray(bits).astype(bool, copy=False)
    if b.ndim != 2:
        raise ValueError(f"pack_rows expects a 2-D array, got shape {b.shape}")
    rows, n = b.shape
    w = words_per_row(n)
    padded = np.zeros((rows, w * WORD_BITS), dtype=bool)
    padded[:, :n] = b
    as_bytes = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(as_bytes).view(WORD_DTYPE).reshape(rows, w)


def unpack_rows(words: np.ndarray, n: int, strict: bool = True) -> np.ndarray:
    """Unpack (rows, ceil(n/64)) words into a (rows, n) boolean array.

    With ``strict`` a set padding bit raises ``ValueError``; otherwise it is ignored.
    """
    w = np.asarray(words)
    if w.ndim != 2 or w.dtype.kind != "u" or w.dtype.itemsize != 8:
        raise ValueError(f"expected a 2-D uint64 word array, got {w.dtype} {w.shape}")
    if w.shape[1] != words_per_row(n):
        raise ValueError(f"{w.shape[1]} words per row cannot hold exactly {n} bits")
    rows = w.shape[0]
    as_bytes = np.ascontiguousarray(w.astype(WORD_DTYPE, copy=False)).view(np.uint8)
    bits = np.unpackbits(as_bytes.reshape(rows, w.shape[1] * 8), axis=1, bitorder="little")
    if strict and bits[:, n:].any():
        raise ValueError("padding bits past the row length are set")
    return bits[:, :n].astype(bool)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a 1-D boolean array into ``ceil(n/64)`` ``'<u8'`` words."""
    b = np.asarray(bits)
    if b.ndim != 1:
        raise ValueError(f"pack_bits expects a 1-D array, got shape {b.shape}")
    return pack_rows(b[None, :])[0]


def unpack_bits(words: np.ndarray, n: int, strict: bool = True) -> np.ndarray:
    """Unpack 1-D words into ``n`` booleans (see :func:`unpack_rows`)."""
    w = np.asarray(words)
    if w.ndim != 1:
        raise ValueError(f"unpack_bits expects 1-D words, got shape {w.shape}")
    return unpack_rows(w[None, :], n, strict=strict)[0]


def popcount_words(words: np.ndarray) -> np.ndarray:
    """Set bits per row: the count over the last axis, as int64 of shape ``words.shape[:-1]``."""
    w = np.asarray(words).astype(np.uint64, copy=False)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(w).sum(axis=-1, dtype=np.int64)
    as_bytes = np.ascontiguousarray(w).view(np.uint8).reshape(*w.shape, 8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=(-2, -1), dtype=np.int64)


# --- Golomb-Rice index code ----------------------------------------------------------

_LOG_PHI_MINUS_1 = math.log((math.sqrt(5.0) - 1.0) / 2.0)  # log(phi - 1) = log(0.618...)


def rice_parameter(n_total: int, n_set: int) -> int:
    """Rice parameter ``k`` for the gaps of ``n_set`` set bits among ``n_total``.

    Gaps of a random mask of density ``p`` are close to geometric, P(g) = p (1-p)^g.
    For a geometric source with ratio theta = 1-p, Kiely ("Selecting the Golomb parameter
    in Rice coding", IPN Progress Report 42-159, 2004) shows the optimal Rice parameter is
    ``k = max(0, 1 + floor(log2(log(phi - 1) / log(theta))))`` with phi the golden ratio;
    the mean code length k + 1 + theta^(2^k) / (1 - theta^(2^k)) is then within about
    0.03 bits of the entropy of the gap (tests check it is the argmin over k).
    """
    if n_total < 0 or not 0 <= n_set <= n_total:
        raise ValueError(f"need 0 <= n_set <= n_total, got {n_set} of {n_total}")
    if n_set == 0 or n_set == n_total:
        return 0
    p = n_set / n_total
    ratio = _LOG_PHI_MINUS_1 / math.log1p(-p)
    k = 1 + math.floor(math.log2(ratio))
    return int(min(max(0, k), MAX_RICE_K))


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_RICE_K:
        raise ValueError(f"Rice parameter must be an integer in [0, {MAX_RICE_K}], got {k!r}")
    return int(k)


def rice_encode_positions(positions: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Rice-code strictly increasing, non-negative positions; returns (words, n_bits)."""
    k = _check_k(k)
    pos = np.asarray(positions)
    if pos.ndim != 1 or (pos.size and pos.dtype.kind not in "iu"):
        raise ValueError("positions must be a 1-D integer array")
    pos = pos.astype(np.int64)
    gaps = np.diff(pos, prepend=-1) - 1
    if gaps.size and gaps.min() < 0:
        raise ValueError("positions must be non-negative and strictly increasing")
    q = gaps >> k
    lengths = q + (1 + k)
    ends = np.cumsum(lengths)
    n_bits = int(ends[-1]) if ends.size else 0
    starts = ends - lengths
    run = np.zeros(n_bits + 1, dtype=np.int8)  # +1 at each unary start, -1 after its ones
    run[starts] += 1
    run[starts + q] -= 1
    bits = np.cumsum(run, dtype=np.int8)[:n_bits].astype(bool)
    if k:
        shifts = np.arange(k, dtype=np.int64)
        bits[(starts + q + 1)[:, None] + shifts] = (gaps[:, None] >> shifts) & 1
    return pack_bits(bits), n_bits


def rice_decode_positions(words: np.ndarray, n_bits: int, count: int, k: int,
                          n_total: int) -> np.ndarray:
    """Decode ``count`` Rice-coded positions (< ``n_total``) from an untrusted bit stream.

    Raises ``ValueError`` with a one-line reason on any inconsistency. Time and memory are
    O(len(words) * 64 * log(count)) and O(len(words) * 64 + count); nothing is sized by
    ``count`` before ``count`` is checked against ``n_bits``.
    """
    k = _check_k(k)
    for name, v in (("n_bits", n_bits), ("count", count), ("n_total", n_total)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    n_bits, count, n_total = int(n_bits), int(count), int(n_total)
    if n_total > MAX_N_TOTAL:
        raise ValueError(f"n_total {n_total} exceeds the supported {MAX_N_TOTAL}")
    if count > n_total:
        raise ValueError(f"count {count} exceeds n_total {n_total}")
    w = np.asarray(words)
    if w.ndim != 1 or w.size != words_per_row(n_bits):
        raise ValueError(f"{w.size} words do not match a stream of {n_bits} bits")
    if count * (k + 1) > n_bits:
        raise ValueError(f"ran out of bits: {count} codes need >= {count * (k + 1)} bits")
    bits = unpack_bits(w, n_bits, strict=True)  # raises on set padding bits
    if count == 0:
        if n_bits:
            raise ValueError("bits left over after 0 codes (wrong count)")
        return np.zeros(0, dtype=np.int64)
    # next_zero[i]: first zero bit at or after i (n_bits if none), for i in [0, n_bits].
    zeros = np.flatnonzero(~bits)
    next_zero = np.append(zeros, n_bits)[np.searchsorted(zeros, np.arange(n_bits + 1))]
    # Code starting at s ends at next_zero[s] + 1 + k; follow that chain from 0 by pointer
    # doubling (log2(count) vectorised passes) instead of a bit-serial Python loop.
    step = np.minimum(next_zero + (1 + k), n_bits)
    reach = np.zeros(n_bits + 1, dtype=bool)
    reach[0] = True
    for _ in range(count.bit_length()):  # afterwards reach holds hops 0 .. 2**J - 1 >= count
        reach[step[reach]] = True
        step = step[step]
    starts = np.flatnonzero(reach[:n_bits])[:count]
    if starts.size < count:
        raise ValueError(f"ran out of bits after {starts.size} of {count} codes")
    term = next_zero[starts]
    q = term - starts
    if q.max() > n_total:
        raise ValueError(f"unary run longer than n_total {n_total}")
    if term[-1] >= n_bits or term[-1] + 1 + k > n_bits:
        raise ValueError(f"ran out of bits in code {count - 1}")
    if term[-1] + 1 + k != n_bits:
        raise ValueError(f"bits left over after {count} codes (wrong count)")
    if q.max() > (n_total - 1) >> k:
        raise ValueError(f"position >= n_total {n_total}")
    gaps = q << k
    if k:
        shifts = np.arange(k, dtype=np.int64)
        gaps |= (bits[(term + 1)[:, None] + shifts].astype(np.int64) << shifts).sum(axis=1)
    if gaps.max() >= n_total:
        raise ValueError(f"position >= n_total {n_total}")
    positions = np.cumsum(gaps + 1) - 1  # may wrap only after the first value >= n_total
    if np.any(positions >= n_total):
        raise ValueError(f"position >= n_total {n_total}")
    return positions


# --- entropy -------------------------------------------------------------------------


def binary_entropy(p: float | np.ndarray) -> float | np.ndarray:
    """H(p) = -p log2 p - (1-p) log2 (1-p) in bits, with H(0) = H(1) = 0."""
    a = np.asarray(p, dtype=np.float64)
    if np.any(~((a >= 0) & (a <= 1))):
        raise ValueError("probability must lie in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(a * np.log2(a) + (1 - a) * np.log2(1 - a))
    h = np.where((a == 0) | (a == 1), 0.0, h)
    return float(h) if h.ndim == 0 else h


def entropy_bound_bits_per_synapse(p: float | np.ndarray) -> float | np.ndarray:
    """H(p) + p: bits per synapse for the mask plus one sign bit per kept weight."""
    h = binary_entropy(p)
    return h + (float(p) if np.ndim(p) == 0 else np.asarray(p, dtype=np.float64))
