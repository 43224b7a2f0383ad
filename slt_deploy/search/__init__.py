"""Training and lottery-ticket search for spiking networks (needs the ``torch`` extra).

    from slt_deploy.search import SearchConfig, run_search
    result = run_search(SearchConfig(method="imp", rounds=9, binary=True), "t.slt")
    result.ticket, result.log["ticket"]["accuracy_reference"]

Methods (docs/search.md): ``imp`` (iterative magnitude pruning with late rewinding, a
fixed fraction per round), ``et`` (Early-Time ticket: search at the smaller T' the KL rule
picks, final ticket at T), ``eb`` (Early-Bird ticket: stop when successive masks stop
moving); ``binary=True`` makes kept weights ``α·sign`` (straight-through estimator), from
the finished full-precision ticket or from scratch. New methods plug into the same engine
(:mod:`.methods.base`, :func:`register_method`). The networks are snnTorch ``Leaky``
layers in an ``nn.Sequential`` (MLP or small conv net) or the ECCV 2022 VGG16/ResNet19
with SpikingJelly-style LIF neurons; BatchNorm is folded at export, and
:func:`slt_deploy.from_torch` imports them exactly.

Data parallel: started by ``torchrun --nproc-per-node N -m slt_deploy search ...`` the
search runs on N processes (``gloo`` on CPU, ``nccl`` on CUDA); see :mod:`.engine`.

Importing this package needs numpy only; the names that need torch (``run_search``,
``Trainer``, ``build_model``, ``DigitsTrainer`` …) load it on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import METHODS, SearchConfig, SltSearchError, ladder
from .data import Dataset, digits, from_arrays, image_folder, load_dataset
from .methods import method_names, register_method
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
    "Trainer": "trainer", "binary_value": "weights", "materialize": "weights", "prune_masks": "weights",
    "build_model": "model", "prunable": "model",
    "DigitsTrainer": "digits_trainer", "digits_model": "digits_trainer",
    "World": "distributed", "SearchMethod": "methods.base", "SpikingLIF": "neurons",
}

__all__ = [
    "METHODS", "Dataset", "SearchConfig", "SltSearchError", "digits", "early_bird_converged", "from_arrays",
    "global_magnitude_keep", "image_folder", "ladder", "ladder_keep_counts", "load_dataset", "mask_distance",
    "max_pairwise_distance", "method_names", "normalised_kl", "pick_early_timestep", "register_method", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
