"""Training and lottery-ticket search for spiking networks (needs the ``torch`` extra).

    from slt_deploy.search import SearchConfig, run_search
    result = run_search(SearchConfig(method="imp", rounds=9, binary=True), "t.slt")
    result.ticket, result.log["ticket"]["accuracy_reference"]

Methods (docs/search.md): ``imp`` (iterative magnitude pruning with late rewinding, a
fixed fraction per round), ``et`` (Early-Time ticket: search at the smaller T' the KL rule
picks, final ticket at T), ``eb`` (Early-Bird ticket: stop when successive masks stop
moving); ``binary=True`` makes kept weights ``α·sign`` (straight-through estimator), from
the finished full-precision ticket or from scratch. The networks are snnTorch ``Leaky``
layers in an ``nn.Sequential`` (MLP or small conv net, BatchNorm folded at export), so
:func:`slt_deploy.from_torch` imports them exactly.

Importing this package needs numpy only; the names that need torch (``run_search``,
``Trainer``, ``build_model``, ``DigitsTrainer`` …) load it on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import METHODS, SearchConfig, SltSearchError, ladder
from .data import Dataset, digits, from_arrays, load_dataset
from .rules import (
    early_bird_converged,
    global_magnitude_keep,
    ladder_keep_counts,
    mask_distance,
    max_pairwise_distance,
    normalised_kl,
    pick_early_timestep,
)

_LAZY = {
    "run_search": "engine", "SearchResult": "engine",
    "Trainer": "trainer", "binary_value": "trainer", "materialize": "trainer", "prune_masks": "trainer",
    "build_model": "model", "prunable": "model",
    "DigitsTrainer": "digits_trainer", "digits_model": "digits_trainer",
}

__all__ = [
    "METHODS", "Dataset", "SearchConfig", "SltSearchError", "digits", "early_bird_converged", "from_arrays",
    "global_magnitude_keep", "ladder", "ladder_keep_counts", "load_dataset", "mask_distance",
    "max_pairwise_distance", "normalised_kl", "pick_early_timestep", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
