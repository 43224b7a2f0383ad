"""Conventions shared by the NIR exporter and importer: the discretisation, keys, bit packing.

The discretisation (forward Euler at step ``dt``, the one snnTorch uses)::

    NIR LIF   tau·dv/dt = (v_leak − v) + r·I    with v_leak = 0, r = tau/dt
    slt LIF   v[t] = β·v[t−1] + I[t]             β = 1 − dt/tau

``β`` is computed from ``tau`` exactly as snnTorch's ``import_from_nir`` does: ``1 − dt/tau``
in the dtype of the file's ``tau`` (numpy), then rounded to float32 (nirtorch loads every
module in float32). A float32 ``tau`` gives ``β = float32(1) − float32(dt) / tau`` (two float32
roundings); a float64 ``tau`` gives ``β = float32(1 − dt/tau)`` computed in float64 (one
rounding at the end). The exporter searches the float32 ``tau`` next to ``dt/(1 − β)`` for one
that gives ``β`` back bit for bit; about one β in five (mostly β < 0.5) has none, and then
the layer is written with float64 ``tau`` (:func:`tau64_for_beta`), which reaches every float32
β in [0, 1). Only β = 1 inside a leaky layer stays unreachable (it needs ``tau = r = inf``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.weights import BinaryWeights, FloatWeights, Int8Weights, Weights, dense_weights

DEFAULT_DT = 1e-4  # seconds; snnTorch's import_from_nir hard-codes this value
DEFAULT_TIMESTEPS = 8  # for graphs without slt metadata (NIR has no notion of T)
TICKET_KEY = "slt.ticket"  # graph metadata: JSON document with the exact IR structure
DIGEST_KEY = "slt.digest"  # graph metadata: sha256 of the whole HDF5 tree but this entry (untrusted.hdf5.tree_digest)
DT_KEY = "dt"  # graph metadata: the time step in seconds
FORMAT = "slt-deploy.nir"
VERSION = 1
GAIN_RTOL = 1e-5  # |r·dt/tau − 1| accepted as unit gain (snnTorch uses np.allclose: rtol 1e-5)
_SEARCH_ULPS = 64


# ------------------------------------------------------------------ time constants
def beta_from_tau(tau: np.ndarray, dt: float) -> np.ndarray:
    """``β = 1 − dt/tau`` in float32 as snnTorch computes it (float64 ``tau``: in float64, rounded once)."""
    tau = np.asarray(tau)
    with np.errstate(all="ignore"):
        if tau.dtype == np.float32:
            return (np.float32(1) - np.float32(dt) / tau).astype(np.float32)
        return (1.0 - dt / tau.astype(np.float64)).astype(np.float32)


def tau_for_beta(beta: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``tau`` with ``beta_from_tau(tau, dt) == beta`` where one exists.

    Returns ``(tau, exact)``: ``exact`` marks the neurons whose β comes back bit for bit;
    for the others ``tau`` is the nearest float32 to ``dt/(1 − β)``. β = 1 gives +inf.
    """
    beta = np.asarray(beta, dtype=np.float32)
    with np.errstate(all="ignore"):
        start = (dt / (1.0 - beta.astype(np.float64))).astype(np.float32)
    start = np.where(beta == 1, np.float32(np.inf), start)
    best = start.copy()
    exact = beta_from_tau(start, dt) == beta
    up = down = start
    for _ in range(_SEARCH_ULPS):
        if exact.all():
            break
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(0))
        for cand in (up, down):
            hit = ~exact & (beta_from_tau(cand, dt) == beta) & np.isfinite(cand) & (cand > 0)
            best = np.where(hit, cand, best)
            exact |= hit
    return best.astype(np.float32), exact


