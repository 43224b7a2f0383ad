"""SpikingJelly neurons -> IR :class:`~slt_deploy.ir.LIF`, operation for operation (docs/importers.md).

SpikingJelly 2.0 (CPU, ``_ops/lif/reference.py``, ``_ops/reset.py``) per step, float32, with
τ, θ and ``v_reset`` python floats rounded to float32 by torch, ``vr = v_reset or 0``::

    LIFNode decay_input=True:  h = v + (x − (v − vr)) / τ      # vr = 0: v + (x − v)/τ  == IR "decay_input"
    LIFNode decay_input=False: h = (v − (v − vr)/τ) + x        # vr = 0: (v − v/τ) + x  == IR "leaky_tau"
    IFNode:                    h = v + x                       # == IR "leaky" with β = 1
    spike = (h − θ) >= 0                                       # == IR  h > nextafter(θ, −inf)
    hard reset (v_reset=0.0):  v = spike·0 + (1 − spike)·h     # == IR "zero"
    soft reset (v_reset=None): v = h − spike·θ                 # == IR "subtract", reset_amount = θ

A nonzero ``v_reset`` (reset to a value, and a leak towards it) has no IR form: refused.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import SltUnsupportedError
from ..ir.neurons import LIF
from ..ir.nodes import Shape
from .snntorch import check_heaviside

_NEURON = "spikingjelly.activation_based.neuron"


def owns(module: Any) -> bool:
    """True for any module defined by SpikingJelly (supported or not)."""
    return type(module).__module__.split(".")[0] == "spikingjelly"


def is_neuron(module: Any) -> bool:
    """True for SpikingJelly spiking neuron modules (the ones that hold a membrane)."""
    mod = sys.modules.get(_NEURON)
    if mod is None:
        return False
    bases = tuple(getattr(mod, n) for n in ("BaseNode", "SimpleBaseNode", "NonSpikingBaseNode") if hasattr(mod, n))
    return isinstance(module, bases)


def convert(module: Any, name: str, shape: Shape, path: str) -> LIF:
    """Convert a SpikingJelly ``LIFNode`` or ``IFNode`` called on input of per-sample ``shape``."""
    mod = sys.modules[_NEURON]
    where = f"SpikingJelly {type(module).__name__} '{path}'"
    if type(module) not in (mod.LIFNode, mod.IFNode):
        raise SltUnsupportedError(
            f"{where}: this neuron model is not supported (supported SpikingJelly neurons: LIFNode, IFNode)"
        )
    if getattr(module, "_neuron_precision", None) is not None:
        raise SltUnsupportedError(f"{where}: a reduced neuron precision is set; the IR runs float32")
    check_heaviside(module.surrogate_function, strict=False, where=where, what="surrogate_function")
    theta = _number(module.v_threshold, "v_threshold", where)
    threshold = np.nextafter(theta, np.float32(-np.inf))  # v >= θ  <=>  v > nextafter(θ, -inf)
    v_reset = module.v_reset
    if v_reset is None:
        reset = "subtract"
    elif _number(v_reset, "v_reset", where) == 0:
        reset = "zero"
    else:
        raise SltUnsupportedError(
            f"{where}: v_reset={v_reset} (hard reset to a nonzero value, leak towards it) has no IR equivalent; "
            "use v_reset=0.0 or None"
        )
    common = dict(shape=shape, threshold=threshold, reset=reset, reset_amount=theta)
    if type(module) is mod.IFNode:
        return LIF(name, beta=1.0, **common)
    tau = _number(module.tau, "tau", where)
    if not tau >= 1:
        raise SltUnsupportedError(f"{where}: tau={module.tau} must be >= 1")
    return LIF(name, charge="decay_input" if module.decay_input else "leaky_tau", tau=tau, **common)


def _number(value: Any, what: str, where: str) -> np.float32:
    """A python number as torch uses it against a float32 tensor: rounded to float32."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SltUnsupportedError(f"{where}: {what} must be a python float, got {type(value).__name__}")
    out = np.float32(value)
    if not np.isfinite(out):
        raise SltUnsupportedError(f"{where}: {what}={value} is not finite in float32")
    return out
