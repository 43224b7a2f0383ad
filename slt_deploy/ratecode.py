"""The rate code: how a ticket with ``rate`` encoding turns firing probabilities into input spikes.

One definition, used by every target (reference, cpu, torch, onnxruntime, Lava and the
fixed-point reference, the energy model) through :class:`RateCoder`, and emitted in C by the
C exporter (:data:`C_SOURCE`). A sample's spikes depend only on the sample, the seed and the
step, never on the batch it is run in or its position there.

Rate code ``splitmix64-keyed/1`` (all arithmetic on unsigned 64-bit words, mod 2^64)::

    mix(z)  = splitmix64's finaliser:  z ^= z >> 30;  z *= 0xBF58476D1CE4E5B9;
                                       z ^= z >> 27;  z *= 0x94D049BB133111EB;  z ^= z >> 31
    S       = mix(seed + 0x9E3779B97F4A7C15)                seed in [0, 2^64)
    b_i     = the bit pattern (uint32) of float32(x_i), with -0.0 read as +0.0;
              i = 0 … n−1 indexes the sample's n features in C (row-major) order
    K       = mix( Σ_i mix(S ^ (i·2^32 + b_i)) )            the sample's key (the sum is mod 2^64)
    u(t, i) = mix(K ^ mix(t·2^32 + i)) >> 40                 24 bits, 0 ≤ u < 2^24
    s(t, i) = 1 if u(t, i) · 2^-24 < float32(x_i) else 0     step t = 0 … T−1

``u · 2^-24`` and ``float32(x)`` are exactly representable in float32 and float64, so the
comparison is exact in either (and in integers: C compares ``u`` with ``x``'s bits without
floating point). A feature fires with probability ``ceil(x·2^24) / 2^24`` per step, which
is ``x`` up to 2^-24. Why this design: a counter-based generator keyed by content needs no
state that could depend on the batch; the key is one pass over the input (cheap on a
microcontroller); every operation is a 64-bit shift, xor, add or wrap-around multiply, so
numpy evaluates it vectorised and C evaluates it bit for bit on any target. splitmix64's
finaliser is the output function of SplitMix64 (Steele, Lea, Flood, OOPSLA 2014), which
passes BigCrush; the key sum changes with any single feature (``mix`` is a bijection).

The code's name is stored with the ticket (``Encoding.code``; ``.slt``, NIR, ONNX metadata,
the C header), so a stored ticket never silently changes what it computes. Files written
before the code had a name used a per-batch PCG64 stream (:data:`LEGACY_RATE_CODE`): they
load, but running or exporting them is refused with a message saying how to re-pack them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SltInputError, SltUnsupportedError

RATE_CODE = "splitmix64-keyed/1"
LEGACY_RATE_CODE = "pcg64-batch/0"  # Generator(PCG64(seed)).random((batch, *in)) per step: batch-dependent
RATE_CODES = (RATE_CODE, LEGACY_RATE_CODE)
SEED_LIMIT = 1 << 64
MAX_FEATURES = 1 << 32  # i·2^32 + b_i and t·2^32 + i need i < 2^32 (t ≤ 1e6 by the Ticket)

GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1
_U64 = np.uint64
_CHUNK = 1 << 14  # uint64 elements per block: a few blocks fit in L2, so every pass stays in cache
_NEG_ZERO = 0x80000000


def mix(z: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (returned); ``tmp``: scratch of the same shape."""
    if tmp is None:
        tmp = np.empty_like(z)
    np.right_shift(z, _U64(30), out=tmp)
    np.bitwise_xor(z, tmp, out=z)
    np.multiply(z, _U64(MIX1), out=z)
    np.right_shift(z, _U64(27), out=tmp)
    np.bitwise_xor(z, tmp, out=z)
    np.multiply(z, _U64(MIX2), out=z)
    np.right_shift(z, _U64(31), out=tmp)
    np.bitwise_xor(z, tmp, out=z)
    return z


