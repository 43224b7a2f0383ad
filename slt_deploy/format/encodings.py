"""Per-layer weight encodings of the .slt format and the smallest-encoding chooser.

A weight tensor of shape ``(rows, ...)`` is viewed as a ``(rows, cols)`` matrix (rows =
output channels, the other axes flattened in C order) and as a flat vector of
``n = rows·cols`` synapses. The *payload* is the value of every kept synapse in row-major
order: binary sign bits packed with :func:`slt_deploy.bits.pack_bits` (1 = negative), int8
codes, or float32 values. Encodings (bit layouts are those of :mod:`slt_deploy.bits`):

=============  ======================================================  =====================
encoding       tensors (role: dtype shape)                             applies to
=============  ======================================================  =====================
dense-signs    signs: uint64 ``(rows, ceil(cols/64))``                 binary, density 1
dense-values   values: int8/float32 ``(n,)``                           int8/float32, density 1
bitmask        mask: uint64 ``(rows, ceil(cols/64))`` + payload        any
rice           index: uint64 ``(ceil(rice_bits/64),)`` + payload       any
=============  ======================================================  =====================

The payload role is ``signs`` (uint64 ``(ceil(nnz/64),)``) for binary weights and
``values`` (int8/float32 ``(nnz,)``) otherwise.

``rice`` codes the positions of kept synapses in the flat vector (Golomb-Rice gaps with
parameter ``rice_k``). Binary and int8 weights add the per-output-channel scale (``alpha``
or ``scale``) as a float32 parameter tensor (see :func:`encode_param`). The writer builds
every applicable candidate and keeps the one with the fewest bytes (ties: table order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import bits
from ..errors import SltFormatError, SltValidationError
from ..ir.weights import BinaryWeights, FloatWeights, Int8Weights, Weights

ENCODINGS = ("dense-signs", "dense-values", "bitmask", "rice")
WEIGHT_KINDS = ("binary", "int8", "float32")
VALUE_DTYPES: dict[str, np.dtype] = {"int8": np.dtype("int8"), "float32": np.dtype("<f4")}
SCALE_FIELD = {"binary": "alpha", "int8": "scale"}

# A tensor source: (node, key, role, dtype, shape) -> the array stored under ``key``,
# checked to have exactly that dtype and shape (see container.TensorTable).
TakeTensor = Callable[[str, str, str, np.dtype, tuple[int, ...]], np.ndarray]


@dataclass
class EncodedWeights:
    """One encoded weight tensor: its JSON description and the tensors it references."""

    meta: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.tensors.values()))


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, cols)`` of a weight shape: output channels by everything else."""
    rows = int(shape[0]) if shape else 0
    cols = 1
    for s in shape[1:]:
        cols *= int(s)
    return rows, cols


