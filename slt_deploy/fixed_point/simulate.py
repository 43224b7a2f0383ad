"""The fixed-point reference: the chip's integer neuron in numpy, stepped in ticket time.

Loihi's integer neuron (lava-nc 0.10.0, ``lava/proc/lif/models.py``,
``AbstractPyLifModelFixed.subthr_dynamics`` and ``PyLifModelBitAcc``), per neuron and step::

    a      = Σ_i w[i] · x[i]                       synaptic input (Dense: shifted by weight_exp)
    u      = wrap24(u·(4096 − (du + 1)) ⊘ 4096 + (a << 6))    du = 4095 here, so u = wrap24(a << 6)
    v      = clip24(v·(4096 − dv) ⊘ 4096 + u + (bias_mant << bias_exp))
    s      = v > (vth << 6)
    v      = 0 where s                               (zero reset; other resets: slt's own model)

where ``y ⊘ 4096 = sign(y)·(|y| >> 12)`` (truncation toward zero), ``wrap24`` is Lava's
single-step wrap of values beyond ±2^23 and ``clip24`` clips to ±(2^23 − 1). The numbers are
:data:`.chip.LOIHI2`'s; every function takes another :class:`.ChipSpec`. The arithmetic runs in
int64 with Lava's int32 wrap of ``a << 6`` (its numpy arrays are int32).

There are no connection delays here (Lava adds one step per connection; the Lava target
aligns its records to ticket time), so layer outputs are directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chip import LOIHI2, ChipSpec
from .integers import FixedLayer


def _wrap32(a: np.ndarray) -> np.ndarray:
    return ((a + (1 << 31)) % (1 << 32)) - (1 << 31)


def _decay(v: np.ndarray, d: np.ndarray | int, chip: ChipSpec) -> np.ndarray:
    """``sign(v·(D−d)) · (|v·(D−d)| >> decay_shift)`` in int64 (Lava's truncating decay)."""
    p = v.astype(np.int64) * (chip.decay_unity - d)
    return np.sign(p) * (np.abs(p) >> chip.decay_shift)


def lif_step(u: np.ndarray, v: np.ndarray, a: np.ndarray, dv: np.ndarray, bias_mant: np.ndarray,
             du: int | None = None, chip: ChipSpec = LOIHI2) -> tuple[np.ndarray, np.ndarray, int]:
    """One step of Lava's ``AbstractPyLifModelFixed.subthr_dynamics``; returns (u, v, #wrapped or clipped).

    ``du`` defaults to ``chip.du_full`` (the current decays fully every step).
    """
    du = chip.du_full if du is None else du
    max_uv = chip.max_uv
    decayed_curr = _decay(u, du + 1, chip)
    decayed_curr = _wrap32(decayed_curr + _wrap32(a.astype(np.int64) << chip.act_shift))
    wrapped = np.where(decayed_curr > max_uv, decayed_curr - 2 * max_uv, decayed_curr)
    wrapped = np.where(wrapped <= -max_uv, decayed_curr + 2 * max_uv, wrapped)
    events = int(np.count_nonzero(wrapped != decayed_curr))
    updated = _decay(v, dv, chip) + wrapped + (bias_mant.astype(np.int64) << chip.bias_exp)
    clipped = np.clip(updated, -max_uv + 1, max_uv - 1)
    events += int(np.count_nonzero(clipped != updated))
    return wrapped, clipped, events


def conv_wrap24(a: np.ndarray, chip: ChipSpec = LOIHI2) -> np.ndarray:
    """Lava's Conv fixed model: ``signed_clamp(x, 24) = (x + 2^23) mod 2^24 − 2^23`` (the chip's state width)."""
    return ((a + chip.max_uv) % (2 * chip.max_uv)) - chip.max_uv


@dataclass
class _State:
    u: np.ndarray
    v: np.ndarray
    s: np.ndarray               # last step's spikes (subtract_delayed subtracts r · s[t−1])

    @classmethod
    def zeros(cls, batch: int, n: int) -> _State:
        return cls(*(np.zeros((batch, n), np.int64) for _ in range(3)))


def run_layers(layers: list[FixedLayer], input_name: str, xi: np.ndarray, clamp_conv: bool,
               chip: ChipSpec = LOIHI2) -> tuple[dict[str, list[np.ndarray]], dict[str, int]]:
    """Step integer ``layers`` (in update order) over integer input ``xi`` ``(T, batch, n_in)``.

    Returns per layer its per-step outputs ``(batch, n)`` (spikes, or LI membranes ``V``) and
    how many values wrapped or clipped. ``clamp_conv``: synapses that are one convolution wrap
    their sums to the state width, as Lava's ``Conv`` process does.
    """
    T, batch = xi.shape[0], xi.shape[1]
    states = {layer.name: _State.zeros(batch, layer.size) for layer in layers}
    prev = {layer.name: np.zeros((batch, layer.size), np.int64) for layer in layers}
    outs: dict[str, list[np.ndarray]] = {layer.name: [] for layer in layers}
    sat = {layer.name: 0 for layer in layers}
    for t in range(T):
        cur = {input_name: xi[t]}
        prev[input_name] = xi[t - 1] if t > 0 else np.zeros_like(xi[0])
        for layer in layers:
            a, wrapped = _synaptic_input(layer, cur, prev, batch, clamp_conv, chip)
            out, events = _neuron_step(layer, states[layer.name], a, chip)
            sat[layer.name] += wrapped + events
            cur[layer.name] = out
            outs[layer.name].append(out)
        for layer in layers:
            prev[layer.name] = cur[layer.name]
    return outs, sat


def _synaptic_input(layer: FixedLayer, cur: dict[str, np.ndarray], prev: dict[str, np.ndarray], batch: int,
                    clamp_conv: bool, chip: ChipSpec) -> tuple[np.ndarray, int]:
    """``a = Σ_syn W · x_src`` of this step (recurrent synapses read the previous step), and wraps counted."""
    a = np.zeros((batch, layer.size), np.int64)
    events = 0
    for syn in layer.synapses:
        x = cur[syn.src] if syn.lag == 0 else prev[syn.src]
        part = syn.W.apply(x.astype(np.int64))
        if clamp_conv and syn.conv is not None and syn.delay == 0:
            wrapped = conv_wrap24(part, chip)
            events += int(np.count_nonzero(np.abs(part) >= 2 * chip.max_uv))
            events += int(np.count_nonzero(wrapped != part))
            part = wrapped
        a += part
    return a, events


def _neuron_step(layer: FixedLayer, st: _State, a: np.ndarray, chip: ChipSpec) -> tuple[np.ndarray, int]:
    """Charge, fire and reset one layer in place; returns its output (spikes, or V of an LI readout)."""
    u, v, events = lif_step(st.u, st.v, a, layer.dv, layer.bias_mant, chip=chip)
    if layer.reset == "subtract_delayed":
        v = v - layer.reset_amount * st.s
    if layer.kind == "li":
        out = v.copy()
        s = np.zeros_like(v)
    else:
        s = (v > (layer.vth << chip.vth_shift)).astype(np.int64)
        if layer.reset == "zero":
            v = np.where(s > 0, 0, v)
        elif layer.reset == "subtract":
            v = v - layer.reset_amount * s
        out = s
    st.u, st.v, st.s = u, v, s
    return out, events


__all__ = ["conv_wrap24", "lif_step", "run_layers"]