def tau64_for_beta(beta: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``tau`` with ``beta_from_tau(tau, dt) == beta`` (the float64 reading); ``(tau, exact)`` as above.

    ``1 − β`` is exact in float64 for a float32 β, so ``dt/(1 − β)`` comes back within a few
    float64 ulps of β, far inside β's float32 rounding interval; the neighbours are tried too.
    """
    beta = np.asarray(beta, dtype=np.float32)
    with np.errstate(all="ignore"):
        start = dt / (1.0 - beta.astype(np.float64))
    start = np.where(beta == 1, np.inf, start)
    best = start.copy()
    exact = (beta_from_tau(start, dt) == beta) & (beta < 1)
    up = down = start
    for _ in range(_SEARCH_ULPS):
        if exact[beta < 1].all():
            break
        up, down = np.nextafter(up, np.inf), np.nextafter(down, 0.0)
        for cand in (up, down):
            hit = ~exact & (beta < 1) & (beta_from_tau(cand, dt) == beta) & np.isfinite(cand) & (cand > 0)
            best = np.where(hit, cand, best)
            exact |= hit
    return best, exact


def unit_resistance(tau: np.ndarray, dt: float) -> np.ndarray:
    """``r = tau/dt`` (unit input gain ``r·dt/tau``), as snnTorch's exporter writes it; float32 or float64 like tau."""
    tau = np.asarray(tau)
    with np.errstate(all="ignore"):
        if tau.dtype == np.float64:
            return tau / dt
        return (tau.astype(np.float32) / np.float32(dt)).astype(np.float32)


# ------------------------------------------------------------------ bits
def pack_mask(mask: np.ndarray) -> np.ndarray:
    """Mask bits, C order, little-endian within each byte (uint8)."""
    return np.packbits(np.asarray(mask, bool).reshape(-1), bitorder="little")


def unpack_mask(packed: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """Inverse of :func:`pack_mask`; None when the array is not a valid packing for ``shape``."""
    packed = np.asarray(packed)
    n = int(np.prod(shape))
    if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != (n + 7) // 8:
        return None
    bits = np.unpackbits(packed, bitorder="little")
    if bits[n:].any():
        return None
    return bits[:n].reshape(shape).astype(bool)


# ------------------------------------------------------------------ weights
def encode_weights(w: Weights) -> tuple[np.ndarray, dict[str, Any]]:
    """Dense float32 ``mask ⊙ value`` for the NIR node, plus the metadata that makes it exact."""
    with np.errstate(over="ignore"):
        dense = dense_weights(w).astype(np.float32)
    meta: dict[str, Any] = {"slt.encoding": w.kind, "slt.mask": pack_mask(w.mask)}
    if isinstance(w, BinaryWeights):
        meta["slt.alpha"] = w.alpha.copy()  # signs come back from the sign bits of dense (±α is exact)
    elif isinstance(w, Int8Weights):
        meta["slt.scale"] = w.scale.copy()
        if not np.array_equal(_recover_q(dense, w.mask, w.scale), w.q):
            meta["slt.q"] = w.q.copy()  # zero / subnormal / overflowing scales: store the codes
    return dense, meta


def decode_weights(meta: dict[str, Any], dense: np.ndarray) -> tuple[Weights | None, str]:
    """Rebuild the exact weights from ``encode_weights``' metadata; ``(None, reason)`` if inconsistent."""
    kind = meta.get("slt.encoding")
    mask = unpack_mask(meta.get("slt.mask", np.zeros(0, np.uint8)), dense.shape)
    if mask is None:
        return None, "slt.mask is not a bit packing of the weight shape"
    rows = dense.shape[0]
    if kind == "binary":
        alpha = _channel_vector(meta.get("slt.alpha"), rows)
        if alpha is None:
            return None, "slt.alpha must hold one float32 per output channel"
        alpha_neg = np.signbit(alpha).reshape((-1,) + (1,) * (dense.ndim - 1))
        w: Weights = BinaryWeights(mask, np.signbit(dense) ^ alpha_neg, alpha)
    elif kind == "int8":
        scale = _channel_vector(meta.get("slt.scale"), rows)
        if scale is None:
            return None, "slt.scale must hold one float32 per output channel"
        q = meta.get("slt.q")
        if q is None:
            q = _recover_q(dense, mask, scale)
        q = np.asarray(q)
        if q.shape != dense.shape or q.dtype != np.int8:
            return None, "slt.q must be int8 codes of the weight shape"
        w = Int8Weights(mask, q, scale)
    elif kind == "float32":
        w = FloatWeights(mask, dense)
    else:
        return None, f"unknown slt.encoding {kind!r}"
    with np.errstate(over="ignore"):
        again = dense_weights(w)
    if again.tobytes() != dense.astype(np.float32).tobytes():
        return None, "the dense weights disagree with the slt encoding metadata (edited after export?)"
    return w, ""


def _recover_q(dense: np.ndarray, mask: np.ndarray, scale: np.ndarray) -> np.ndarray:
    s = scale.astype(np.float32).reshape((-1,) + (1,) * (dense.ndim - 1))
    with np.errstate(all="ignore"):
        q = np.rint(dense.astype(np.float64) / s.astype(np.float64))
    q = np.where(mask & np.isfinite(q), q, 0)
    return np.clip(q, -128, 127).astype(np.int8)


def _channel_vector(v: Any, rows: int) -> np.ndarray | None:
    a = np.asarray(v) if v is not None else None
    if a is None or a.dtype != np.float32 or a.shape != (rows,) or not np.all(np.isfinite(a)):
        return None
    return a


def as_array(x: Any) -> np.ndarray:
    """A numpy array from a numpy value, a Python number or a CPU torch tensor (snnTorch puts tensors in graphs)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
