"""The rate code of :mod:`slt_deploy.ratecode` compiled with numba (the CPU runtime's ``numba`` backend).

The same arithmetic as the numpy evaluation there (keys, then ``u(t, i) < threshold``), one
loop per value instead of one array pass per operation, about ten times faster; the
thresholds come from :func:`slt_deploy.ratecode.thresholds`, and tests check the two
evaluations bit for bit. Imported only when numba is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from slt_deploy import ratecode
from slt_deploy.ratecode import MIX1, MIX2

_JIT = dict(cache=True, nogil=True, boundscheck=False)
_M1, _M2 = np.uint64(MIX1), np.uint64(MIX2)
_S30, _S27, _S31, _S32, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32), np.uint64(40)
_NEG_ZERO, _ZERO = np.uint32(0x80000000), np.uint64(0)


@njit(**_JIT)
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**_JIT)
def sample_keys(bits: np.ndarray, seed_word: np.uint64) -> np.ndarray:
    """``K`` per row of the uint32 bit patterns ``(batch, n)``."""
    batch, n = bits.shape
    keys = np.empty(batch, np.uint64)
    for b in range(batch):
        acc = _ZERO
        for i in range(n):
            v = bits[b, i]
            w = _ZERO if v == _NEG_ZERO else np.uint64(v)
            acc += _mix(seed_word ^ ((np.uint64(i) << _S32) | w))
        keys[b] = _mix(acc)
    return keys


@njit(**_JIT)
def fill_steps(keys: np.ndarray, thr: np.ndarray, out: np.ndarray) -> None:
    """``out[t, b, i] = u(t, i) < thr[b, i]`` for every step of the uint8 ``out`` ``(T, batch, n)``."""
    steps, batch, n = out.shape
    c = np.empty(n, np.uint64)
    for t in range(steps):
        for i in range(n):
            c[i] = _mix((np.uint64(t) << _S32) | np.uint64(i))
        for b in range(batch):
            k = keys[b]
            for i in range(n):
                out[t, b, i] = (_mix(k ^ c[i]) >> _S40) < thr[b, i]


def spikes(encoding: Any, x: np.ndarray, timesteps: int) -> np.ndarray:
    """uint8 ``(T, batch, *input)``: :func:`slt_deploy.ratecode.spikes`, compiled."""
    ratecode.require_current(encoding.code, encoding.seed)
    ratecode.check_seed(encoding.seed)
    x32 = ratecode.features(x)
    keys = sample_keys(x32.view(np.uint32), np.uint64(ratecode.seed_word(encoding.seed)))
    out = np.empty((timesteps, *x32.shape), np.uint8)
    fill_steps(keys, ratecode.thresholds(x32), out)
    return out.reshape((timesteps, *x.shape))