def mix_int(z: int) -> int:
    """:func:`mix` of one Python integer (the scalar form of the same arithmetic)."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * MIX1) & _MASK
    z = ((z ^ (z >> 27)) * MIX2) & _MASK
    return z ^ (z >> 31)


def seed_word(seed: int) -> int:
    """``S = mix(seed + 0x9E3779B97F4A7C15)``."""
    return mix_int(int(seed) + GAMMA)


def check_seed(seed: Any) -> None:
    """Raise :class:`SltInputError` unless ``seed`` is an integer in [0, 2^64)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < SEED_LIMIT:
        raise SltInputError(f"the rate code's seed must be an integer in [0, 2^64), got {seed!r} (--seed)")


def require_current(code: str | None, seed: int | None) -> None:
    """Refuse a ticket whose rate code this version does not compute (the legacy batch-dependent one)."""
    if code == RATE_CODE:
        return
    if code == LEGACY_RATE_CODE:
        raise SltUnsupportedError(
            f"this ticket's rate encoding uses the retired batch-dependent code '{LEGACY_RATE_CODE}' (files written "
            f"before rate code '{RATE_CODE}'); re-pack it with the current code: "
            f"slt pack OLD.slt -o NEW.slt --encoding rate --seed {seed}")
    raise SltUnsupportedError(f"unknown rate code {code!r}; this version computes '{RATE_CODE}'")


def features(x: np.ndarray) -> np.ndarray:
    """``x`` as contiguous float32 ``(batch, n)`` (round to nearest, as C's ``(float)`` does)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    batch = x32.shape[0]
    n = int(np.prod(x32.shape[1:], dtype=np.int64))
    if n >= MAX_FEATURES:
        raise SltInputError(f"the rate code takes fewer than 2^32 features per sample, got {n}")
    return x32.reshape(batch, n)


def _block_rows(n: int) -> int:
    return max(1, _CHUNK // max(n, 1))


def sample_keys(x32: np.ndarray, seed: int) -> np.ndarray:
    """``K`` of every sample of float32 ``(batch, n)``: uint64 ``(batch,)`` (module docstring)."""
    batch, n = x32.shape
    s = _U64(seed_word(seed))
    position = np.arange(n, dtype=_U64) << _U64(32)
    keys = np.empty(batch, _U64)
    rows = _block_rows(n)
    for a in range(0, batch, rows):
        bits = x32[a:a + rows].view(np.uint32)
        z = bits.astype(_U64)
        z[bits == _NEG_ZERO] = 0
        np.bitwise_or(z, position, out=z)
        np.bitwise_xor(z, s, out=z)
        np.add.reduce(mix(z), axis=1, dtype=_U64, out=keys[a:a + rows])
    return mix(keys)


def thresholds(x32: np.ndarray) -> np.ndarray:
    """``ceil(x·2^24)`` clipped to [0, 2^24] as uint64 (NaN: 0), so that ``u < threshold`` ⇔ ``u·2^-24 < x``
    (exact in float32: scaling by 2^24 and ``ceil`` round nothing)."""
    scaled = np.ceil(x32 * np.float32(1 << 24))
    np.fmax(scaled, np.float32(0), out=scaled)  # negative -> 0, NaN -> 0
    np.minimum(scaled, np.float32(1 << 24), out=scaled)  # p >= 1 (and inf): every u fires
    return scaled.astype(_U64)


def counters(t: int, n: int) -> np.ndarray:
    """``mix(t·2^32 + i)`` for i = 0 … n−1: uint64 ``(n,)``, shared by every sample."""
    return mix(np.arange(n, dtype=_U64) | _U64(t << 32))


def draws(keys: np.ndarray, t: int, n: int) -> np.ndarray:
    """``u(t, i)`` of every sample: uint64 ``(batch, n)`` in [0, 2^24) (for tests and docs)."""
    z = np.bitwise_xor(keys[:, None], counters(t, n)[None, :])
    return mix(z) >> _U64(40)


class RateCoder:
    """The input spikes of one batch: keys and thresholds computed once, any step on demand.

    ``x``: ``(batch, *input)`` firing probabilities (any real dtype; rounded to float32).
    """

    def __init__(self, code: str | None, seed: int | None, x: np.ndarray) -> None:
        require_current(code, seed)
        check_seed(seed)
        self.shape = tuple(x.shape)
        x32 = features(x)
        self.batch, self.n = x32.shape
        self.keys = sample_keys(x32, int(seed))  # type: ignore[arg-type]
        self.thr = thresholds(x32)

    @classmethod
    def of(cls, encoding: Any, x: np.ndarray) -> RateCoder:
        """The coder of a ticket's ``Encoding`` (kind ``rate``) for the batch ``x``."""
        return cls(encoding.code, encoding.seed, x)

    def _fill(self, t: int, out: np.ndarray) -> None:
        """Spikes of step ``t`` into the bool/uint8 view ``out`` ``(batch, n)``, block by block."""
        c = counters(t, self.n)
        rows = _block_rows(self.n)
        z = np.empty((min(rows, self.batch), self.n), _U64)
        tmp = np.empty_like(z)
        for a in range(0, self.batch, rows):
            k = self.keys[a:a + rows]
            zz, tt = z[:len(k)], tmp[:len(k)]
            np.bitwise_xor(k[:, None], c[None, :], out=zz)
            mix(zz, tt)
            np.right_shift(zz, _U64(40), out=zz)
            np.less(zz, self.thr[a:a + rows], out=out[a:a + rows])

    def step(self, t: int) -> np.ndarray:
        """Spikes of step ``t``: bool ``(batch, *input)``."""
        out = np.empty((self.batch, self.n), bool)
        self._fill(t, out)
        return out.reshape(self.shape)

    def steps(self, timesteps: int) -> np.ndarray:
        """Spikes of steps 0 … T−1: uint8 ``(T, batch, *input)`` (0/1)."""
        out = np.empty((timesteps, self.batch, self.n), np.uint8)
        for t in range(timesteps):
            self._fill(t, out[t].view(bool))
        return out.reshape((timesteps, *self.shape))


