"""The decision rules of the ticket-search methods, as plain functions (numpy only).

They are kept apart from training so that each rule can be checked on hand-made numbers:

- :func:`ladder_keep_counts`: how many weights IMP keeps after each round;
- :func:`pick_early_timestep`: the Early-Time rule (normalised KL below a threshold);
- :func:`mask_distance` / :func:`early_bird_converged`: the Early-Bird stopping rule;
- :func:`global_magnitude_keep`: which weights global magnitude pruning keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np


def ladder_keep_counts(total: int, rounds: int, fraction: float) -> list[int]:
    """Weights kept after round 0, 1, …, ``rounds`` when each round prunes ``fraction`` of the rest.

    Round r keeps ``round(total · (1 − fraction)^r)``, so the sparsity after r rounds is the
    ladder ``1 − (1 − f)^r`` to within half a weight (no drift from rounding each round).
    """
    return [int(round(total * (1.0 - fraction) ** r)) for r in range(rounds + 1)]


def pick_early_timestep(kl: Sequence[float], threshold: float = 0.6) -> int:
    """The Early-Time rule: ``kl[i]`` is KL(p_T ‖ p_{T'}) for ``T' = i + 1`` (``T' = 1 … T − 1``).

    The values are normalised by the largest; the answer is the smallest ``T'`` whose
    normalised KL is below ``threshold``. When none is (or there is no ``T' < T``) the
    answer is ``T = len(kl) + 1``; when every KL is 0 it is 1.
    """
    values = np.asarray(kl, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("kl must be a 1-D sequence of finite non-negative values")
    if values.size == 0:
        return 1
    largest = float(values.max())
    if largest <= 0.0:
        return 1
    below = np.flatnonzero(values / largest < threshold)
    return int(below[0]) + 1 if below.size else values.size + 1


def normalised_kl(kl: Sequence[float]) -> list[float]:
    """``kl / max(kl)`` (zeros stay zeros)."""
    values = np.asarray(kl, dtype=np.float64)
    largest = float(values.max()) if values.size else 0.0
    return (values / largest).tolist() if largest > 0 else [0.0] * values.size


def _flat(mask: Any) -> np.ndarray:
    if isinstance(mask, Mapping):
        parts = [np.asarray(_to_numpy(mask[k]), dtype=bool).reshape(-1) for k in sorted(mask)]
        return np.concatenate(parts) if parts else np.zeros(0, bool)
    return np.asarray(_to_numpy(mask), dtype=bool).reshape(-1)


def _to_numpy(a: Any) -> Any:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else a


def mask_distance(a: Any, b: Any) -> float:
    """Normalised Hamming distance: the fraction of entries where two masks differ.

    A mask is an array, or a mapping of weight name to array (all tensors concatenated).
    """
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        raise ValueError(f"masks have {fa.size} and {fb.size} entries")
    return float(np.count_nonzero(fa != fb)) / fa.size if fa.size else 0.0


def max_pairwise_distance(masks: Sequence[Any]) -> float:
    """The largest :func:`mask_distance` among every pair of ``masks`` (0 for fewer than 2)."""
    flat = [_flat(m) for m in masks]
    return max((mask_distance(a, b) for a, b in combinations(flat, 2)), default=0.0)


def early_bird_converged(history: Sequence[Any], window: int = 5, threshold: float = 0.02) -> bool:
    """The Early-Bird stop: the last ``window`` masks exist and all pairwise distances are below ``threshold``."""
    if len(history) < window:
        return False
    return max_pairwise_distance(history[-window:]) < threshold


def global_magnitude_keep(magnitudes: Mapping[str, np.ndarray], keep: int,
                          masks: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Keep the ``keep`` largest magnitudes over all tensors together (only among entries
    ``masks`` still keeps). Ties break by position (tensors in the mapping's order, then
    row-major), so exactly ``keep`` entries survive."""
    names = list(magnitudes)
    flat = [np.asarray(magnitudes[n], dtype=np.float64).reshape(-1) for n in names]
    alive = [np.ones(f.size, bool) if masks is None else np.asarray(masks[n], bool).reshape(-1)
             for n, f in zip(names, flat, strict=True)]
    scores = np.concatenate(flat) if flat else np.zeros(0)
    ok = np.concatenate(alive) if alive else np.zeros(0, bool)
    candidates = np.flatnonzero(ok)
    keep = max(0, min(int(keep), candidates.size))
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    kept = np.zeros(scores.size, bool)
    kept[order[:keep]] = True
    out: dict[str, np.ndarray] = {}
    start = 0
    for n, f in zip(names, flat, strict=True):
        out[n] = kept[start:start + f.size].reshape(np.shape(magnitudes[n]))
        start += f.size
    return out
