"""Figures of an energy report, drawn with matplotlib (the ``report`` extra), one ``Figure`` each.

==============  =========================================================================
name            what it shows
==============  =========================================================================
``savings``     energy per inference of every compared network, compute-only and
                memory-aware views side by side (own scale each), with ``saves 2.44x`` /
                ``costs 1.32x more`` against the ticket on each bar
``layers``      energy per node of the ticket in the primary view, labelled ``0 conv
                8×3×3``; pools, Flatten and Add as zero-op rows; the y scale of the left
                panel is what the convention counts, the terms it leaves out are drawn
                in a separate right panel
``activity``    spike rate per spiking layer over time steps (left) and fraction of
                nonzero input values per synapse layer (right), on separately labelled axes
``spread``      histograms of the per-sample energy of the ticket and of the ANN, one
                panel per view, with mean and 5th/95th percentiles marked
``breakeven``   energy per inference against the mean spike rate: the ticket's line,
                every baseline's, the measured rate and the break-even rates, one panel
                per view (chosen profile)
==============  =========================================================================

No pyplot (no global state, no GUI backend): ``matplotlib.figure.Figure`` only.
:func:`save_figures` writes each figure alone as ``<name>.svg`` and ``<name>.pdf``
(text kept as text in SVG, TrueType fonts embedded in PDF).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .breakeven import line
from .conventions import COMPONENTS
from .fmt import fmt_energy, fmt_ratio

NAMES = ("savings", "layers", "activity", "spread", "breakeven")
COLORS = {"ac": "#4c9be8", "mac": "#e8804c", "neuron": "#5bb36a", "memory": "#9b6bd1"}
COMPONENT_NAMES = {"ac": "AC (accumulate)", "mac": "MAC (multiply-accumulate)", "neuron": "neuron updates",
                   "memory": "memory accesses"}
SHORT_FORMULA = {
    "neurobench": "E = E_AC·N_AC + E_MAC·N_MAC",
    "spikformer": "E = E_MAC·FLOPs(first) + E_AC·Σ SOP",
    "memory-aware": "E = ops + neuron updates + weight/membrane memory + spikes",
}
VARIANT_COLORS = {"ann-dense": "#c9d3df", "ann": "#8da0b8", "dense-snn": "#b7a6cf", "sparse-fp32": "#a9c9a4",
                  "sparse-binary": "#a9c9a4", "ticket": "#a9c9a4"}
TICKET_COLOR = "#e8804c"
_SCALES = ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))


def _unit(max_pj: float) -> tuple[float, str]:
    for scale, unit in _SCALES:
        if max_pj >= scale:
            return scale, unit
    return 1.0, "pJ"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _view_title(report: Any, conv: str) -> str:
    c = report.view(conv)
    return f"{c.view}: {c.name}\n{SHORT_FORMULA.get(c.name, '')}"


# ----------------------------------------------------------------------------- savings
def savings_figure(report: Any) -> Any:
    """Energy per inference of every network, one panel per view, ratio words on each bar."""
    fig = _figure(11.0, 0.55 * len(report.variants) + 2.0)
    axes = fig.subplots(1, 2, sharey=True)
    variants = report.variants
    labels = [_short_label(v.name) for v in variants]
    axes[0].invert_yaxis()  # first network on top (the axes share y: invert once)
    for ax, conv in zip(axes, [c.name for c in report.views], strict=True):
        totals = [report.total(v.key, conv) for v in variants]
        mine = report.total(convention=conv)
        scale, unit = _unit(max(totals, default=1.0))
        colors = [TICKET_COLOR if v.is_ticket else VARIANT_COLORS.get(v.key, "#8da0b8") for v in variants]
        ax.barh(range(len(variants)), [t / scale for t in totals], color=colors)
        positive = [t for t in totals if t > 0]
        log = bool(positive) and max(positive) / min(positive) > 30
        if log:
            ax.set_xscale("log")
        for i, (v, t) in enumerate(zip(variants, totals, strict=True)):
            words = "this ticket" if v.is_ticket else fmt_ratio(t / mine if mine > 0 else None)
            ax.text(t / scale, i, f" {fmt_energy(t)}: {words}", va="center", fontsize=8)
        ax.set_yticks(range(len(variants)), labels)
        ax.set_xlabel(f"energy per inference ({unit}{', log scale' if log else ''})")
        ax.set_title(_view_title(report, conv), fontsize=10)
        ax.set_xlim(right=ax.get_xlim()[1] * (6 if log else 1.75))
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Networks compared ({report.profile.name}): ratio = E[network] / E[ticket]", fontsize=11)
    return fig


def _short_label(label: str) -> str:
    """Variant names trimmed to fit an axis."""
    return label if len(label) <= 38 else label[:37] + "…"


# ----------------------------------------------------------------------------- layers
def layers_figure(report: Any) -> Any:
    """Energy per node of the ticket: counted components left, left-out components right (own scale)."""
    from matplotlib.colors import to_rgb

    conv = report.convention
    rows = report.layer_rows()
    labels = [r.label for r in rows]
    included = [c for c in COMPONENTS if c in conv.includes]
    excluded = [c for c in COMPONENTS if c not in conv.includes]
    panels = [(included, f"counted by {conv.name}")] + ([(excluded, f"left out by {conv.name} (computed)")]
                                                        if excluded else [])
    width = max(6.5, 0.55 * len(rows) + 3.0)
    fig = _figure(width * (1.6 if excluded else 1.0), 4.6)
    axes = fig.subplots(1, len(panels))
    axes = np.atleast_1d(axes)
    x = np.arange(len(rows))
    for ax, (comps, title) in zip(axes, panels, strict=True):
        top = max((sum(getattr(r.energy, c) for c in comps) for r in rows), default=0.0)
        scale, unit = _unit(top if top > 0 else 1.0)
        bottom = np.zeros(len(rows))
        for comp in comps:
            vals = np.array([getattr(r.energy, comp) for r in rows]) / scale
            if comp in conv.includes:
                ax.bar(x, vals, bottom=bottom, color=COLORS[comp], edgecolor="white", label=COMPONENT_NAMES[comp])
            else:
                light = tuple(1 - 0.25 * (1 - ch) for ch in to_rgb(COLORS[comp]))
                ax.bar(x, vals, bottom=bottom, color=light, edgecolor=COLORS[comp], hatch="///", linewidth=0.6,
                       label=COMPONENT_NAMES[comp])
            bottom += vals
        for i, r in enumerate(rows):
            if r.zero_op:
                ax.text(i, 0, "0 ops", ha="center", va="bottom", fontsize=7, color="#666", rotation=90)
        ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel(f"energy per inference ({unit})")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", frameon=False)
    fig.suptitle(f"Energy per layer of the ticket ({report.profile.name}, {conv.name}: {SHORT_FORMULA[conv.name]})",
                 fontsize=11)
    return fig


# ----------------------------------------------------------------------------- activity
def activity_figure(report: Any) -> Any:
    """Spike rate per spiking layer (left) and input nonzero fraction per synapse layer (right), over t."""
    from .fmt import layer_label

    fig = _figure(11.0, 3.9)
    left, right = fig.subplots(1, 2)
    T = report.counts.timesteps
    steps = np.arange(T)
    for n in report.counts.neurons:
        if n.spiking:
            left.plot(steps, n.spike_rate(), marker="o", markersize=3, label=layer_label(report.graph, n.name))
    left.set_ylabel("spike rate (spikes per neuron per step)")
    left.set_title("Spike rate of each spiking layer", fontsize=10)
    for s in report.counts.synapses:
        style = "--" if not s.spike_fed else "-"
        right.plot(steps, s.input_rate(), linestyle=style, marker="s", markersize=3,
                   label=layer_label(report.graph, s.name) + (" (analog input)" if not s.spike_fed else ""))
    right.set_ylabel("input nonzero fraction")
    right.set_title("Nonzero inputs of each synapse layer (nonzero values / input values)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("time step t")
        ax.set_xticks(steps if T <= 20 else steps[:: max(1, T // 10)])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"Activity over time (mean over {report.counts.samples} inputs)", fontsize=11)
    return fig


# ----------------------------------------------------------------------------- spread
def spread_figure(report: Any) -> Any:
    """Histograms of per-sample energy (ticket, ANN) per view, mean and 5th/95th percentiles marked."""
    fig = _figure(11.0, 3.9)
    axes = fig.subplots(1, 2)
    ann_label = "ANN, effective (" + ("measured" if report.ann.measured else "estimated") + ")"
    for ax, conv in zip(axes, [c.name for c in report.views], strict=True):
        arrays = report.per_sample[conv]
        top = max(float(np.max(a)) for a in arrays.values())
        scale, unit = _unit(top if top > 0 else 1.0)
        for who, color, label in (("ticket", TICKET_COLOR, "ticket"), ("ann", "#5a7394", ann_label)):
            a = arrays[who] / scale
            if float(np.ptp(a)) == 0.0:
                ax.axvline(float(a[0]), color=color, linewidth=2, label=f"{label}: same for every input")
                continue
            ax.hist(a, bins=min(40, max(5, len(a) // 8)), color=color, alpha=0.55, label=label)
            p5, p95 = np.percentile(a, [5, 95])
            ax.axvline(float(a.mean()), color=color, linewidth=1.5)
            ax.axvspan(float(p5), float(p95), color=color, alpha=0.08)
        ax.set_xlabel(f"energy per inference ({unit}); line: mean, band: 5th–95th percentile")
        ax.set_ylabel("inputs")
        ax.set_title(_view_title(report, conv), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"Per-input energy spread ({report.profile.name}, {report.counts.samples} inputs)", fontsize=11)
    return fig


# ----------------------------------------------------------------------------- break-even
def breakeven_figure(report: Any) -> Any:
    """Energy against the mean spike rate for the ticket and each baseline; break-even rates marked."""
    fig = _figure(11.0, 5.0)
    axes = fig.subplots(1, 2)
    r0 = report.counts.spike_rate()
    T = report.counts.timesteps
    by_key = {v.key: v for v in report.variants}
    for ax, conv in zip(axes, report.views, strict=True):
        bes = report.breakeven[conv.name][report.profile_label]
        r = np.linspace(0.0, 1.0, 201)  # every feasible mean rate
        curves = {}
        for key in ["ticket", *bes]:
            v = report.ticket if key == "ticket" else by_key[key]
            a, b = line(v, report.profile, conv, T)
            curves[key] = a + (b / r0 if r0 > 0 else 0.0) * r
        focus = [curves["ticket"], *(c for k, c in curves.items() if k.startswith("ann"))]
        top = 1.25 * max(float(c.max()) for c in focus)
        scale, unit = _unit(top if top > 0 else 1.0)
        for key, c in curves.items():
            if key == "ticket":
                ax.plot(r, c / scale, color=TICKET_COLOR, linewidth=2.2, label="this ticket")
                continue
            name = _short_label(by_key[key].name)
            if float(c.min()) > top:
                name += f" (above the axis: {fmt_energy(float(c.min()))} at r = 0)"
            ax.plot(r, c / scale, linestyle="--", color=_line_color(key), label=name)
        ax.axvline(r0, color="#333", linewidth=1, linestyle=":", label=f"measured rate {r0:.3g}")
        for key, be in bes.items():
            if be.status == "below" and be.rate is not None:
                y = (be.ticket_at_zero + be.ticket_per_rate * be.rate) / scale
                ax.plot([be.rate], [y], "o", color=_line_color(key), markersize=6)
                ax.annotate(f"r* = {be.rate:.3g}", (be.rate, y), textcoords="offset points", xytext=(4, -12),
                            fontsize=8)
        ax.set_xlabel("mean spike rate of the ticket (spikes per neuron per step)")
        ax.set_ylabel(f"energy per inference ({unit})")
        ax.set_title(_view_title(report, conv.name), fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, top / scale)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.suptitle(f"Energy against spike rate ({report.profile.name}): the ticket saves where its line is below a "
                 "baseline's; dots mark break-even rates r*", fontsize=11)
    return fig


def _line_color(key: str) -> str:
    return {"ann": "#2f4b7c", "ann-dense": "#7a8ca5", "dense-snn": "#7d5ba6"}.get(key, "#555")


# ----------------------------------------------------------------------------- output
BUILDERS = {"savings": savings_figure, "layers": layers_figure, "activity": activity_figure,
            "spread": spread_figure, "breakeven": breakeven_figure}


def all_figures(report: Any) -> dict[str, Any]:
    """Every figure by name (:data:`NAMES` order)."""
    return {name: BUILDERS[name](report) for name in NAMES}


def render(fig: Any, fmt: str) -> bytes:
    """``fig`` as SVG (text kept as text) or PDF (TrueType fonts embedded) bytes, without a timestamp."""
    import matplotlib

    buf = io.BytesIO()
    rc = {"svg.fonttype": "none", "pdf.fonttype": 42}
    metadata = {"Date": None} if fmt == "svg" else {"CreationDate": None, "ModDate": None}
    with matplotlib.rc_context(rc):
        fig.savefig(buf, format=fmt, bbox_inches="tight", metadata=metadata)
    return buf.getvalue()


def inline_svg(fig: Any) -> str:
    """The figure as an ``<svg>`` element to embed in HTML."""
    text = render(fig, "svg").decode("utf-8")
    return text[text.index("<svg"):]


def save_figures(report: Any, folder: Path) -> list[Path]:
    """Write ``<name>.svg`` and ``<name>.pdf`` of every figure into ``folder`` (created if missing)."""
    from ..atomic import atomic_write_bytes
    from ..errors import SltError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SltError(f"cannot create the figures folder '{folder}': {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise SltError(f"'{folder}' is not a folder")
    out = []
    for name, fig in report.figures().items():
        for fmt in ("svg", "pdf"):
            path = folder / f"{name}.{fmt}"
            atomic_write_bytes(path, render(fig, fmt))
            out.append(path)
    return out
