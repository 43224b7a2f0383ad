"""``energy(ticket, x, …)``: run the ticket, count its operations, price every variant.

Steps: (1) validate the convention and profile, (2) stream the reference simulator over
``x`` in batches, recording every node of one batch at a time, (3) reduce each batch's exact
counts (:mod:`.stats`), (4) count the ANN baseline: a trained ReLU ANN run on the same
inputs, or the estimate without one (:mod:`.ann`), (5) build the compared variants
(:mod:`.variants`), (6) price them in both views — compute-only and memory-aware — under
the chosen profile and every built-in profile (:mod:`.conventions`), with the break-even
spike rate of each baseline (:mod:`.breakeven`) and the per-sample spread (:mod:`.spread`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SltEnergyError
from ..ir.graph import Ticket
from .ann import ASSUMED_SPARSITY, estimate_ann, measure_ann
from .breakeven import break_evens
from .conventions import Components, Convention, layer_energies, views_for
from .profiles import BUILTIN, Profile, builtin_profile, load_profile
from .report import EnergyReport
from .spread import ann_per_sample, ticket_per_sample
from .stats import collect
from .variants import Variant, build_variants, check_same_architecture, packed_bytes

StageProgress = Callable[[str, int, int], None]


def _totals(variants: list[Variant], profile: Profile, convention: Convention, T: int) -> dict[str, float]:
    return {v.key: sum(c.total(convention.includes) for c in layer_energies(v, profile, convention, T).values())
            for v in variants}


def _graph_order(ticket: Ticket, e: dict[str, Components]) -> dict[str, Components]:
    return {name: e[name] for name in ticket.order if name in e}


def _stage(progress: StageProgress | None, label: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(label, done, total)


def energy(ticket: Ticket, x: np.ndarray, profile: str | Path | Profile = "cmos45-fp32",
           convention: str = "neurobench", dense_model: Ticket | None = None, ann: Any = None, *,
           ann_input: np.ndarray | None = None, ann_sparsity: float | None = None, batch_size: int | None = None,
           progress: StageProgress | None = None) -> EnergyReport:
    """Energy per inference of ``ticket`` on inputs ``x`` against ANN and dense-SNN baselines.

    ``x`` is what :func:`slt_deploy.run` takes; the counts are averaged over its samples and
    their spread is kept. ``profile``: a built-in name (``cmos45-fp32``, ``cmos45-fp16``,
    ``cmos45-int8``, ``cmos45-int32``, ``loihi``), a TOML file, or a :class:`Profile`.
    ``convention``: ``neurobench``, ``spikformer`` or ``memory-aware`` (the primary view;
    the report always shows the compute-only and the memory-aware view side by side).
    ``dense_model``: a ticket with the same layers, all weights kept, whose run gives the dense
    SNN's activity; without it the dense SNN is assumed to have this ticket's activity.
    ``ann``: a trained ReLU ANN of the same architecture (``nn.Module``, state dict, or a
    ``.safetensors``/``.pt`` weights file) run on the same inputs (``ann_input`` for a
    spike-train ticket); without it the ANN's effective ops are estimated with hidden ReLU
    sparsity ``ann_sparsity`` (default 0.5, see :mod:`.ann`). ``batch_size``: samples per
    streamed batch (default: what fits 64 MiB of recorded activity). ``progress(stage, done,
    total)`` is called after every batch.
    """
    if not isinstance(ticket, Ticket):
        raise SltEnergyError(f"energy() needs a Ticket, got {type(ticket).__name__}; load one with slt_deploy.load")
    compute, memory = views_for(convention)
    primary = compute if compute.name == convention else memory
    prof = load_profile(profile)
    if dense_model is not None:
        if not isinstance(dense_model, Ticket):
            raise SltEnergyError(f"dense_model must be a Ticket, got {type(dense_model).__name__}")
        diff = check_same_architecture(ticket, dense_model)
        if diff:
            raise SltEnergyError(f"dense_model does not match the ticket: {diff}")
    if ann is not None and ann_sparsity is not None:
        raise SltEnergyError("ann_sparsity is the assumption of the estimated ANN; with a measured ANN it is measured")
    stats = collect(ticket, x, batch_size, _stage(progress, "ticket"))
    dense = collect(dense_model, x, batch_size, _stage(progress, "dense model")) if dense_model is not None else None
    if ann is not None:
        ann_counts = measure_ann(ticket, ann, x, given_input=ann_input, batch_size=batch_size,
                                 progress=_stage(progress, "ANN"))
    else:
        ann_counts = estimate_ann(ticket, x, ASSUMED_SPARSITY if ann_sparsity is None else ann_sparsity,
                                  given_input=ann_input, batch_size=batch_size)
    packed = packed_bytes(ticket)
    variants = build_variants(ticket, stats, ann_counts, dense, packed)
    T = ticket.timesteps
    views = (compute, memory)
    energies = {c.name: {v.key: _graph_order(ticket, layer_energies(v, prof, c, T)) for v in variants}
                for c in views}
    profiles = [builtin_profile(name) for name in BUILTIN]
    if not any(p.name == prof.name and p.origin == prof.origin for p in profiles):
        profiles.append(prof)

    def label(p: Profile) -> str:
        return p.name if p.origin.startswith("built-in") else f"{p.name} ({p.origin})"

    r0 = stats.spike_rate()
    by_profile = {c.name: {label(p): _totals(variants, p, c, T) for p in profiles} for c in views}
    breakeven = {c.name: {label(p): break_evens(variants, r0, p, c, T) for p in profiles} for c in views}
    per_sample: dict[str, dict[str, np.ndarray]] = {}
    for c in views:
        totals = by_profile[c.name][label(prof)]
        ticket_key = next(v.key for v in variants if v.is_ticket)
        per_sample[c.name] = {"ticket": ticket_per_sample(stats, prof, c, totals[ticket_key]),
                              "ann": ann_per_sample(ann_counts, prof, totals["ann"])}
    info: dict[str, Any] = {
        "name": ticket.metadata.get("name", "ticket"), "timesteps": T, "batch": stats.samples,
        "samples": stats.samples, "encoding": ticket.encoding.kind, "input_shape": list(ticket.input_shape),
        "output_shape": list(ticket.output_shape), "dense_model": dense_model is not None,
        "ann": "measured" if ann_counts.measured else "estimated", "spike_rate": r0,
    }
    return EnergyReport(ticket_info=info, convention=primary, profile=prof, counts=stats, variants=variants,
                        energies=energies, by_profile=by_profile, packed=packed, views=views, breakeven=breakeven,
                        ann=ann_counts, per_sample=per_sample, graph=ticket, profile_label=label(prof))
