"""The energy model: exact operation counts from real runs, priced by cited energy profiles.

    report = energy(ticket, x, profile="cmos45-fp32", convention="neurobench")
    report.effective_ac, report.effective_mac, report.total()   # per inference (pJ)
    report.savings()                                             # E_baseline / E_ticket
    report.to_json(); report.to_markdown(); report.to_html()

Modules: :mod:`.counting` (effective AC/MAC, neuron updates, dense MACs without a run),
:mod:`.stats` (the run streamed in batches, reduced to per-step and per-sample counts),
:mod:`.ann` (the ANN baseline counted as NeuroBench counts it: measured or estimated),
:mod:`.profiles` (TOML energy constants with sources), :mod:`.variants` (ANN, dense SNN,
sparse fp32 / binary tickets), :mod:`.conventions` (spikformer, neurobench, memory-aware),
:mod:`.breakeven` (break-even spike rates), :mod:`.spread` (per-sample energies),
:mod:`.report` / :mod:`.markdown` / :mod:`.html` / :mod:`.figures` (renderings),
:mod:`.command` (``slt energy``).
Every formula is in docs/energy.md.

The package itself is callable, ``slt_deploy.energy(ticket, x, …)`` = :func:`energy`: the
public API names a function ``slt_deploy.energy`` while this package has the same name,
and Python rebinds the package attribute whenever a submodule is first imported.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .ann import AnnCounts, SltAnnError, estimate_ann, measure_ann, twin_path
from .conventions import CONVENTIONS, Components, Convention, get_convention
from .counting import RunCounts, count_run, dense_macs, dense_ops, kept_macs
from .model import energy
from .profiles import BUILTIN, Profile, load_profile
from .report import SCHEMA, EnergyReport
from .stats import RunStats, collect

__all__ = [
    "BUILTIN", "CONVENTIONS", "AnnCounts", "Components", "Convention", "EnergyReport", "Profile", "RunCounts",
    "RunStats", "SCHEMA", "SltAnnError", "collect", "count_run", "dense_macs", "dense_ops", "energy",
    "estimate_ann", "get_convention", "kept_macs", "load_profile", "measure_ann", "twin_path",
]


class _CallableModule(types.ModuleType):
    """This package's module type: calling it calls :func:`energy`."""

    def __call__(self, *args: Any, **kwargs: Any) -> EnergyReport:
        return energy(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
