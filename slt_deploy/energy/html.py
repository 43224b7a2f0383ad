"""Self-contained HTML rendering of an energy report: inline SVG plots, no network access.

Plots (matplotlib, the optional ``report`` extra; without it the page has the tables only):

1. energy per layer, stacked by component (AC, MAC, neuron, memory), pJ-scaled unit;
   components the convention leaves out are drawn hatched and marked in the legend;
2. spike rate of each spiking layer per time step (spikes per neuron per step);
3. energy per inference of every compared network, with ``E / E_ticket`` on each bar.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

from .conventions import COMPONENTS
from .report import fmt_count, fmt_energy

if TYPE_CHECKING:
    from .report import EnergyReport

COLORS = {"ac": "#4c9be8", "mac": "#e8804c", "neuron": "#5bb36a", "memory": "#9b6bd1"}
NAMES = {"ac": "AC (accumulate)", "mac": "MAC (multiply-accumulate)", "neuron": "neuron updates",
         "memory": "memory accesses"}
_SCALES = ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
code, .formula { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.92em; }
.formula { background: #f5f5f7; padding: 0.5em 0.8em; border-radius: 4px; display: block; white-space: pre-wrap; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 10em; }
.card .v { font-size: 1.35em; font-weight: 600; } .card .k { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f5f5f7; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
.note { color: #8a5a00; background: #fff7e6; padding: 0.4em 0.8em; border-radius: 4px; }
svg { max-width: 100%; height: auto; }
"""


def _unit(max_pj: float) -> tuple[float, str]:
    for scale, unit in _SCALES:
        if max_pj >= scale:
            return scale, unit
    return 1.0, "pJ"


def _svg(fig: Any) -> str:
    """The figure as an inline ``<svg>`` element; text stays text (selectable, small)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure() -> Any:
    """matplotlib's Figure class (no pyplot: no global state, no GUI backend)."""
    from matplotlib.figure import Figure

    return Figure


