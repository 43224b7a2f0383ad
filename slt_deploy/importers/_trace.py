"""Tracing one time step of a PyTorch module with ``torch.fx`` (leaf modules, helpers shared by the converter)."""

from __future__ import annotations

import operator
import re
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import SltError, SltImportError, SltUnsupportedError
from . import snntorch as snn_import
from . import spikingjelly as sj_import

_SYNAPSES = (nn.Linear, nn.Conv2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_POOLS = (nn.AvgPool2d, nn.MaxPool2d)
_PASSTHROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_LEAVES = _SYNAPSES + _NORMS + _POOLS + _PASSTHROUGH + (nn.Flatten,)
_ADDS = (operator.add, operator.iadd, torch.add)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def _first_line(exc: BaseException) -> str:
    msg = str(exc)
    if "WeightsUnpickler error:" in msg:  # torch's weights-only preamble hides the actual reason
        msg = msg.split("WeightsUnpickler error:", 1)[1]
    text = msg.strip().splitlines()
    line = next((ln.strip() for ln in text if ln.strip()), "")
    return f"{type(exc).__name__}: {line}"[:300] if line else type(exc).__name__


def _as_numpy(t: Any, what: str) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    try:
        return np.asarray(t)
    except Exception:  # noqa: BLE001
        raise SltImportError(f"{what} cannot be converted to an array") from None


def _f32(t: torch.Tensor, what: str) -> np.ndarray:
    if t.dtype != torch.float32:
        raise SltUnsupportedError(f"{what} is {t.dtype}; the ticket runs float32 (call model.float() first)")
    a = t.detach().cpu().numpy().astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise SltImportError(f"{what} contains NaN or inf")
    return a


def bn_affine(m: nn.Module, path: str, n: int, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """Eval BatchNorm ``m`` as ``y = scale·x + shift`` per channel, in float64.

    ``scale = γ / √(var + ε)``, ``shift = β − mean·scale`` (running statistics).
    """
    mean, var = m.running_mean, m.running_var
    if mean is None or var is None:
        raise SltUnsupportedError(f"BatchNorm '{path}' has no running statistics (track_running_stats=False)")
    if mean.shape != (n,):
        raise SltImportError(f"BatchNorm '{path}' has {mean.shape[0]} features, '{layer}' {n} outputs")
    where = f"BatchNorm '{path}'"
    gamma = _f32(m.weight, where).astype(np.float64) if m.weight is not None else np.ones(n)
    beta = _f32(m.bias, where).astype(np.float64) if m.bias is not None else np.zeros(n)
    mean64, var64 = _f32(mean, where).astype(np.float64), _f32(var, where).astype(np.float64)
    scale = gamma / np.sqrt(var64 + float(np.float32(m.eps)))
    return scale, beta - mean64 * scale


def _declares_neuron(m: nn.Module) -> bool:
    """A neuron module that states its own IR layer (``slt_neuron``; e.g. the search's SpikingLIF)."""
    return callable(getattr(type(m), "slt_neuron", None))


class _Tracer(fx.Tracer):
    """Keeps neurons (stateful, data-dependent code), layers and BatchNorm as leaf calls."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        if isinstance(m, _LEAVES) or snn_import.owns(m) or sj_import.owns(m) or _declares_neuron(m):
            return True
        return super().is_leaf_module(m, qualname)


def _trace(module: nn.Module) -> fx.Graph:
    try:
        return _Tracer().trace(module)
    except SltError:
        raise
    except Exception as exc:  # noqa: BLE001 - tracing failures are user-model problems
        raise SltImportError(
            f"cannot trace {type(module).__name__} with torch.fx ({_first_line(exc)}); give a module whose "
            "forward computes one time step without Python control flow on tensors, e.g. an nn.Sequential"
        ) from None
