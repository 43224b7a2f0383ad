"""An independent oracle of the rate code 'splitmix64-keyed/1', written from docs/semantics.md.

Scalar Python integers and ``struct`` for float32 bit patterns; no numpy arithmetic and
nothing from slt_deploy.ratecode, so it checks the vectorised implementations (numpy,
numba, C) against the written specification.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np

M64 = (1 << 64) - 1


def mix(z: int) -> int:
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def f32_bits(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def key(seed: int, sample: np.ndarray) -> int:
    s = mix(seed + 0x9E3779B97F4A7C15)
    acc = 0
    for i, v in enumerate(np.asarray(sample, np.float32).ravel().tolist()):
        b = f32_bits(v)
        if b == 0x80000000:
            b = 0
        acc = (acc + mix(s ^ ((i << 32) | b))) & M64
    return mix(acc)


def u(k: int, t: int, i: int) -> int:
    return mix(k ^ mix((t << 32) | i)) >> 40


def spikes(seed: int, x: np.ndarray, timesteps: int) -> np.ndarray:
    """uint8 (T, batch, *input): spike(t, i) = u(t, i) · 2^-24 < float32(x_i), compared exactly."""
    x32 = np.asarray(x, np.float32)
    out = np.zeros((timesteps, *x32.shape), np.uint8)
    for b in range(x32.shape[0]):
        k = key(seed, x32[b])
        flat = x32[b].ravel().tolist()
        for t in range(timesteps):
            row = out[t, b].reshape(-1)
            for i, v in enumerate(flat):
                if v != v:  # NaN never fires
                    continue
                row[i] = v == float("inf") or (v > 0 and Fraction(u(k, t, i), 1 << 24) < Fraction(v))
    return out
