"""Sparse weight tensors: a keep-mask plus one of three value encodings.

A weight tensor of shape ``(C_out, ...)`` (Linear ``(out, in)``, Conv2d
``(C_out, C_in/groups, kH, kW)``) is ``W = mask ⊙ value`` with

- :class:`BinaryWeights`: ``value[o, ...] = α[o] · (−1 if negative else +1)``
- :class:`Int8Weights`:   ``value[o, ...] = scale[o] · q``, ``q`` in int8
- :class:`FloatWeights`:  ``value`` float32

Scales are per output channel (axis 0). Canonical form, enforced on construction so that
equality is bit equality: entries outside the mask are zero (``negative`` False, ``q`` 0,
``values`` +0.0).

The synaptic sum of a layer is defined on the *integer-valued* part of the encoding so
that every target can compute it exactly (see docs/semantics.md):

    binary: I[o] = α[o] · Σ_i mask·sign·x[i]      int8: I[o] = scale[o] · Σ_i mask·q·x[i]
    float:  I[o] = Σ_i W[o, i] · x[i]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SltValidationError


def frozen_array(a: np.ndarray, dtype: np.dtype | type, what: str) -> np.ndarray:
    """Return a read-only C-contiguous copy of ``a`` as ``dtype``."""
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise SltValidationError(f"{what} contains NaN or inf values; weights and parameters must be finite")


def _check_channel_vector(v: np.ndarray, mask: np.ndarray, what: str) -> None:
    if v.ndim != 1 or v.shape[0] != mask.shape[0]:
        raise SltValidationError(
            f"{what} has shape {v.shape}, expected ({mask.shape[0]},): one value per output channel"
        )


@dataclass(frozen=True, eq=False)
class BinaryWeights:
    """Binary ticket weights: ``W = mask ⊙ α[o] · sign``; ``negative`` holds the sign bits."""

    mask: np.ndarray
    negative: np.ndarray
    alpha: np.ndarray

    kind = "binary"

    def __post_init__(self) -> None:
        mask = frozen_array(self.mask, bool, "mask")
        negative = np.array(self.negative, dtype=bool)
        if negative.shape != mask.shape:
            raise SltValidationError(f"sign bits have shape {negative.shape}, mask has {mask.shape}")
        alpha = np.array(self.alpha, dtype=np.float32).reshape(-1) if np.ndim(self.alpha) else np.full(
            mask.shape[0], self.alpha, np.float32
        )
        _check_channel_vector(alpha, mask, "alpha")
        _check_finite(alpha, "alpha")
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "negative", frozen_array(negative & mask, bool, "negative"))
        object.__setattr__(self, "alpha", frozen_array(alpha, np.float32, "alpha"))

    def integer_values(self) -> np.ndarray:
        """Signs of kept weights as int8 in {-1, 0, +1}."""
        return np.where(self.mask, np.where(self.negative, -1, 1), 0).astype(np.int8)

    def channel_scale(self) -> np.ndarray:
        return self.alpha


@dataclass(frozen=True, eq=False)
class Int8Weights:
    """Quantised weights: ``W = mask ⊙ scale[o] · q`` with ``q`` int8."""

    mask: np.ndarray
    q: np.ndarray
    scale: np.ndarray

    kind = "int8"

    def __post_init__(self) -> None:
        mask = frozen_array(self.mask, bool, "mask")
        q = np.asarray(self.q)
        if q.shape != mask.shape:
            raise SltValidationError(f"int8 values have shape {q.shape}, mask has {mask.shape}")
        if q.dtype != np.int8 and (np.any(q < -128) or np.any(q > 127) or np.any(q != np.round(q))):
            raise SltValidationError("int8 weights must be integers in [-128, 127]")
        scale = np.array(self.scale, dtype=np.float32).reshape(-1) if np.ndim(self.scale) else np.full(
            mask.shape[0], self.scale, np.float32
        )
        _check_channel_vector(scale, mask, "scale")
        _check_finite(scale, "scale")
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "q", frozen_array(np.where(mask, q, 0), np.int8, "q"))
        object.__setattr__(self, "scale", frozen_array(scale, np.float32, "scale"))

    def integer_values(self) -> np.ndarray:
        return self.q

    def channel_scale(self) -> np.ndarray:
        return self.scale


@dataclass(frozen=True, eq=False)
class FloatWeights:
    """Full-precision sparse weights: ``W = mask ⊙ values`` (float32)."""

    mask: np.ndarray
    values: np.ndarray

    kind = "float32"

    def __post_init__(self) -> None:
        mask = frozen_array(self.mask, bool, "mask")
        values = np.asarray(self.values, dtype=np.float32)
        if values.shape != mask.shape:
            raise SltValidationError(f"weight values have shape {values.shape}, mask has {mask.shape}")
        _check_finite(values, "weights")
        # +0.0 outside the mask (and for kept -0.0 too, so equality is bit equality).
        values = np.where(mask, values, np.float32(0)) + np.float32(0)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "values", frozen_array(values, np.float32, "values"))


Weights = BinaryWeights | Int8Weights | FloatWeights


def dense_weights(w: Weights) -> np.ndarray:
    """The dense float32 matrix ``mask ⊙ value`` (for display and for dense baselines)."""
    if isinstance(w, FloatWeights):
        return w.values.copy()
    scale = w.channel_scale().reshape((-1,) + (1,) * (w.mask.ndim - 1))
    return (w.integer_values().astype(np.float32) * scale).astype(np.float32)


def density(w: Weights) -> float:
    """Fraction of kept synapses."""
    return float(w.mask.mean()) if w.mask.size else 0.0


def weights_equal(a: Weights, b: Weights) -> bool:
    """Bit equality of two weight tensors (kind, mask, and every stored array)."""
    if type(a) is not type(b):
        return False
    fields = {"binary": ("mask", "negative", "alpha"), "int8": ("mask", "q", "scale"), "float32": ("mask", "values")}
    return all(_arrays_bit_equal(getattr(a, f), getattr(b, f)) for f in fields[a.kind])


def _arrays_bit_equal(x: np.ndarray, y: np.ndarray) -> bool:
    return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()


def binarize(w: np.ndarray, mask: np.ndarray | None = None, alpha: np.ndarray | None = None) -> BinaryWeights:
    """XNOR-Net style binarisation: ``sign(w) · α`` with ``α[o]`` = mean |w| of the kept weights of channel o.

    A channel with no kept weight gets α = 0. ``w == 0`` counts as positive. Pass ``alpha``
    to use given scales instead.
    """
    w = np.asarray(w, dtype=np.float32)
    mask = (w != 0) if mask is None else np.asarray(mask, dtype=bool)
    if alpha is None:
        flat_abs = np.abs(np.where(mask, w, 0)).reshape(w.shape[0], -1).astype(np.float64)
        kept = mask.reshape(w.shape[0], -1).sum(axis=1)
        alpha = np.where(kept > 0, flat_abs.sum(axis=1) / np.maximum(kept, 1), 0.0)
    return BinaryWeights(mask=mask, negative=w < 0, alpha=np.asarray(alpha, dtype=np.float32))
