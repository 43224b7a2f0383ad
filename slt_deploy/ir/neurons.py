"""Neuron layers: the discrete-time equations every target reproduces exactly.

Per neuron, per step t, with input current ``u[t]`` (the node's single input) and state
``v[-1] = 0``, ``s[-1] = 0``. Each line is one floating-point operation in the working
precision, in this order (exactness across targets depends on it)::

    I[t] = u[t] + b                          (skipped when the layer has no bias)
    charge "leaky":        v[t] = β · v'[t-1] + I[t]          (β = 1: IF neuron)
    charge "decay_input":  v[t] = v'[t-1] + (I[t] − v'[t-1]) / τ   (SpikingJelly, decay_input=True)
    charge "leaky_tau":    v[t] = (v'[t-1] − v'[t-1] / τ) + I[t]   (SpikingJelly, decay_input=False)
    s[t] = v[t] > θ                          (strictly greater)
    reset "zero":             v'[t] = 0 where s[t] else v[t]
    reset "subtract":         v'[t] = v[t] − r · s[t]
    reset "subtract_delayed": v'[t] = v[t],  and the charge of step t+1 is followed by
                              v[t+1] = v[t+1] − r · s[t]          (snnTorch, reset_delay=True)
    reset "none":             v'[t] = v[t]

``r`` is ``reset_amount`` (the subtracted value), equal to θ unless a framework mapping
needs otherwise: SpikingJelly fires on ``v ≥ θ_sj``, which is ``v > nextafter(θ_sj, −inf)``
exactly, while its soft reset still subtracts ``θ_sj``.

The layer output is ``s[t]`` (0/1). :class:`LI` is the non-spiking readout: leaky charge
only, output ``v[t]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import SltValidationError
from .nodes import Node, Shape
from .weights import frozen_array

RESETS = ("zero", "subtract", "subtract_delayed", "none")
RLIF_RESETS = RESETS + ("zero_delayed",)
CHARGES = ("leaky", "decay_input", "leaky_tau")


def _param(value: float | np.ndarray, shape: Shape, what: str, node: str) -> np.ndarray:
    """Broadcast a scalar or per-neuron parameter to ``shape`` as read-only float32."""
    a = np.asarray(value, dtype=np.float32)
    try:
        a = np.broadcast_to(a, shape)
    except ValueError:
        raise SltValidationError(
            f"node '{node}': {what} has shape {a.shape}, not broadcastable to the layer {shape}"
        ) from None
    if not np.all(np.isfinite(a)):
        raise SltValidationError(f"node '{node}': {what} contains NaN or inf")
    return frozen_array(a, np.float32, what)


def _shape(shape: Shape, node: str) -> Shape:
    s = tuple(int(v) for v in shape)
    if not s or min(s) < 1:
        raise SltValidationError(f"node '{node}': neuron layer needs a non-empty shape of positive sizes, got {shape}")
    return s


@dataclass(frozen=True, eq=False)
class NeuronLayer(Node):
    """Common part of neuron layers: an explicit per-sample shape and a stateful membrane."""

    shape: Shape = ()
    spiking: ClassVar[bool] = True

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        if shape != self.shape:
            raise SltValidationError(
                f"node '{self.name}': input shape {shape} does not match the layer shape {self.shape}"
            )
        return self.shape


@dataclass(frozen=True, eq=False)
class LIF(NeuronLayer):
    """Leaky integrate-and-fire layer (β = 1 everywhere makes it IF). See module docstring."""

    beta: np.ndarray | float = 1.0
    threshold: np.ndarray | float = 1.0
    bias: np.ndarray | float | None = None
    reset: str = "zero"
    reset_amount: np.ndarray | float | None = None
    charge: str = "leaky"
    tau: np.ndarray | float | None = None
    kind: ClassVar[str] = "lif"
    resets: ClassVar[tuple[str, ...]] = RESETS

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = _shape(self.shape, self.name)
        object.__setattr__(self, "shape", shape)
        if self.reset not in self.resets:
            raise SltValidationError(f"node '{self.name}': reset must be one of {self.resets}, got {self.reset!r}")
        if self.charge not in CHARGES:
            raise SltValidationError(f"node '{self.name}': charge must be one of {CHARGES}, got {self.charge!r}")
        beta = _param(self.beta, shape, "beta", self.name)
        if np.any(beta < 0) or np.any(beta > 1):
            raise SltValidationError(f"node '{self.name}': beta must lie in [0, 1] (decay per step)")
        object.__setattr__(self, "beta", beta)
        threshold = _param(self.threshold, shape, "threshold", self.name)
        object.__setattr__(self, "threshold", threshold)
        if self.bias is not None:
            object.__setattr__(self, "bias", _param(self.bias, shape, "bias", self.name))
        if self.reset_amount is None:
            object.__setattr__(self, "reset_amount", threshold)
        else:
            object.__setattr__(self, "reset_amount", _param(self.reset_amount, shape, "reset_amount", self.name))
        if self.charge in ("decay_input", "leaky_tau"):
            if self.tau is None:
                raise SltValidationError(f"node '{self.name}': charge {self.charge!r} needs tau")
            tau = _param(self.tau, shape, "tau", self.name)
            if np.any(tau < 1):
                raise SltValidationError(f"node '{self.name}': tau must be >= 1 for charge {self.charge!r}")
            if np.any(self.beta != 1):
                raise SltValidationError(f"node '{self.name}': charge {self.charge!r} decays by tau; leave beta at 1")
            object.__setattr__(self, "tau", tau)
        elif self.tau is not None:
            raise SltValidationError(f"node '{self.name}': tau is only used with the tau charges; use beta")

    @property
    def is_if(self) -> bool:
        """True when the layer integrates without leak (β = 1, leaky charge)."""
        return self.charge == "leaky" and bool(np.all(self.beta == 1))


@dataclass(frozen=True, eq=False)
class RLIF(LIF):
    """Recurrent LIF layer with the recurrent current added *after* the leak (snnTorch ``RLeaky``).

    Two inputs of the layer's shape, in edge order: ``u`` (feed-forward current) and ``r``
    (recurrent current, typically a Linear fed by this layer through a recurrent edge, so it
    holds ``W_rec · s[t−1] + b_rec``). Per neuron and step, one operation per line::

        I[t] = u[t] + b                                  (if the layer has a bias)
        v[t] = (β · v'[t−1] + I[t]) + r[t]               (leak, then the recurrent current)
        subtract_delayed: v[t] = v[t] − ρ · s[t−1]
        zero_delayed:     v[t] = 0 where s[t−1] else v[t]   (snnTorch RLeaky reset "zero":
                                                          base − R·base drops the whole charge)
        s[t] = v[t] > θ
        zero / subtract / none: as :class:`LIF`

    ``β`` and ``θ`` are per neuron (heterogeneous time constants: ``β = exp(−dt/τ_m)``
    drawn per neuron). Only the ``leaky`` charge is allowed.
    """

    kind: ClassVar[str] = "rlif"
    arity: ClassVar[tuple[int, int | None]] = (2, 2)
    resets: ClassVar[tuple[str, ...]] = RLIF_RESETS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.charge != "leaky":
            raise SltValidationError(f"node '{self.name}': a recurrent LIF (rlif) charges 'leaky' only")

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) != 2:
            raise SltValidationError(
                f"node '{self.name}' (rlif) takes two inputs (feed-forward, recurrent current), got {len(in_shapes)}"
            )
        for shape in in_shapes:
            if tuple(shape) != self.shape:
                raise SltValidationError(
                    f"node '{self.name}': input shape {tuple(shape)} does not match the layer shape {self.shape}"
                )
        return self.shape


def IF(name: str, shape: Shape, threshold: np.ndarray | float = 1.0, **kw) -> LIF:
    """Integrate-and-fire layer: :class:`LIF` with β = 1."""
    return LIF(name, shape=shape, beta=1.0, threshold=threshold, **kw)


@dataclass(frozen=True, eq=False)
class LI(NeuronLayer):
    """Non-spiking leaky integrator readout: ``v[t] = β · v[t-1] + (u[t] + b)``; output ``v[t]``."""

    beta: np.ndarray | float = 1.0
    bias: np.ndarray | float | None = None
    kind: ClassVar[str] = "li"
    spiking: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = _shape(self.shape, self.name)
        object.__setattr__(self, "shape", shape)
        beta = _param(self.beta, shape, "beta", self.name)
        if np.any(beta < 0) or np.any(beta > 1):
            raise SltValidationError(f"node '{self.name}': beta must lie in [0, 1] (decay per step)")
        object.__setattr__(self, "beta", beta)
        if self.bias is not None:
            object.__setattr__(self, "bias", _param(self.bias, shape, "bias", self.name))
