"""Compiled LIF / LI neuron update (float32, one operation at a time, as the reference).

    v ← beta·v + (I + bias)            (or the tau charge forms)
    s = v > threshold;  reset: zero / subtract / none / hard-after
"""

# ruff: noqa: E741
from __future__ import annotations

import numpy as np
from numba import njit

from .numba_base import _JIT, _opt


@njit(**_JIT)
def _charge(cur, tt, b, beta, bias, has_bias, tau, charge, li, v):
    """Input (+ bias) and charge of one sample's neurons, in place on ``v[b]`` (float32)."""
    N = v.shape[1]
    if li or charge == 0:
        if has_bias:
            for n in range(N):
                v[b, n] = beta[n] * v[b, n] + (cur[tt, b, n] + bias[n])
        else:
            for n in range(N):
                v[b, n] = beta[n] * v[b, n] + cur[tt, b, n]
    elif charge == 1:
        for n in range(N):
            u = cur[tt, b, n] + bias[n] if has_bias else cur[tt, b, n]
            v[b, n] = v[b, n] + (u - v[b, n]) / tau[n]
    else:
        for n in range(N):
            u = cur[tt, b, n] + bias[n] if has_bias else cur[tt, b, n]
            v[b, n] = (v[b, n] - v[b, n] / tau[n]) + u


@njit(**_JIT)
def _fire(t, b, thr, ramt, reset, v, s, spikes):
    """Threshold and reset of one sample's neurons; returns the number of spikes."""
    N = v.shape[1]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    c = 0
    if reset == 2:
        for n in range(N):
            v[b, n] = v[b, n] - ramt[n] * s[b, n]
    elif reset == 4:
        for n in range(N):
            if s[b, n] > zero:
                v[b, n] = zero
    if reset == 0:
        for n in range(N):
            vv = v[b, n]
            f = vv > thr[n]
            spikes[t, b, n] = f
            c += f
            s[b, n] = one if f else zero
            v[b, n] = zero if f else vv
    elif reset == 1:
        for n in range(N):
            vv = v[b, n]
            f = vv > thr[n]
            spikes[t, b, n] = f
            c += f
            sf = one if f else zero
            s[b, n] = sf
            v[b, n] = vv - ramt[n] * sf
    else:
        for n in range(N):
            f = v[b, n] > thr[n]
            spikes[t, b, n] = f
            c += f
            s[b, n] = one if f else zero
    return c


@njit(**_JIT)
def _neuron(cur, steps, beta, thr, bias, has_bias, ramt, tau, charge, reset, li, v, s, spikes, mem, counts,
            rec, has_rec):
    """LIF / LI update of :mod:`slt_deploy.ir.neurons`, float32, one operation at a time.

    ``cur`` ``(steps or 1, B, N)``; writes ``spikes`` (uint8) or ``mem`` (LI membrane) and
    the spike count of each step; ``v``/``s`` (membrane, previous spikes) are updated.
    Variant branches sit outside the loops over neurons.
    """
    B, N = v.shape
    for t in range(steps):
        tt = 0 if cur.shape[0] == 1 else t
        c = 0
        for b in range(B):
            _charge(cur, tt, b, beta, bias, has_bias, tau, charge, li, v)
            if has_rec:  # RLIF: the recurrent current, after the leak
                rt = 0 if rec.shape[0] == 1 else t
                for n in range(N):
                    v[b, n] = v[b, n] + rec[rt, b, n]
            if li:
                for n in range(N):
                    mem[t, b, n] = v[b, n]
            else:
                c += _fire(t, b, thr, ramt, reset, v, s, spikes)
        counts[t] = c


def neuron_run(cur: np.ndarray, steps: int, p, state, rec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a LIF / LI layer for ``steps`` steps; see :func:`.kernels_numpy.neuron_run`."""
    b, n = cur.shape[1], cur.shape[2]
    counts = np.zeros(steps, np.int64)
    if p.li:
        mem = np.empty((steps, b, n), np.float32)
        spikes = np.empty((1, 1, 1), np.uint8)
    else:
        spikes = np.empty((steps, b, n), np.uint8)
        mem = np.empty((1, 1, 1), np.float32)
    bias, has_bias = _opt(p.bias)
    _neuron(cur, steps, p.beta, p.threshold, bias, has_bias, p.reset_amount, p.tau, p.charge, p.reset, p.li,
            state.v, state.s, spikes, mem, counts,
            rec if rec is not None else np.zeros((1, 1, 1), np.float32), rec is not None)
    return (mem if p.li else spikes), counts
