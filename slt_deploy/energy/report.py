"""The energy report: counts, per-layer energies, baselines and savings, in four renderings.

Savings are ratios of per-inference energies under one profile and convention::

    saving vs baseline B = E_B / E_ticket          (> 1: the ticket uses less energy)

Renderings: :meth:`EnergyReport.to_dict` / :meth:`to_json` (schema ``slt-energy/1``),
:meth:`to_markdown` (tables for papers), :meth:`print` (rich terminal tables) and
:meth:`to_html` (self-contained page with inline SVG plots, see :mod:`.html`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .conventions import COMPONENTS, Components, Convention
from .counting import RunCounts
from .profiles import Profile
from .variants import Variant

SCHEMA = "slt-energy/1"
_UNITS = ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))


def fmt_energy(pj: float) -> str:
    """``1234.5`` -> ``'1.23 nJ'`` (input in picojoules)."""
    for scale, unit in _UNITS:
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def fmt_count(n: float) -> str:
    """Integers with thousands separators, other values with three significant digits."""
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"


@dataclass(frozen=True)
class Saving:
    """``E_baseline / E_ticket`` with the numbers that went into it."""

    baseline: str
    label: str
    ratio: float | None
    formula: str


@dataclass(frozen=True)
class LayerRow:
    """One row of the per-layer tables: a synapse or neuron layer of the ticket, per inference."""

    name: str
    kind: str
    weights: str
    ac: float | None
    mac: float | None
    rate: str
    energy: Components


@dataclass
class EnergyReport:
    """Result of :func:`slt_deploy.energy.energy`; every energy is in pJ per inference."""

    ticket_info: dict[str, Any]
    convention: Convention
    profile: Profile
    counts: RunCounts
    variants: list[Variant]
    energies: dict[str, dict[str, Components]]
    by_profile: dict[str, dict[str, float]]
    packed: dict[str, tuple[int, str]]
    schema: str = SCHEMA

    # ------------------------------------------------------------------ numbers
    @property
    def ticket(self) -> Variant:
        return next(v for v in self.variants if v.is_ticket)

    def variant(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)

    def breakdown(self, key: str) -> Components:
        """Summed components of one variant (every component, included or not)."""
        total = Components()
        for c in self.energies[key].values():
            total = total + c
        return total

    def total(self, key: str | None = None) -> float:
        """Energy per inference (pJ) of a variant (default: the ticket) under the convention."""
        return self.breakdown(key or self.ticket.key).total(self.convention.includes)

    @property
    def effective_ac(self) -> float:
        """Effective accumulates per inference of the ticket."""
        return self.ticket.ac

    @property
    def effective_mac(self) -> float:
        """Effective multiply-accumulates per inference of the ticket."""
        return self.ticket.mac

    def layer_rows(self) -> list[LayerRow]:
        """The ticket's synapse and neuron layers in graph order (the order of ``energies``)."""
        e = self.energies[self.ticket.key]
        works = {w.name: w for w in self.ticket.layers}
        syn = {s.name: s for s in self.counts.synapses}
        neu = {n.name: n for n in self.counts.neurons}
        rows = []
        for name, comp in e.items():
            if name in syn:
                s, w = syn[name], works[name]
                nbytes, encoding = self.packed[name]
                rows.append(LayerRow(name, s.kind, f"{s.weight_kind} / {encoding}, {nbytes:,} B", w.ac, w.mac,
                                     f"{w.input_rate:.3f} in", comp))
            else:
                n = neu[name]
                rows.append(LayerRow(name, n.kind, f"{n.neurons:,} neurons", None, None,
                                     f"{float(n.spike_rate().mean()):.3f} out", comp))
        return rows

    def savings(self) -> list[Saving]:
        """``E_B / E_ticket`` for every other variant B."""
        mine = self.total()
        out = []
        for v in self.variants:
            if v.is_ticket:
                continue
            e = self.total(v.key)
            ratio = e / mine if mine > 0 else None
            shown = f"{ratio:.2f}x" if ratio is not None else "undefined (ticket energy is 0)"
            out.append(Saving(v.key, v.label, ratio, f"E[{v.key}] / E[ticket] = {fmt_energy(e)} / {fmt_energy(mine)} "
                                                    f"= {shown}"))
        return out

    # ------------------------------------------------------------------ renderings
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, schema ``slt-energy/1`` (docs/energy.md lists every key)."""
        c, b = self.counts, self.counts.batch
        inc = self.convention.includes
        ticket_e = self.energies[self.ticket.key]
        layers = []
        for s in c.synapses:
            nbytes, encoding = self.packed[s.name]
            e = ticket_e[s.name]
            layers.append({
                "name": s.name, "kind": s.kind, "source": s.source, "weight_kind": s.weight_kind,
                "encoding": encoding, "weight_bytes": nbytes, "synapses": s.synapses, "kept": s.kept,
                "density": s.kept / s.synapses if s.synapses else 0.0, "dense_macs": s.dense_macs,
                "kept_macs": s.kept_macs, "first_layer": s.first,
                "effective_ac": s.ac / b, "effective_mac": s.mac / b,
                "dense_effective_ops": float(s.dense_effective.sum()) / b,
                "per_step": {
                    "effective_ac": (np.where(s.binary, s.effective, 0).sum(axis=1) / b).tolist(),
                    "effective_mac": (np.where(s.binary, 0, s.effective).sum(axis=1) / b).tolist(),
                    "input_rate": s.input_rate().tolist(),
                    "binary_fraction": s.binary.mean(axis=1).tolist(),
                },
                "energy_pj": _components(e, inc),
            })
        neurons = [{
            "name": n.name, "kind": n.kind, "neurons": n.neurons, "updates": n.neurons * c.timesteps,
            "active_updates": float(n.active.sum()) / b, "spikes": float(n.spikes.sum()) / b,
            "per_step": {"spike_rate": n.spike_rate().tolist()},
            "energy_pj": _components(ticket_e[n.name], inc),
        } for n in c.neurons]
        t = self.ticket
        return {
            "schema": self.schema,
            "ticket": self.ticket_info,
            "convention": {"name": self.convention.name, "formula": self.convention.formula,
                           "includes": list(inc), "leaves_out": self.convention.leaves_out},
            "profile": self.profile.to_dict(),
            "per_inference": {
                "effective_ac": t.ac, "effective_mac": t.mac, "effective_ops": t.ac + t.mac,
                "dense_macs": sum(s.dense_macs for s in c.synapses),
                "neuron_updates": sum(n.neurons for n in c.neurons) * c.timesteps,
                "active_neuron_updates": sum(n.active for n in t.neurons),
                "spikes": sum(n.spikes for n in t.neurons),
                "weight_bytes_read": t.weight_bytes * t.passes,
                "membrane_accesses": 2 * sum(n.neurons for n in c.neurons) * c.timesteps,
                "energy_pj": self.total(),
            },
            "layers": layers,
            "neurons": neurons,
            "variants": [{
                "key": v.key, "label": v.label, "activity": v.activity, "passes": v.passes, "is_ticket": v.is_ticket,
                "effective_ac": v.ac, "effective_mac": v.mac, "weight_bytes": v.weight_bytes,
                "energy_pj": _components(self.breakdown(v.key), inc),
            } for v in self.variants],
            "savings": [{"baseline": s.baseline, "label": s.label, "ratio": s.ratio, "formula": s.formula}
                        for s in self.savings()],
            "by_profile": self.by_profile,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_markdown(self) -> str:
        """Markdown tables for a paper or a design review."""
        from .markdown import render_markdown

        return render_markdown(self)

    def print(self, console: Any = None) -> None:
        """Rich tables on ``console`` (default: a new stdout console); see :mod:`.terminal`."""
        from .terminal import print_report

        print_report(self, console)

    def to_html(self) -> str:
        """A self-contained HTML page (plots inline; needs matplotlib for the plots)."""
        from .html import render_html

        return render_html(self)


def _components(c: Components, includes: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(c, k) for k in COMPONENTS}
    out["total"] = c.total(includes)
    return out