def plot_layers(report: EnergyReport) -> str:
    """Stacked bars: energy per inference of each layer of the ticket, by component."""
    from matplotlib.colors import to_rgb

    Figure = _figure()
    e = report.energies[report.ticket.key]
    names = list(e)
    inc = report.convention.includes
    scale, unit = _unit(max((c.total() for c in e.values()), default=1.0))
    fig = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 4.2))
    ax = fig.add_subplot()
    bottom = [0.0] * len(names)
    for comp in COMPONENTS:
        vals = [getattr(e[n], comp) / scale for n in names]
        label = NAMES[comp] + ("" if comp in inc else f" (not in {report.convention.name} total)")
        if comp in inc:
            ax.bar(names, vals, bottom=bottom, color=COLORS[comp], edgecolor="white", label=label)
        else:  # computed but left out: light fill, hatched in the component's colour
            light = tuple(1 - 0.25 * (1 - ch) for ch in to_rgb(COLORS[comp]))  # opaque: SVG hatches need it
            ax.bar(names, vals, bottom=bottom, color=light, edgecolor=COLORS[comp],
                   hatch="///", linewidth=0.6, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xlabel("layer (graph order)")
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.set_title(f"Energy per layer: {report.profile.name}, {report.convention.name}")
    ax.tick_params(axis="x", rotation=30 if len(names) > 6 else 0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _svg(fig)


def plot_spike_rates(report: EnergyReport) -> str:
    """Lines: spikes per neuron per step of each spiking layer, over time steps."""
    Figure = _figure()
    fig = Figure(figsize=(7.0, 3.8))
    ax = fig.add_subplot()
    T = report.counts.timesteps
    for n in report.counts.neurons:
        if n.spiking:
            ax.plot(range(T), n.spike_rate(), marker="o", markersize=3, label=f"{n.name} ({n.kind})")
    for s in report.counts.synapses:
        if s.first:
            ax.plot(range(T), s.input_rate(), linestyle="--", color="grey", label=f"{s.name} input (nonzero)")
    ax.set_xlabel("time step t")
    ax.set_ylabel("spike rate (spikes per neuron per step)")
    ax.set_title("Spike rate per layer over time (mean over inputs)")
    ax.set_xticks(range(T) if T <= 20 else range(0, T, max(1, T // 10)))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _svg(fig)


def plot_variants(report: EnergyReport) -> str:
    """Horizontal bars: energy per inference of every compared network, with E / E_ticket."""
    Figure = _figure()
    variants = report.variants
    totals = [report.total(v.key) for v in variants]
    mine = report.total()
    scale, unit = _unit(max(totals, default=1.0))
    fig = Figure(figsize=(8.0, 0.6 * len(variants) + 1.6))
    ax = fig.add_subplot()
    labels = [v.label for v in variants]
    colors = ["#e8804c" if v.is_ticket else "#8da0b8" for v in variants]
    ax.barh(labels, [t / scale for t in totals], color=colors)
    positive = [t for t in totals if t > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_xscale("log")
    for i, t in enumerate(totals):
        ratio = "this ticket" if variants[i].is_ticket else (f"{t / mine:.2f}x the ticket" if mine > 0 else "")
        ax.text(t / scale, i, f"  {fmt_energy(t)} ({ratio})", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"energy per inference ({unit}{', log scale' if ax.get_xscale() == 'log' else ''})")
    ax.set_title(f"Savings: ticket vs ANN and dense SNN ({report.profile.name}, {report.convention.name})")
    ax.set_xlim(right=ax.get_xlim()[1] * (3 if ax.get_xscale() == "log" else 1.45))
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{html.escape(str(c))}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _plots(report: EnergyReport) -> list[tuple[str, str, str]]:
    """(title, inline SVG, caption) per plot; empty without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    return [
        ("Savings vs ANN and dense SNN", plot_variants(report),
         "Energy per inference of each network under one profile and convention; "
         "the ratio is E[network] / E[ticket] (the saving when > 1)."),
        ("Energy per layer", plot_layers(report),
         "Energy per inference of each synapse and neuron layer of this ticket, by component. "
         "Hatched components are computed but left out by the convention."),
        ("Spike rate per layer over time", plot_spike_rates(report),
         "Fraction of neurons spiking at each step, per spiking layer; dashed: fraction "
         "of nonzero values in the input of the first layer."),
    ]


def render_html(report: EnergyReport) -> str:
    """The whole page as one string (UTF-8, no external resources)."""
    conv, prof, info, t = report.convention, report.profile, report.ticket_info, report.ticket
    esc = html.escape
    savings = {s.baseline: s for s in report.savings()}
    cards = [("effective ACs / inference", fmt_count(t.ac)), ("effective MACs / inference", fmt_count(t.mac)),
             ("energy / inference", fmt_energy(report.total()))]
    for key, what in (("ann", "saving vs ANN"), ("dense-snn", "saving vs dense SNN")):
        s = savings.get(key)
        cards.append((what, f"{s.ratio:.2f}x" if s and s.ratio is not None else "-"))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Energy report: {esc(str(info['name']))}</title><style>{CSS}</style></head><body>",
        f"<h1>Energy report: {esc(str(info['name']))}</h1>",
        f"<p>T = {info['timesteps']} steps, {esc(info['encoding'])} input {esc(str(tuple(info['input_shape'])))}, "
        f"averaged over {info['batch']} inputs. Profile <b>{esc(prof.name)}</b> ({esc(prof.description)}); "
        f"convention <b>{esc(conv.name)}</b>:</p>",
        f"<span class='formula'>{esc(conv.formula)}</span>",
        f"<p>Leaves out: {esc(conv.leaves_out)}. Savings are E[baseline] / E[ticket].</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><div class='v'>{esc(v)}</div><div class='k'>{esc(k)}</div>"
                                        "</div>" for k, v in cards) + "</div>",
    ]
    plots = _plots(report)
    if not plots:
        parts.append("<p class='note'>Plots need matplotlib: <code>pip install 'slt-deploy[report]'</code>.</p>")
    for title, svg, caption in plots:
        parts.append(f"<h2>{title}</h2><figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>")
    rows = []
    for v in report.variants:
        s = savings.get(v.key)
        rows.append([v.label, v.activity, fmt_count(v.ac), fmt_count(v.mac), f"{v.weight_bytes:,}",
                     fmt_energy(report.total(v.key)), "1 (ticket)" if v.is_ticket else
                     (f"{s.ratio:.2f}x" if s and s.ratio is not None else "-")])
    parts += ["<h2>Networks compared</h2>",
              _table(["network", "activity", "ACs", "MACs", "weight bytes", "energy", "E / E_ticket"], rows, 2),
              "<ul>" + "".join(f"<li><code>{esc(s.formula)}</code></li>" for s in report.savings()) + "</ul>"]
    inc = conv.includes
    rows = [[r.name, r.kind, r.weights, "" if r.ac is None else fmt_count(r.ac),
             "" if r.mac is None else fmt_count(r.mac), r.rate,
             *(fmt_energy(getattr(r.energy, c)) for c in COMPONENTS), fmt_energy(r.energy.total(inc))]
            for r in report.layer_rows()]
    parts += ["<h2>Per layer (this ticket, per inference)</h2>",
              _table(["layer", "kind", "weights", "ACs", "MACs", "rate",
                      *(f"E {c}" + ("" if c in inc else " (excl.)") for c in COMPONENTS), "E total"], rows, 3),
              "<p>rate: fraction of nonzero input values (in) or of neurons spiking (out) per step; (excl.): "
              "computed, left out by the convention.</p>"]
    rows = [[name, *(fmt_energy(tot[v.key]) for v in report.variants),
             f"{tot['ann'] / tot[t.key]:.2f}x" if tot[t.key] > 0 else "-",
             f"{tot['dense-snn'] / tot[t.key]:.2f}x" if tot[t.key] > 0 else "-"]
            for name, tot in report.by_profile.items()]
    parts += [f"<h2>Energy per inference under each profile ({esc(conv.name)})</h2>",
              _table(["profile", *(v.key for v in report.variants), "vs ANN", "vs dense SNN"], rows)]
    rows = [[k, f"{c.pj:g} pJ", c.source] for k, c in prof.constants.items()]
    rows += [[f"memory: {m.name}", f"{m.pj_per_64bit:g} pJ / 64 bit", m.source] for m in prof.memory]
    parts += [f"<h2>Constants of {esc(prof.name)}</h2>", _table(["constant", "value", "source"], rows, 3),
              f"<p>Report schema {esc(report.schema)}; formulas in docs/energy.md.</p></body></html>"]
    return "\n".join(parts)
