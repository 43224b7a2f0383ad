"""Shared field readers of the NIR importers (slt-written and foreign graphs): every problem is a
one-line :class:`_Fail`, which ``import_graph`` turns into :class:`~slt_deploy.errors.SltImportError`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ir.graph import MAX_TIMESTEPS
from ...ir.nodes import AvgPool2d, Node, Shape, SumPool2d
from ._common import (
    DEFAULT_DT,
    DT_KEY,
    as_array,
)


class _Fail(Exception):
    """Internal: a one-line problem; ``import_graph`` prefixes the source and raises SltImportError."""


def _dt(dt: Any, meta: dict[str, Any]) -> float:
    if dt is None:
        if DT_KEY not in meta:
            return DEFAULT_DT
        dt, label = meta[DT_KEY], f"graph metadata '{DT_KEY}'"
    else:
        label = "dt"
    a = as_array(dt)
    if a.shape != () or a.dtype.kind not in "iuf" or not math.isfinite(float(a)) or float(a) <= 0:
        raise _Fail(f"{label} must be a positive, finite number of seconds, got {dt!r}")
    return float(a)


def _timesteps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_TIMESTEPS:
        raise _Fail(f"timesteps must be an integer in [1, {MAX_TIMESTEPS}], got {value!r}")
    return int(value)


def _type(node: Any) -> str:
    return type(node).__name__


def _numeric(x: Any, node: str, field: str) -> np.ndarray:
    try:
        a = as_array(x)
    except Exception:  # noqa: BLE001
        raise _Fail(f"node '{node}': field '{field}' is not an array") from None
    if a.dtype.kind not in "biuf":
        raise _Fail(f"node '{node}': field '{field}' is not numeric ({a.dtype})")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise _Fail(f"node '{node}': field '{field}' contains NaN")
    return a


def _float32(x: Any, node: str, field: str, finite: bool = True) -> np.ndarray:
    """float32 values of a field; values float32 cannot hold exactly are refused, not rounded."""
    a = _numeric(x, node, field)
    if finite and not np.all(np.isfinite(a)):
        raise _Fail(f"node '{node}': field '{field}' contains inf")
    out = a.astype(np.float32)
    with np.errstate(all="ignore"):
        same = np.array_equal(out.astype(np.float64), a.astype(np.float64))
    if not same:
        raise _Fail(
            f"node '{node}': field '{field}' ({a.dtype}) has values float32 cannot hold exactly; "
            "slt tickets are float32, convert the file's arrays to float32 first"
        )
    return out


def _broadcast(a: np.ndarray, shape: Shape, node: str, field: str) -> np.ndarray:
    try:
        return np.array(np.broadcast_to(a, shape))
    except ValueError:
        raise _Fail(f"node '{node}': field '{field}' has shape {a.shape}, the layer has shape {shape}") from None


def _ints(x: Any, node: str, field: str, n: int | None = None) -> tuple[int, ...]:
    a = _numeric(x, node, field)
    if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))):
        raise _Fail(f"node '{node}': field '{field}' must hold integers, got {a.tolist()!r}")
    flat = tuple(int(v) for v in a.reshape(-1))
    if n is not None and a.ndim == 0:
        flat = flat * n
    if n is not None and len(flat) != n:
        raise _Fail(f"node '{node}': field '{field}' must be one integer or {n}, got {a.tolist()!r}")
    return flat


def _shape(x: Any, node: str, field: str) -> Shape:
    if x is None:
        raise _Fail(f"node '{node}': {field} is not given")
    s = _ints(x, node, field)
    if as_array(x).ndim != 1 or not s or min(s) < 1:
        raise _Fail(f"node '{node}': {field} must be a list of positive sizes, got {as_array(x).tolist()!r}")
    return s


def _port(types: Any, key: str) -> Any:
    return types.get(key) if isinstance(types, dict) else None


def _pool(name: str, kind: str, n: Any) -> Node:
    cls = SumPool2d if kind == "sumpool2d" else AvgPool2d
    return cls(name, kernel_size=_ints(n.kernel_size, name, "kernel_size", 2),
               stride=_ints(n.stride, name, "stride", 2), padding=_ints(n.padding, name, "padding", 2))
