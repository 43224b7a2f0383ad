"""``energy(ticket, x, …)``: run the ticket, count its operations, price every variant.

Steps: (1) validate the convention and profile, (2) run the reference simulator on ``x``
recording every node, (3) count effective operations, neuron updates and memory traffic
exactly (:mod:`.counting`), (4) build the compared variants (:mod:`.variants`), (5) price
them under the chosen profile and convention, and under every built-in profile for the
per-profile table (:mod:`.conventions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SltEnergyError
from ..ir.graph import Ticket
from ..reference import simulate
from .conventions import Components, Convention, get_convention, layer_energies
from .counting import RunCounts, count_run
from .profiles import BUILTIN, Profile, builtin_profile, load_profile
from .report import EnergyReport
from .variants import Variant, build_variants, check_same_architecture, packed_bytes


def _run_counts(ticket: Ticket, x: np.ndarray) -> RunCounts:
    return count_run(ticket, simulate(ticket, x, record=True))


def _totals(variants: list[Variant], profile: Profile, convention: Convention, T: int) -> dict[str, float]:
    return {v.key: sum(c.total(convention.includes) for c in layer_energies(v, profile, convention, T).values())
            for v in variants}


def _graph_order(ticket: Ticket, e: dict[str, Components]) -> dict[str, Components]:
    return {name: e[name] for name in ticket.order if name in e}


def energy(ticket: Ticket, x: np.ndarray, profile: str | Path | Profile = "cmos45-fp32",
           convention: str = "neurobench", dense_model: Ticket | None = None) -> EnergyReport:
    """Energy per inference of ``ticket`` on inputs ``x`` against ANN and dense-SNN baselines.

    ``x`` is what :func:`slt_deploy.run` takes; the counts are averaged over its batch.
    ``profile``: a built-in name (``cmos45-fp32``, ``cmos45-fp16``, ``cmos45-int8``,
    ``cmos45-int32``, ``loihi``), a TOML file, or a :class:`Profile`. ``convention``:
    ``neurobench``, ``spikformer`` or ``memory-aware``. ``dense_model``: a ticket with the
    same layers, all weights kept, whose run gives the dense SNN's activity; without it the
    dense SNN is assumed to have this ticket's activity (and is labelled so).
    """
    if not isinstance(ticket, Ticket):
        raise SltEnergyError(f"energy() needs a Ticket, got {type(ticket).__name__}; load one with slt_deploy.load")
    conv = get_convention(convention)
    prof = load_profile(profile)
    if dense_model is not None:
        if not isinstance(dense_model, Ticket):
            raise SltEnergyError(f"dense_model must be a Ticket, got {type(dense_model).__name__}")
        diff = check_same_architecture(ticket, dense_model)
        if diff:
            raise SltEnergyError(f"dense_model does not match the ticket: {diff}")
    counts = _run_counts(ticket, x)
    dense = _run_counts(dense_model, x) if dense_model is not None else None
    packed = packed_bytes(ticket)
    variants = build_variants(ticket, counts, dense, packed)
    T = ticket.timesteps
    energies = {v.key: _graph_order(ticket, layer_energies(v, prof, conv, T)) for v in variants}
    profiles = [builtin_profile(name) for name in BUILTIN]
    if not any(p.name == prof.name and p.origin == prof.origin for p in profiles):
        profiles.append(prof)
    by_profile = {p.name if p.origin.startswith("built-in") else f"{p.name} ({p.origin})": _totals(variants, p, conv, T)
                  for p in profiles}
    info: dict[str, Any] = {
        "name": ticket.metadata.get("name", "ticket"), "timesteps": T, "batch": counts.batch,
        "encoding": ticket.encoding.kind, "input_shape": list(ticket.input_shape),
        "output_shape": list(ticket.output_shape), "dense_model": dense_model is not None,
    }
    return EnergyReport(ticket_info=info, convention=conv, profile=prof, counts=counts, variants=variants,
                        energies=energies, by_profile=by_profile, packed=packed)