# ------------------------------------------------------------------ parameters
def encode_param(key: str, a: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A float32 array as ``{"tensor": key, "broadcast": b}``; b means one stored value.

    ``broadcast`` is used only when every element has the same bit pattern, so the
    expansion on reading is lossless (``-0.0`` and ``+0.0`` differ).
    """
    flat = np.ascontiguousarray(a, dtype=np.dtype("<f4")).reshape(-1)
    as_bits = flat.view(np.uint32)
    broadcast = bool(flat.size > 1 and np.all(as_bits == as_bits[0]))
    stored = flat[:1].copy() if broadcast else flat.copy()
    return {"tensor": key, "broadcast": broadcast}, {key: stored}


def decode_param(node: str, ref: dict[str, Any], shape: tuple[int, ...], take: TakeTensor, role: str) -> np.ndarray:
    """Inverse of :func:`encode_param`: a float32 array of ``shape`` (a read-only broadcast view)."""
    size = 1
    for s in shape:
        size *= s
    stored_shape = (1,) if ref["broadcast"] else (size,)
    t = take(node, ref["tensor"], role, VALUE_DTYPES["float32"], stored_shape)
    t = t.astype(np.float32, copy=False)
    return np.broadcast_to(t.reshape(()), shape) if ref["broadcast"] else t.reshape(shape)


# ------------------------------------------------------------------ weights: writing
def _flat_values(w: Weights) -> np.ndarray:
    if isinstance(w, FloatWeights):
        return w.values.reshape(-1)
    if isinstance(w, Int8Weights):
        return w.q.reshape(-1)
    return w.negative.reshape(-1)


def payload_role(kind: str) -> str:
    """JSON role of the kept values: ``signs`` for binary weights, ``values`` otherwise."""
    return "signs" if kind == "binary" else "values"


def tensor_roles(kind: str, encoding: str) -> tuple[str, ...]:
    """The roles (keys of the JSON ``tensors`` object) an encoding of this weight kind uses."""
    if encoding == "dense-signs":
        return ("signs",)
    if encoding == "dense-values":
        return ("values",)
    return ("mask" if encoding == "bitmask" else "index", payload_role(kind))


def encoding_allowed(kind: str, encoding: str) -> bool:
    """dense-signs is for binary weights only, dense-values for int8/float32 only."""
    if encoding == "dense-signs":
        return kind == "binary"
    if encoding == "dense-values":
        return kind != "binary"
    return encoding in ENCODINGS


def _payload(w: Weights, keep: np.ndarray | slice) -> np.ndarray:
    """Kept values in row-major order: packed sign bits, int8 codes or float32 values."""
    kept = _flat_values(w)[keep]
    if isinstance(w, BinaryWeights):
        return bits.pack_bits(kept)
    return np.ascontiguousarray(kept, dtype=VALUE_DTYPES[w.kind])


def best_rice_k(gaps: np.ndarray) -> int:
    """The Rice parameter giving the shortest stream for these gaps (exact, not estimated)."""
    if gaps.size == 0:
        return 0
    best_k, best_bits = 0, None
    for k in range(min(bits.MAX_RICE_K, int(gaps.max()).bit_length()) + 1):
        n_bits = int((gaps >> k).sum()) + gaps.size * (k + 1)
        if best_bits is None or n_bits < best_bits:
            best_k, best_bits = k, n_bits
    return best_k


def candidates(name: str, w: Weights) -> list[EncodedWeights]:
    """Every applicable encoding of ``w``, in :data:`ENCODINGS` order."""
    rows, cols = matrix_shape(w.mask.shape)
    flat_mask = w.mask.reshape(-1)
    nnz = int(np.count_nonzero(flat_mask))
    n = rows * cols
    base: dict[str, Any] = {"kind": w.kind, "shape": [int(s) for s in w.mask.shape], "nnz": nnz}
    scale_tensors: dict[str, np.ndarray] = {}
    if w.kind in SCALE_FIELD:
        field_name = SCALE_FIELD[w.kind]
        base["scale"], scale_tensors = encode_param(f"{name}.{field_name}", getattr(w, field_name))
    else:
        base["scale"] = None
    role = payload_role(w.kind)
    out: list[EncodedWeights] = []

    def add(encoding: str, tensors: dict[str, np.ndarray], **extra: Any) -> None:
        """``tensors`` maps role -> array; keys in the file are ``<node>.<role>``."""
        roles = {r: f"{name}.{r}" for r in tensors}
        meta = {**base, "encoding": encoding, "tensors": roles, **extra}
        arrays = {f"{name}.{r}": a for r, a in tensors.items()}
        out.append(EncodedWeights(meta, {**arrays, **scale_tensors}))

    if nnz == n and w.kind == "binary":
        add("dense-signs", {"signs": bits.pack_rows(w.negative.reshape(rows, cols))})
    if nnz == n and w.kind != "binary":
        add("dense-values", {"values": _payload(w, slice(None))})
    payload = _payload(w, flat_mask)
    add("bitmask", {"mask": bits.pack_rows(w.mask.reshape(rows, cols)), role: payload})
    positions = np.flatnonzero(flat_mask)
    k = best_rice_k(np.diff(positions, prepend=-1) - 1)
    words, n_bits = bits.rice_encode_positions(positions, k)
    add("rice", {"index": words, role: payload}, rice_k=k, rice_bits=int(n_bits))
    return out


def encode_weights(name: str, w: Weights) -> EncodedWeights:
    """The smallest encoding of ``w`` by exact byte count (ties: :data:`ENCODINGS` order)."""
    return min(candidates(name, w), key=lambda c: c.nbytes)


# ------------------------------------------------------------------ weights: reading
def _bad(node: str, msg: str) -> SltFormatError:
    return SltFormatError(f"node '{node}': {msg}")


def _read_payload(node: str, meta: dict[str, Any], take: TakeTensor) -> np.ndarray:
    """Kept values (bool signs, int8 or float32) of a layer with ``nnz`` kept synapses."""
    nnz, kind = meta["nnz"], meta["kind"]
    key = meta["tensors"][payload_role(kind)]
    if kind == "binary":
        words = take(node, key, "signs", bits.WORD_DTYPE, (bits.words_per_row(nnz),))
        try:
            return bits.unpack_bits(words, nnz, strict=True)
        except ValueError as exc:
            raise _bad(node, f"sign bits of tensor '{key}': {exc}") from None
    return take(node, key, "values", VALUE_DTYPES[kind], (nnz,))


def _read_mask(node: str, meta: dict[str, Any], take: TakeTensor) -> np.ndarray:
    """The flat boolean keep-mask of a ``bitmask`` or ``rice`` layer."""
    rows, cols = matrix_shape(tuple(meta["shape"]))
    n, nnz, roles = rows * cols, meta["nnz"], meta["tensors"]
    if meta["encoding"] == "bitmask":
        words = take(node, roles["mask"], "mask", bits.WORD_DTYPE, (rows, bits.words_per_row(cols)))
        try:
            mask = bits.unpack_rows(words, cols, strict=True).reshape(-1)
        except ValueError as exc:
            raise _bad(node, f"mask tensor '{roles['mask']}': {exc}") from None
        if int(np.count_nonzero(mask)) != nnz:
            raise _bad(node, f"mask has {int(np.count_nonzero(mask))} kept synapses, the graph says {nnz}")
        return mask
    n_bits, k = meta["rice_bits"], meta["rice_k"]
    words = take(node, roles["index"], "index", bits.WORD_DTYPE, (bits.words_per_row(n_bits),))
    try:
        positions = bits.rice_decode_positions(words, n_bits, nnz, k, n)
    except ValueError as exc:
        raise _bad(node, f"index stream '{roles['index']}': {exc}") from None
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    return mask


def decode_weights(node: str, meta: dict[str, Any], take: TakeTensor) -> Weights:
    """Rebuild the IR weights of ``node`` from its (already schema-checked) JSON ``meta``."""
    shape = tuple(meta["shape"])
    rows, cols = matrix_shape(shape)
    n, nnz, kind, encoding = rows * cols, meta["nnz"], meta["kind"], meta["encoding"]
    roles = meta["tensors"]
    if encoding in ("dense-signs", "dense-values"):
        if nnz != n:
            raise _bad(node, f"encoding '{encoding}' needs every synapse kept, the graph says {nnz} of {n}")
        mask = np.ones(n, dtype=bool)
        if encoding == "dense-signs":
            words = take(node, roles["signs"], "signs", bits.WORD_DTYPE, (rows, bits.words_per_row(cols)))
            try:
                kept = bits.unpack_rows(words, cols, strict=True).reshape(-1)
            except ValueError as exc:
                raise _bad(node, f"sign tensor '{roles['signs']}': {exc}") from None
        else:
            kept = take(node, roles["values"], "values", VALUE_DTYPES[kind], (n,))
    else:
        mask = _read_mask(node, meta, take)
        kept = _read_payload(node, meta, take)
    full = np.zeros(n, dtype=bool if kind == "binary" else VALUE_DTYPES[kind])
    full[mask] = kept
    mask, full = mask.reshape(shape), full.reshape(shape)
    scale = None if kind == "float32" else decode_param(node, meta["scale"], (rows,), take, SCALE_FIELD[kind])
    try:
        if kind == "float32":
            return FloatWeights(mask, full.astype(np.float32, copy=False))
        if kind == "binary":
            return BinaryWeights(mask, full, scale)
        return Int8Weights(mask, full, scale)
    except SltValidationError as exc:  # e.g. NaN values: name the node
        raise _bad(node, str(exc)) from None
