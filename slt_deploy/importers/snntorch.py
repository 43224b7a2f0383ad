"""snnTorch neurons -> IR :class:`~slt_deploy.ir.LIF`, operation for operation (docs/importers.md).

snnTorch 1.0 ``Leaky`` per step, all float32, ``β = clamp(beta, 0, 1)``, previous returned
membrane ``m`` (0 at the first step), input current ``I``::

    R   = (m − θ) > 0                     # reset flag = the previous step's spike
    subtract: mem = (β·m + I) − R·θ       # == IR "subtract_delayed"
    zero:     mem = β·((1 − R)·m) + I     # == IR "zero" (the reset zeroes m before the decay)
    none:     mem = β·m + I               # == IR "none"
    spk = (mem − θ) > 0                   # == IR  v > θ

``RLeaky`` adds the recurrent term after the leak, ``base = (β·m + I) + rec(spk[t−1])``,
which is the IR's recurrent LIF (:class:`~slt_deploy.ir.RLIF`, second input ``rec``)::

    subtract: mem = base − R·θ            # == RLIF "subtract_delayed"
    zero:     mem = base − R·base         # == RLIF "zero_delayed" (0 after a spike, else base)
    none:     mem = base                  # == RLIF "none"

``rec`` is the module's ``recurrent`` (``nn.Linear``/``nn.Conv2d``, bias included) or the
one-to-one gains ``V`` (``spk·V``, one exact product), imported as a synapse node fed by the
layer through a recurrent edge. ``reset_delay=False`` resets twice and is refused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SltUnsupportedError
from ..ir.neurons import LIF, RLIF
from ..ir.nodes import Shape

_PROBE = (-2.0, -1e-30, -1.4e-45, -0.0, 0.0, 1.4e-45, 1e-30, 2.0)


@dataclass
class NeuronImport:
    """A converted neuron: the LIF layer, whether the module returns ``(spk, mem)``, and
    for RLeaky its recurrent synapses (an ``nn.Linear``/``nn.Conv2d`` submodule path, or
    the one-to-one gains ``V`` as a per-neuron float32 array)."""

    lif: LIF
    returns_pair: bool
    recurrent_path: str | None = None
    recurrent_gain: np.ndarray | None = None


def owns(module: Any) -> bool:
    """True for any module defined by snnTorch (supported or not)."""
    return type(module).__module__.split(".")[0] == "snntorch"


def convert(module: Any, name: str, shape: Shape, path: str, allow_reassociation: bool = False) -> NeuronImport:
    """Convert an snnTorch ``Leaky`` or ``RLeaky`` called on input of per-sample ``shape``."""
    snn = sys.modules["snntorch"]
    where = f"snnTorch {type(module).__name__} '{path}'"
    if type(module) is snn.Leaky or _same_methods(module, snn.Leaky):
        cls = snn.Leaky
    elif type(module) is snn.RLeaky or _same_methods(module, snn.RLeaky):
        cls = snn.RLeaky
    else:
        raise SltUnsupportedError(
            f"{where}: this neuron model is not supported (supported snnTorch neurons: Leaky, RLeaky)"
        )
    if not _same_methods(module, cls):
        raise SltUnsupportedError(f"{where}: the subclass overrides the update equations; cannot map it exactly")
    _check_common(module, where)
    mechanism = _mechanism(module, cls, where)
    beta = np.clip(per_neuron(module.beta, shape, "beta", where), np.float32(0), np.float32(1))
    theta = per_neuron(module.threshold, shape, "threshold", where)
    delay = bool(getattr(module, "reset_delay", True))
    if cls is snn.RLeaky:
        reset = _rleaky_reset(mechanism, delay, theta, where)
    else:
        reset = _leaky_reset(mechanism, delay, theta, where)
    node = RLIF if cls is snn.RLeaky else LIF
    lif = node(name, shape=shape, beta=beta, threshold=theta, reset=reset)
    pair = bool(module.output) or not bool(module.init_hidden)
    if cls is snn.Leaky:
        return NeuronImport(lif, pair)
    return _with_recurrence(module, lif, pair, path, shape, where)


# ---------------------------------------------------------------------- checks
def _same_methods(module: Any, cls: type) -> bool:
    if not isinstance(module, cls):
        return False
    names = ("forward", "fire", "mem_reset", "_base_state_function", "_base_sub", "_base_zero", "_base_int")
    return all(getattr(type(module), n, None) is getattr(cls, n, None) for n in names)


def _check_common(module: Any, where: str) -> None:
    if module.state_quant:
        raise SltUnsupportedError(f"{where}: state_quant is not supported; remove it or quantise the ticket instead")
    if module.inhibition:
        raise SltUnsupportedError(f"{where}: inhibition (winner-take-all) has no IR equivalent")
    gsf = getattr(module, "graded_spikes_factor", None)
    if gsf is not None and not bool(np.all(_array(gsf) == 1)):
        raise SltUnsupportedError(f"{where}: graded_spikes_factor != 1 scales the spikes; the IR emits 0/1 spikes")
    check_heaviside(module.spike_grad, strict=True, where=where, what="spike_grad")


def check_heaviside(fn: Any, strict: bool, where: str, what: str) -> None:
    """Refuse a spike function whose forward pass is not ``x > 0`` (strict) or ``x >= 0``."""
    import torch

    probe = torch.tensor(_PROBE, dtype=torch.float32)
    want = (probe > 0) if strict else (probe >= 0)
    try:
        with torch.no_grad():
            got = fn(probe)
        ok = isinstance(got, torch.Tensor) and got.shape == probe.shape and bool(torch.equal(got != 0, want))
        ok = ok and bool(torch.all((got == 0) | (got == 1)))
    except Exception:  # noqa: BLE001 - any failure means "cannot verify"
        ok = False
    if not ok:
        op = ">" if strict else ">="
        raise SltUnsupportedError(
            f"{where}: {what} does not compute the Heaviside step (x {op} 0) in its forward pass; "
            "use the framework's own surrogate functions"
        )


def _mechanism(module: Any, cls: type, where: str) -> str:
    """The reset actually run: ``state_function`` is fixed at construction, the name may change later."""
    fn = getattr(module.state_function, "__func__", None)
    by_fn = {cls._base_sub: "subtract", cls._base_zero: "zero", cls._base_int: "none"}
    if fn not in by_fn:
        raise SltUnsupportedError(f"{where}: unrecognised state function {module.state_function!r}")
    mech = by_fn[fn]
    named = {0: "subtract", 1: "zero", 2: "none"}.get(int(module.reset_mechanism_val))
    if named != mech:
        raise SltUnsupportedError(
            f"{where}: reset_mechanism was changed to {named!r} after construction but the module still "
            f"charges with {mech!r}; rebuild the neuron with the reset you want"
        )
    return mech


def _leaky_reset(mechanism: str, delay: bool, theta: np.ndarray, where: str) -> str:
    if mechanism == "none":
        return "none"
    if mechanism == "zero":
        if not delay and np.any(theta < 0):
            raise SltUnsupportedError(
                f"{where}: reset 'zero' with reset_delay=False and a negative threshold re-fires after the reset; "
                "no IR equivalent"
            )
        return "zero"
    if not delay:
        raise SltUnsupportedError(
            f"{where}: reset 'subtract' with reset_delay=False applies a second reset when the membrane stays "
            "above threshold; no IR equivalent (use the default reset_delay=True)"
        )
    _no_negative_threshold(theta, where)
    return "subtract_delayed"


def _rleaky_reset(mechanism: str, delay: bool, theta: np.ndarray, where: str) -> str:
    """RLIF reset of an RLeaky: its reset flag is the previous step's spike (reset_delay=True)."""
    if mechanism == "none":
        return "none"
    if not delay:
        raise SltUnsupportedError(
            f"{where}: reset {mechanism!r} with reset_delay=False resets twice (mem - (spk - R)*...); no IR "
            "equivalent (use the default reset_delay=True)"
        )
    _no_negative_threshold(theta, where, mechanism)
    return "subtract_delayed" if mechanism == "subtract" else "zero_delayed"


