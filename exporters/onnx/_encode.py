"""Compact storage of a layer's code tensor (numpy side; the ONNX decoder is in ``_decode``).

Per layer the smallest of:

- ``dense``: every code, int8 (float32 for float weights);
- ``bitmask``: the keep mask packed 8 per byte (little-endian bit order) + the kept values
  (packed sign bits for binary weights, int8 or float32 otherwise);
- ``index``: the gap before each kept weight, uint8 / uint16 / uint32 with an escape code for
  longer gaps (:func:`escaped_gaps`), + the kept values;

plus ``zero`` (no kept weight: nothing stored) and ``float32`` (dense fp32, the uncompressed
baseline, only when asked for).
"""

from __future__ import annotations

import numpy as np

from ...ir.weights import FloatWeights, Weights


def codes_of(w: Weights) -> np.ndarray:
    """The summed codes: int8 signs / int8 q, or the float32 values themselves."""
    if isinstance(w, FloatWeights):
        return np.asarray(w.values, np.float32)
    return np.asarray(w.integer_values(), np.int8)


def encode(codes: np.ndarray, kind: str, storage: str) -> tuple[str, dict[str, np.ndarray], int]:
    """Compact storage of a code tensor; returns (encoding, tensors, number of kept weights)."""
    flat = codes.reshape(-1)
    keep = flat != 0
    nnz = int(keep.sum())
    if storage == "float32":
        return "float32", {"codes": flat.astype(np.float32)}, nnz
    if nnz == 0:
        return "zero", {}, nnz
    value_dtype = np.float32 if kind == "float32" else np.int8
    dense = {"codes": flat.astype(value_dtype)}
    if kind == "binary":
        kept = {"sign_bits": np.packbits(flat[keep] < 0, bitorder="little")}
    else:
        kept = {"values": flat[keep].astype(value_dtype)}
    bitmask = {"mask_bits": np.packbits(keep, bitorder="little"), **kept}
    gaps = np.diff(np.flatnonzero(keep), prepend=-1) - 1
    index = {"gaps": min((escaped_gaps(gaps, dt) for dt in (np.uint8, np.uint16, np.uint32)),
                         key=lambda a: a.nbytes), **kept}
    options = {"dense": dense, "bitmask": bitmask, "index": index}
    if storage != "auto":
        return storage, options[storage], nnz
    best = min(options, key=lambda k: sum(int(v.nbytes) for v in options[k].values()))
    return best, options[best], nnz


def escaped_gaps(gaps: np.ndarray, dtype: type) -> np.ndarray:
    """Gap code: each kept weight is ``gap`` zeros after the previous one (0 … E−1, E = dtype max).

    A gap ≥ E is written as ``gap // E`` escape entries ``E`` (each skips E positions, no
    weight) followed by ``gap % E``. The decoder advances by ``min(entry + 1, E)`` per entry
    and keeps the positions of the non-escape entries.
    """
    escape = int(np.iinfo(dtype).max)
    gaps = np.asarray(gaps, np.int64)
    n_esc = gaps // escape
    out = np.full(len(gaps) + int(n_esc.sum()), escape, dtype=np.int64)
    real_at = np.arange(len(gaps)) + np.cumsum(n_esc)  # index of each real entry after its escapes
    out[real_at] = gaps - n_esc * escape
    return out.astype(dtype)


__all__ = ["codes_of", "encode", "escaped_gaps"]
