"""The energy report: counts, per-layer energies, baselines, savings in two views, break-even
spike rates and per-sample spread, in five renderings.

Savings are ratios of per-inference energies under one profile and convention::

    saving vs baseline B = E_B / E_ticket     (> 1: "saves 2.44x";  < 1: "costs 1.32x more" = E_ticket / E_B)

The *headline* saving is the one against the effective ANN (measured, or estimated with
its stated assumption), in each view. Renderings: :meth:`EnergyReport.to_dict` /
:meth:`to_json` (schema ``slt-energy/2``), :meth:`to_markdown` (tables for papers),
:meth:`print` (rich terminal tables), :meth:`to_html` (self-contained page with inline SVG
figures, see :mod:`.html`) and :meth:`save_figures` (each figure alone as SVG and PDF, see
:mod:`.figures`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.graph import Ticket
from ..ir.nodes import Input, Output
from .ann import AnnCounts
from .breakeven import BreakEven
from .conventions import COMPONENTS, Components, Convention
from .fmt import fmt_count, fmt_energy, fmt_ratio, layer_label
from .profiles import Profile
from .spread import series, summary, ticket_ops
from .stats import RunStats
from .variants import Variant

SCHEMA = "slt-energy/2"
@dataclass(frozen=True)
class Saving:
    """``E_baseline / E_ticket`` with the numbers that went into it."""

    baseline: str
    label: str
    ratio: float | None
    formula: str
    convention: str = ""

    @property
    def words(self) -> str:
        return fmt_ratio(self.ratio)


@dataclass(frozen=True)
class LayerRow:
    """One row of the per-layer tables: a node of the ticket (zero-op rows for pools, Flatten, Add)."""

    name: str
    label: str
    kind: str
    weights: str
    ac: float | None
    mac: float | None
    rate: str
    energy: Components
    zero_op: bool = False


@dataclass
class EnergyReport:
    """Result of :func:`slt_deploy.energy.energy`; every energy is in pJ per inference.

    ``energies[convention][variant][layer]`` and ``by_profile[convention][profile][variant]``
    hold both views; ``convention`` is the primary one (the default of every accessor).
    """

    ticket_info: dict[str, Any]
    convention: Convention
    profile: Profile
    counts: RunStats
    variants: list[Variant]
    energies: dict[str, dict[str, dict[str, Components]]]
    by_profile: dict[str, dict[str, dict[str, float]]]
    packed: dict[str, tuple[int, str]]
    views: tuple[Convention, Convention]
    breakeven: dict[str, dict[str, dict[str, BreakEven]]]
    ann: AnnCounts
    per_sample: dict[str, dict[str, np.ndarray]]
    graph: Ticket
    profile_label: str = ""
    schema: str = SCHEMA
    _figures: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ numbers
    def _conv(self, convention: str | None) -> str:
        name = convention or self.convention.name
        if name not in self.energies:
            raise KeyError(f"convention {name!r} is not one of this report's views: {', '.join(self.energies)}")
        return name

    def view(self, convention: str | None = None) -> Convention:
        name = self._conv(convention)
        return next(c for c in self.views if c.name == name)

    @property
    def ticket(self) -> Variant:
        return next(v for v in self.variants if v.is_ticket)

    def variant(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)

    def breakdown(self, key: str, convention: str | None = None) -> Components:
        """Summed components of one variant (every component, included or not)."""
        total = Components()
        for c in self.energies[self._conv(convention)][key].values():
            total = total + c
        return total

    def total(self, key: str | None = None, convention: str | None = None) -> float:
        """Energy per inference (pJ) of a variant (default: the ticket) under a view (default: the primary)."""
        conv = self.view(convention)
        return self.breakdown(key or self.ticket.key, conv.name).total(conv.includes)

    @property
    def effective_ac(self) -> float:
        """Effective accumulates per inference of the ticket."""
        return self.ticket.ac

    @property
    def effective_mac(self) -> float:
        """Effective multiply-accumulates per inference of the ticket."""
        return self.ticket.mac

    @property
    def by_profile_primary(self) -> dict[str, dict[str, float]]:
        return self.by_profile[self.convention.name]

    def savings(self, convention: str | None = None) -> list[Saving]:
        """``E_B / E_ticket`` for every other variant B, under one view."""
        conv = self._conv(convention)
        mine = self.total(convention=conv)
        out = []
        for v in self.variants:
            if v.is_ticket:
                continue
            e = self.total(v.key, conv)
            ratio = e / mine if mine > 0 else None
            shown = f"{ratio:.2f}x ({fmt_ratio(ratio)})" if ratio is not None else "undefined (ticket energy is 0)"
            out.append(Saving(v.key, v.label, ratio, f"E[{v.key}] / E[ticket] = {fmt_energy(e)} / {fmt_energy(mine)} "
                                                    f"= {shown}", conv))
        return out

    def saving(self, baseline: str, convention: str | None = None) -> Saving:
        return next(s for s in self.savings(convention) if s.baseline == baseline)

    def assumption(self) -> str:
        """What the headline (effective ANN) saving rests on, in one sentence."""
        a = self.ann
        if a.measured:
            return (f"the ANN is measured ({a.source}): its effective MACs on the same inputs, hidden ReLU sparsity "
                    f"{a.sparsity:.3f}")
        return (f"the ANN is not measured: first-layer input sparsity measured, hidden ReLU sparsity assumed = "
                f"{a.sparsity:.2f} ({a.sparsity_source}); give --ann to measure it")

    def headline(self, convention: str | None = None) -> str:
        """``vs the effective ANN: saves 2.44x (compute-only, neurobench) …``"""
        conv = self.view(convention)
        s = self.saving("ann", conv.name)
        tag = conv.view if conv.view == conv.name else f"{conv.view}, {conv.name}"
        return f"vs the effective ANN: {s.words} ({tag})"

    def layer_rows(self, convention: str | None = None, views: bool = False) -> list[LayerRow]:
        """Every node of the ticket but Input/Output in graph order; pools, Flatten, Add and token masks as
        zero-op rows; the pure views Reshape and Transpose only with ``views=True``."""
        e = self.energies[self._conv(convention)][self.ticket.key]
        works = {w.name: w for w in self.ticket.layers}
        syn = {s.name: s for s in self.counts.synapses}
        neu = {n.name: n for n in self.counts.neurons}
        rows = []
        for name in self.graph.order:
            node = self.graph.node(name)
            label = layer_label(self.graph, name) if not isinstance(node, (Input, Output)) else ""
            if name in syn:
                s, w = syn[name], works[name]
                if s.is_op:
                    spikes = "spike" if s.buffer_binary else "value"
                    what = (f"activations, {s.buffer_values:,} {spikes}s buffered ({w.weight_bytes:,} B)"
                            if s.buffer_values else "activations")
                else:
                    nbytes, encoding = self.packed[name]
                    what = f"{s.weight_kind} / {encoding}, {nbytes:,} B"
                rows.append(LayerRow(name, label, s.kind, what, w.ac, w.mac, f"{w.input_rate:.3f} in", e[name]))
            elif name in neu:
                n = neu[name]
                rows.append(LayerRow(name, label, n.kind, f"{n.neurons:,} neurons", None, None,
                                     f"{float(n.spike_rate().mean()):.3f} out", e[name]))
            elif not isinstance(node, (Input, Output)) and (views or node.kind not in ("reshape", "transpose")):
                rows.append(LayerRow(name, label, node.kind, "no weights, no state", None, None, "", Components(),
                                     zero_op=True))
        return rows

    def token_rows(self) -> list[dict[str, Any]]:
        """Per-token view of a spiking transformer (empty for other tickets): every counted layer that works
        on more than one token: tokens, effective ops per token, per head (a MatMul), and with every token
        kept (token factor, :mod:`.tokenops`); this ticket's activity, per inference."""
        if not any(s.is_op for s in self.counts.synapses) and not self.counts.token_mask:
            return []
        b = self.counts.samples
        rows = []
        for s in self.counts.synapses:
            ops = (s.ac + s.mac) / b
            if s.tokens <= 1 and not s.is_op:
                continue
            rows.append({"name": s.name, "label": layer_label(self.graph, s.name), "kind": s.kind,
                         "tokens": s.tokens, "ops": ops, "ops_per_token": ops / max(s.tokens, 1),
                         "per_head": [float(h) / b for h in s.heads], "token_factor": s.token_factor,
                         "all_tokens_ops": ops * s.token_factor})
        return rows

    def spread(self) -> dict[str, dict[str, float]]:
        """Summaries (mean, median, p5, p95, min, max) of per-sample energies and operation counts."""
        out: dict[str, dict[str, float]] = {}
        for conv, arrays in self.per_sample.items():
            for who, a in arrays.items():
                out[f"energy_pj.{conv}.{who}"] = summary(a)
        for key, a in ticket_ops(self.counts).items():
            out[f"ops.ticket.{key}"] = summary(a)
        ac, mac = self.ann.per_sample()
        out["ops.ann.effective_mac"] = summary(mac)
        return out

    # ------------------------------------------------------------------ renderings
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, schema ``slt-energy/2`` (docs/energy.md lists every key)."""
        c = self.counts
        primary = self.convention
        inc = primary.includes
        views = [cv.name for cv in self.views]
        zero_op = [{"name": r.name, "label": r.label, "kind": r.kind} for r in self.layer_rows(views=True)
                   if r.zero_op]
        a = self.ann
        ops = ticket_ops(c)
        ann_ac, ann_mac = a.per_sample()
        return {
            "schema": self.schema,
            "ticket": self.ticket_info,
            "convention": _conv_dict(primary),
            "views": [_conv_dict(cv) for cv in self.views],
            "profile": self.profile.to_dict(),
            "per_inference": self._per_inference_dict(views),
            "layers": self._layers_dict(views),
            "neurons": self._neurons_dict(),
            "zero_op_layers": zero_op,
            "tokens": {"token_mask": self.counts.token_mask, "followed": self.counts.tokens_followed,
                       "layers": self.token_rows()},
            "ann": {
                "measured": a.measured, "source": a.source, "hidden_relu_sparsity": a.sparsity,
                "sparsity_source": a.sparsity_source, "effective_ac": a.effective_ac, "effective_mac": a.effective_mac,
                "dense": a.dense, "metadata": a.metadata, "assumption": self.assumption(),
            },
            "variants": [{
                "key": v.key, "label": v.label, "activity": v.activity, "passes": v.passes, "is_ticket": v.is_ticket,
                "effective_ac": v.ac, "effective_mac": v.mac,
                "weight_bytes": v.weight_bytes_at(self.profile.state_bits),
                "energy_pj": _components(self.breakdown(v.key), inc),
                "energy_pj_by_view": {cv: self.total(v.key, cv) for cv in views},
            } for v in self.variants],
            "savings": [{"baseline": s.baseline, "label": s.label, "ratio": s.ratio, "words": s.words,
                         "formula": s.formula, "convention": s.convention}
                        for cv in views for s in self.savings(cv)],
            "headline": {cv: {"baseline": "ann", "ratio": self.saving("ann", cv).ratio,
                              "words": self.saving("ann", cv).words, "assumption": self.assumption()}
                         for cv in views},
            "break_even": {cv: {p: {k: be.to_dict() for k, be in per.items()} for p, per in profs.items()}
                           for cv, profs in self.breakeven.items()},
            "by_profile": self.by_profile[primary.name],
            "by_profile_by_view": self.by_profile,
            "spread": {
                "summary": self.spread(),
                "energy_pj": {cv: {who: series(arr) for who, arr in per.items()}
                              for cv, per in self.per_sample.items()},
                "ops": {k: series(v) for k, v in ops.items()},
                "ann_ops": {"effective_ac": series(ann_ac), "effective_mac": series(ann_mac)},
            },
        }

    def _per_inference_dict(self, views: list[str]) -> dict[str, Any]:
        """``per_inference``: the ticket's mean operation counts and energy per sample."""
        c, t = self.counts, self.ticket
        return {
            "effective_ac": t.ac, "effective_mac": t.mac, "effective_ops": t.ac + t.mac,
            "dense_macs": sum(s.dense_macs for s in c.synapses),
            "dense_ops": sum(s.dense_ops for s in c.synapses),
            "neuron_updates": sum(n.neurons for n in c.neurons) * c.timesteps,
            "active_neuron_updates": sum(n.active for n in t.neurons),
            "spikes": sum(n.spikes for n in t.neurons),
            "spike_rate": c.spike_rate(),
            "weight_bytes_read": t.weight_bytes_at(self.profile.state_bits) * t.passes,
            "membrane_accesses": 2 * sum(n.neurons for n in c.neurons) * c.timesteps,
            "energy_pj": self.total(),
            "energy_pj_by_view": {v: self.total(convention=v) for v in views},
        }

    def _layers_dict(self, views: list[str]) -> list[dict[str, Any]]:
        """``layers``: one entry per synaptic layer (counts, density, per-step series, energy)."""
        b = self.counts.samples
        inc = self.convention.includes
        ticket_e = self.energies[self.convention.name][self.ticket.key]
        layers = []
        for s in self.counts.synapses:
            nbytes, encoding = self.packed.get(s.name, (0, "none"))
            ann_ac, ann_mac = self.ann.layer_ops(s.name)
            layers.append({
                "name": s.name, "label": layer_label(self.graph, s.name), "kind": s.kind, "source": s.source,
                "weight_kind": s.weight_kind, "encoding": encoding, "weight_bytes": nbytes, "synapses": s.synapses,
                "kept": s.kept, "density": s.kept / s.synapses if s.synapses else 0.0, "dense_macs": s.dense_macs,
                "dense_ops": s.dense_ops, "kept_macs": s.kept_macs, "first_layer": s.first,
                "spike_fed": s.spike_fed, "effective_ac": s.ac / b, "effective_mac": s.mac / b,
                "dense_effective_ops": (s.dense_ac + s.dense_mac) / b,
                "ann_effective_ac": ann_ac, "ann_effective_mac": ann_mac,
                "ann_measured": s.name not in self.ann.assumed and self.ann.measured,
                "per_step": {
                    "effective_ac": (s.ac_t / b).tolist(), "effective_mac": (s.mac_t / b).tolist(),
                    "input_rate": s.input_rate().tolist(), "binary_fraction": (s.binary_t / b).tolist(),
                },
                "energy_pj": _components(ticket_e[s.name], inc),
                "energy_pj_by_view": {v: self.energies[v][self.ticket.key][s.name].total(self.view(v).includes)
                                      for v in views},
                "tokens": s.tokens, "ops_per_token": (s.ac + s.mac) / b / max(s.tokens, 1),
                "per_head": (s.heads / b).tolist(), "token_factor": s.token_factor,
                "buffer_values": s.buffer_values, "buffer_spikes": s.buffer_binary if s.buffer_values else None,
            })
        return layers

    def _neurons_dict(self) -> list[dict[str, Any]]:
        """``neurons``: one entry per neuron layer (updates, spikes, per-step rate, energy)."""
        c, b = self.counts, self.counts.samples
        ticket_e = self.energies[self.convention.name][self.ticket.key]
        return [{
            "name": n.name, "label": layer_label(self.graph, n.name), "kind": n.kind, "neurons": n.neurons,
            "updates": n.neurons * c.timesteps, "active_updates": n.active / b, "spikes": n.spikes / b,
            "per_step": {"spike_rate": n.spike_rate().tolist()},
            "energy_pj": _components(ticket_e[n.name], self.convention.includes),
        } for n in c.neurons]

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
        """A self-contained HTML page (figures inline as SVG; needs matplotlib for them)."""
        from .html import render_html

        return render_html(self)

    def figures(self) -> dict[str, Any]:
        """Every figure as a matplotlib ``Figure`` by name (see :mod:`.figures`); built once."""
        if not self._figures:
            from .figures import all_figures

            self._figures.update(all_figures(self))
        return dict(self._figures)

    def save_figures(self, folder: str | Path) -> list[Path]:
        """Write each figure alone as ``<name>.svg`` and ``<name>.pdf`` into ``folder``; returns the paths."""
        from .figures import save_figures

        return save_figures(self, Path(folder))


def _conv_dict(c: Convention) -> dict[str, Any]:
    return {"name": c.name, "view": c.view, "formula": c.formula, "includes": list(c.includes),
            "leaves_out": c.leaves_out}


def _components(c: Components, includes: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(c, k) for k in COMPONENTS}
    out["total"] = c.total(includes)
    return out


__all__ = ["EnergyReport", "LayerRow", "SCHEMA", "Saving", "fmt_count", "fmt_energy", "fmt_ratio",
           "layer_label"]