def _no_negative_threshold(theta: np.ndarray, where: str, mechanism: str = "subtract") -> None:
    if np.any(theta < 0):
        raise SltUnsupportedError(
            f"{where}: with reset {mechanism!r} a negative threshold fires at the first step from mem=0 "
            "(snnTorch computes the reset from the initial membrane); no IR equivalent"
        )


# ------------------------------------------------------------------ parameters
def _array(t: Any) -> np.ndarray:
    import torch

    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def per_neuron(value: Any, shape: Shape, what: str, where: str) -> np.ndarray:
    """A scalar or per-neuron parameter as a float32 array of the layer ``shape``.

    Mirrors torch broadcasting against the membrane ``(batch, *shape)``: leading axes
    beyond ``shape`` must have size 1. A tensor with axes must already be float32 (a
    float64 one would make snnTorch compute the membrane in float64).
    """
    import torch

    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.dtype != torch.float32:
        raise SltUnsupportedError(
            f"{where}: {what} is a {value.dtype} tensor, which makes the membrane {value.dtype}; convert it to float32"
        )
    a = _array(value).astype(np.float32)
    extra = a.ndim - len(shape)
    if extra > 0:
        if any(d != 1 for d in a.shape[:extra]):
            raise SltUnsupportedError(f"{where}: {what} of shape {a.shape} varies over the batch axis")
        a = a.reshape(a.shape[extra:])
    try:
        out = np.broadcast_to(a, shape)
    except ValueError:
        raise SltUnsupportedError(
            f"{where}: {what} of shape {a.shape} does not broadcast to the layer {shape}"
        ) from None
    if not np.all(np.isfinite(out)):
        raise SltUnsupportedError(f"{where}: {what} contains NaN or inf")
    return np.array(out, dtype=np.float32)


def _with_recurrence(module: Any, lif: LIF, pair: bool, path: str, shape: Shape, where: str) -> NeuronImport:
    import torch.nn as nn

    rec = module.recurrent
    if isinstance(rec, (nn.Linear, nn.Conv2d)):
        return NeuronImport(lif, pair, recurrent_path=f"{path}.recurrent" if path else "recurrent")
    one_to_one = getattr(sys.modules.get("snntorch._neurons.rleaky"), "RecurrentOneToOne", None)
    if one_to_one is not None and type(rec) is one_to_one:
        gain = per_neuron(rec.V, shape, "V", where)
        return NeuronImport(lif, pair, recurrent_gain=gain)
    raise SltUnsupportedError(f"{where}: recurrent module {type(rec).__name__} is not supported")