def spikes(encoding: Any, x: np.ndarray, timesteps: int) -> np.ndarray:
    """uint8 ``(T, batch, *input)`` input spikes of ``x`` under a rate ``encoding`` (see :class:`RateCoder`)."""
    return RateCoder.of(encoding, x).steps(timesteps)


# The same arithmetic in C99 (the C exporter includes it; fbits() is its float32 bit-pattern helper).
C_SOURCE = r"""
/* Rate code 'splitmix64-keyed/1' (slt_deploy/ratecode.py, docs/semantics.md):
 * K = mix(sum_i mix(S ^ (i << 32 | bits(x_i)))), S = mix(seed + gamma);
 * u(t, i) = mix(K ^ mix(t << 32 | i)) >> 40; spike = u * 2^-24 < x_i. */
static uint64_t rate_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rate_key(uint64_t seed, const float *x, uint32_t n)
{
    const uint64_t s = rate_mix(seed + 0x9e3779b97f4a7c15ull);
    uint64_t acc = 0u;
    uint32_t i;
    for (i = 0; i < n; ++i) {
        uint32_t b = fbits(x[i]);
        if (b == 0x80000000u) b = 0u;          /* -0.0 reads as +0.0 */
        acc += rate_mix(s ^ (((uint64_t)i << 32) | b));
    }
    return rate_mix(acc);
}

/* 1 when u(t, i) * 2^-24 < p, compared in integers (p = m * 2^(e - 150)). */
static uint32_t rate_fire(uint64_t key, uint32_t t, uint32_t i, float p)
{
    const uint64_t u = rate_mix(key ^ rate_mix(((uint64_t)t << 32) | i)) >> 40;
    const uint32_t b = fbits(p);
    uint32_t e = (b >> 23) & 0xffu, sh;
    uint64_t m = b & 0x7fffffu;
    if (b >> 31) return 0u;                    /* p <= 0 (or a negative NaN) */
    if (e == 0xffu) return m == 0u;            /* +inf fires, NaN never */
    if (e) m |= 0x800000u; else e = 1u;        /* subnormal: m * 2^-149 */
    if (e >= 127u) return 1u;                  /* p >= 1 */
    sh = 126u - e;                             /* u * 2^-24 < p  <=>  u * 2^sh < m */
    if (sh >= 24u) return u == 0u && m != 0u;
    return (uint32_t)((u << sh) < m);
}
"""
