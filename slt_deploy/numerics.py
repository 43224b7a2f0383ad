"""Numerical steps shared by the array-based backends (reference in numpy, torch target in torch).

Written once over a tiny array namespace (:class:`ArrayOps`) so that the numpy reference and
the torch target execute the *same* operations in the *same* order, which is what makes them
equal bit for bit (docs/semantics.md). The equations are those of :mod:`slt_deploy.ir.neurons`:

    I[t] = u[t] + b                                            (when the layer has a bias)
    leaky:        v = β·v + I          decay_input: v = v + (I − v)/τ     leaky_tau: v = (v − v/τ) + I
    subtract_delayed: v = v − r·s[t−1]     (before the threshold test)
    s = v > θ ;  zero: v = 0 where s ;  subtract: v = v − r·s

and the finishing step of a synapse layer: ``y = float(S)·scale + bias`` (binary / int8
codes are scaled per output channel after the exact sum ``S`` is rounded once; float32
weights have no scale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ir.neurons import LI, LIF


@dataclass(frozen=True)
class ArrayOps:
    """The few operations the shared steps need beyond ``+ − * / >``: where, cast, zeros."""

    where: Callable[[Any, Any, Any], Any]
    cast: Callable[[Any, Any], Any]        # (array, like) -> array in like's dtype
    zeros_like: Callable[[Any], Any]


NUMPY = ArrayOps(where=np.where, cast=lambda a, like: a.astype(like.dtype), zeros_like=np.zeros_like)


def torch_ops(torch: Any) -> ArrayOps:
    """The :class:`ArrayOps` of PyTorch tensors."""
    return ArrayOps(where=torch.where, cast=lambda a, like: a.to(like.dtype), zeros_like=torch.zeros_like)


@dataclass(frozen=True)
class NeuronConstants:
    """One neuron layer's parameters in a backend's arrays (working precision, per neuron).

    ``convert(array)`` turns a float32 numpy parameter into the backend's array; absent ones
    stay None. ``li`` marks the non-spiking readout.
    """

    li: bool
    charge: str
    reset: str
    beta: Any
    threshold: Any
    reset_amount: Any
    tau: Any
    bias: Any
    zero: Any

    @classmethod
    def of(cls, node: LIF | LI, convert: Callable[[np.ndarray], Any], zero: Any) -> NeuronConstants:
        li = isinstance(node, LI)

        def opt(a: np.ndarray | None) -> Any:
            return None if a is None else convert(a)

        return cls(li=li, charge="leaky" if li else node.charge, reset="none" if li else node.reset,
                   beta=convert(node.beta), threshold=None if li else convert(node.threshold),
                   reset_amount=None if li else convert(node.reset_amount),
                   tau=None if li else opt(node.tau), bias=opt(node.bias), zero=zero)


def neuron_step(ops: ArrayOps, c: NeuronConstants, v: Any, s: Any, u: Any, rec: Any = None) -> tuple[Any, Any]:
    """One step of one neuron layer: ``(v, s)`` is the state (membrane, last spikes), ``u`` the input
    current in the working precision, ``rec`` a recurrent LIF's (RLIF) second input, added after the
    leak. Returns the new ``(v, s)``; the layer's output is ``s`` (spikes) or, for an LI readout,
    ``v``. One array operation per floating-point operation."""
    current = u if c.bias is None else u + c.bias
    if c.charge == "leaky":
        v = c.beta * v + current
    elif c.charge == "decay_input":
        v = v + (current - v) / c.tau
    else:  # leaky_tau
        v = (v - v / c.tau) + current
    if rec is not None:
        v = v + rec
    if c.li:
        return v, s
    if c.reset == "subtract_delayed":
        v = v - c.reset_amount * s
    elif c.reset == "zero_delayed":
        v = ops.where(s > 0, c.zero, v)
    s = ops.cast(v > c.threshold, v)
    if c.reset == "zero":
        v = ops.where(s > 0, c.zero, v)
    elif c.reset == "subtract":
        v = v - c.reset_amount * s
    return v, s


def scale_and_bias(rounded_sum: Any, scale: Any | None, bias: Any | None) -> Any:
    """``float(S)·scale + bias`` of a synapse layer; ``scale``/``bias`` pre-shaped to broadcast
    over the channel axis (None when absent: float32 weights have no scale)."""
    out = rounded_sum
    if scale is not None:
        out = out * scale
    if bias is not None:
        out = out + bias
    return out


def channel_shape(ndim: int, channel_axis: int = 1) -> tuple[int, ...]:
    """Broadcast shape of a per-channel vector for arrays of ``ndim`` dims (``(1, -1, 1, 1)`` for conv)."""
    shape = [1] * ndim
    shape[channel_axis] = -1
    return tuple(shape)


def pool_windows(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], pad_value: float) -> np.ndarray:
    """Window view ``(..., C, H_out, W_out, kH, kW)`` of the padded input ``(..., C, H, W)``."""
    (ph, pw), (sh, sw), (kh, kw) = padding, stride, kernel_size
    lead = [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x, lead + [(ph, ph), (pw, pw)], constant_values=pad_value)
    h_out = (xp.shape[-2] - kh) // sh + 1
    w_out = (xp.shape[-1] - kw) // sw + 1
    rows = (np.arange(h_out) * sh)[:, None] + np.arange(kh)[None, :]
    cols = (np.arange(w_out) * sw)[:, None] + np.arange(kw)[None, :]
    return xp[..., rows[:, None, :, None], cols[None, :, None, :]]


def conv_patches(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 dilation: tuple[int, int]) -> np.ndarray:
    """Patches ``(batch, C, H_out, W_out, kH, kW)`` of ``(batch, C, H, W)`` (zero padding, dilation):
    ``patches[b, c, i, j, ki, kj] = x_padded[b, c, i·sh + ki·dh, j·sw + kj·dw]``."""
    (ph, pw), (sh, sw), (dh, dw), (kh, kw) = padding, stride, dilation, kernel_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    h_out = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    w_out = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    rows = (np.arange(h_out) * sh)[:, None] + (np.arange(kh) * dh)[None, :]
    cols = (np.arange(w_out) * sw)[:, None] + (np.arange(kw) * dw)[None, :]
    return xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]


def summed_codes(w: Any) -> np.ndarray:
    """float64 array of what a synapse layer sums: binary signs / int8 codes, or the float32 weights."""
    from .ir.weights import FloatWeights

    if isinstance(w, FloatWeights):
        return np.array(w.values, dtype=np.float64)
    return np.array(w.integer_values(), dtype=np.float64)


def channel_scale(w: Any) -> np.ndarray | None:
    """The per-output-channel scale of binary / int8 weights (float32), None for float32 weights."""
    from .ir.weights import FloatWeights

    return None if isinstance(w, FloatWeights) else np.asarray(w.channel_scale(), dtype=np.float32)
