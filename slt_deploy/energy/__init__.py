"""The energy model: exact operation counts from real runs, priced by cited energy profiles.

    report = energy(ticket, x, profile="cmos45-fp32", convention="neurobench")
    report.effective_ac, report.effective_mac, report.total()   # per inference (pJ)
    report.savings()                                             # E_baseline / E_ticket
    report.to_json(); report.to_markdown(); report.to_html()

Modules: :mod:`.counting` (effective AC/MAC, neuron updates, dense MACs without a run),
:mod:`.profiles` (TOML energy constants with sources), :mod:`.variants` (ANN, dense SNN,
sparse fp32 / binary tickets), :mod:`.conventions` (spikformer, neurobench, memory-aware),
:mod:`.report` / :mod:`.markdown` / :mod:`.html` (renderings), :mod:`.command` (``slt energy``).
Every formula is in docs/energy.md.

The package itself is callable, ``slt_deploy.energy(ticket, x, …)`` = :func:`energy`: the
public API names a function ``slt_deploy.energy`` while this package has the same name,
and Python rebinds the package attribute whenever a submodule is first imported.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .conventions import CONVENTIONS, Components, Convention, get_convention
from .counting import RunCounts, count_run, dense_macs, kept_macs
from .model import energy
from .profiles import BUILTIN, Profile, load_profile
from .report import SCHEMA, EnergyReport

__all__ = [
    "BUILTIN", "CONVENTIONS", "Components", "Convention", "EnergyReport", "Profile", "RunCounts", "SCHEMA",
    "count_run", "dense_macs", "energy", "get_convention", "kept_macs", "load_profile",
]


class _CallableModule(types.ModuleType):
    """This package's module type: calling it calls :func:`energy`."""

    def __call__(self, *args: Any, **kwargs: Any) -> EnergyReport:
        return energy(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
